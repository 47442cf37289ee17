with source as (
    select * from {{ source('ops', 'messages') }}
)

select
    message_id,
    idempotency_key,
    campaign,
    step,
    channel,
    customer_id,
    cart_id,
    cart_version,
    status,
    skip_reason,
    decided_at,
    sent_at,
    coupon_code
from source
