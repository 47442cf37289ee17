-- C1: one tier per (campaign, step, cart).
-- Combination uniqueness (no dbt_utils): fails with each duplicated key and its count.
select
    campaign,
    step,
    cart_id,
    count(*) as duplicate_rows
from {{ ref('int_coupon_assignments') }}
group by campaign, step, cart_id
having count(*) > 1
