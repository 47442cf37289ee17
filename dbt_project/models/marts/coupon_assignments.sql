{{ config(materialized='view') }}
-- C1: the coupon tier each eligible cart version of the latest run built gets (the ledger's partition of
-- that run); `cart_recovery.coupons.assign_coupons` allocates the pool codes (C2, C3).
select
    campaign,
    step,
    channel,
    customer_id,
    cart_id,
    cart_version,
    cart_value,
    decided_at,
    scope,
    coupon_tier,
    coupon_percent,
    coupon_pool,
    coupon_static_code
from {{ ref('decision_history') }}
where {{ this_run() }} and reason is null and coupon_tier is not null
