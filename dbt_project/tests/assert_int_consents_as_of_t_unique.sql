-- E3: one consent record in force per (customer, channel).
-- Combination uniqueness (no dbt_utils): fails with each duplicated key and its count.
select
    customer_id,
    channel,
    count(*) as duplicate_rows
from {{ ref('int_consents_as_of_t') }}
group by customer_id, channel
having count(*) > 1
