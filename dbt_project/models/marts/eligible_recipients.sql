{{ config(materialized='view') }}
-- Who gets a message in the latest run built (contract §4): one row per (campaign, step, cart version), from
-- the ledger's partition of that run. A view, so the coupon codes allocated after the build
-- (assign_coupons) show at once; an exhausted pool falls back to the tier's static code (C3).
with decided as (
    select * from {{ ref('decision_history') }}
    where {{ this_run() }} and reason is null
),

allocations as (
    select * from {{ ref('stg_ops__coupon_allocations') }}
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
        decided.scope,
        decided.coupon_tier,
        decided.coupon_percent,
        {{ coupon_code('decided', 'allocations') }} as coupon_code,
        decided.idempotency_key,
        decided.message_id
    from decided
    left join allocations
        on
            decided.campaign = allocations.campaign
            and decided.step = allocations.step
            and decided.cart_id = allocations.cart_id
            and decided.cart_version = allocations.cart_version
)

select * from final
