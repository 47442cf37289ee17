-- E9: one reason per (campaign, step, cart).
-- Combination uniqueness (no dbt_utils): fails with each duplicated key and its count.
select
    campaign,
    step,
    cart_id,
    count(*) as duplicate_rows
from {{ ref('recipient_exclusions') }}
group by campaign, step, cart_id
having count(*) > 1
