-- E6: one decision per (campaign, step, cart version) in a run.
-- Combination uniqueness (no dbt_utils): fails with each duplicated key and its count.
select
    campaign,
    step,
    cart_id,
    cart_version,
    count(*) as duplicate_rows
from {{ ref('int_decisions') }}
group by campaign, step, cart_id, cart_version
having count(*) > 1
