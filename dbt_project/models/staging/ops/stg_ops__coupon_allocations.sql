-- Pool codes handed out (C2), one row per code: the attribution reports find a message's coupon tier
-- through the pool its code came from.
with source as (
    select * from {{ source('ops', 'coupon_allocations') }}
)

select
    code as coupon_code,
    pool as coupon_pool,
    campaign,
    step,
    customer_id,
    cart_id,
    cart_version,
    decided_at
from source
