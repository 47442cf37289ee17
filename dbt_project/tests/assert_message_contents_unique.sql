-- One message content per (campaign, step, cart version), the grain of eligible_recipients.
-- Combination uniqueness (no dbt_utils): fails with each duplicated key and its count.
select
    campaign,
    step,
    cart_id,
    cart_version,
    count(*) as duplicate_rows
from {{ ref('message_contents') }}
where {{ this_run() }}
group by campaign, step, cart_id, cart_version
having count(*) > 1
