{{ config(materialized='view') }}
-- Who gets a message in this run (contract §4): one row per (campaign, step, cart version). A view, so the
-- coupon codes allocated after the build (assign_coupons) show at once; an exhausted pool falls back to
-- the tier's static code (C3).
with decided as (
    select * from {{ ref('eligible_recipients_decided') }}
),

allocations as (
    select * from {{ source('ops', 'coupon_allocations') }}
),

final as (
    select
        decided.campaign,
        decided.step,
        decided.channel,
        decided.customer_id,
        decided.cart_id,
        decided.cart_version,
        decided.decided_at,
        decided.coupon_tier,
        decided.coupon_percent,
        case
            when decided.coupon_percent is not null then coalesce(allocations.code, decided.coupon_static_code)
        end as coupon_code,
        decided.idempotency_key
    from decided
    left join allocations
        on
            decided.campaign = allocations.campaign
            and decided.step = allocations.step
            and decided.cart_id = allocations.cart_id
            and decided.cart_version = allocations.cart_version
)

select * from final
