-- The decided recipients of the run (one row per campaign, step and cart version), before coupon codes
-- are allocated; `eligible_recipients` adds the codes.
with decisions as (
    select * from {{ ref('int_recipient_decisions') }}
    where reason is null
),

coupons as (
    select * from {{ ref('coupon_assignments') }}
),

final as (
    select
        decisions.campaign,
        decisions.step,
        decisions.channel,
        decisions.customer_id,
        decisions.cart_id,
        decisions.cart_version,
        decisions.decided_at,
        decisions.cart_value,
        coupons.coupon_tier,
        coupons.coupon_percent,
        coupons.coupon_pool,
        coupons.coupon_static_code,
        (
            decisions.campaign || ':' || decisions.step || ':' || decisions.cart_id || ':' || decisions.cart_version
        ) as idempotency_key
    from decisions
    left join coupons
        on
            decisions.campaign = coupons.campaign
            and decisions.step = coupons.step
            and decisions.cart_id = coupons.cart_id
)

select * from final
