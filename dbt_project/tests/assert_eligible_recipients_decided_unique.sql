-- E6: one row per (campaign, step, cart version) to message.
-- Combination uniqueness (no dbt_utils): fails with each duplicated key and its count.
select
    campaign,
    step,
    cart_id,
    cart_version,
    count(*) as duplicate_rows
from {{ ref('eligible_recipients_decided') }}
group by campaign, step, cart_id, cart_version
having count(*) > 1
