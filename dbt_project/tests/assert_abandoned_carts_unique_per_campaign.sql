-- D2: one row per (campaign, cart_id) — one abandoned cart version per campaign and run.
-- Combination uniqueness (no dbt_utils): fails with each duplicated key and its count.
select
    campaign,
    cart_id,
    count(*) as duplicate_rows
from {{ ref('int_abandoned_carts') }}
group by campaign, cart_id
having count(*) > 1
