{{ config(materialized='view') }}
-- What the sender records and delivers (S2, E6): every decision of the ledger that becomes an outbox row
-- (`pending`: to send; `skipped`: a holdout or a skip that hands the sequence on), with its coupon code — the
-- pool code allocated to it (C2), else the tier's static code (C3). The sender of a run reads its own
-- partition, (T, scope), and inserts the rows as they are: it decides nothing.
with decided as (
    select * from {{ ref('decision_history') }}
    where outbox_status is not null
),

allocations as (
    select * from {{ ref('stg_ops__coupon_allocations') }}
),

final as (
    select
        decided.decided_at,
        decided.scope,
        decided.campaign,
        decided.step,
        decided.outbox_channel as channel,
        decided.customer_id,
        decided.cart_id,
        decided.cart_version,
        decided.reason,
        decided.outbox_status,
        decided.coupon_tier,
        decided.coupon_percent,
        {{ coupon_code('decided', 'allocations') }} as coupon_code,
        decided.idempotency_key,
        decided.message_id,
        decided.dry_run_key,
        decided.dry_run_message_id
    from decided
    left join allocations
        on
            decided.campaign = allocations.campaign
            and decided.step = allocations.step
            and decided.cart_id = allocations.cart_id
            and decided.cart_version = allocations.cart_version
)

select * from final
