{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=[
            "{{ lock_relation() }}",
            "{{ delete_run_partition() }}",
        ],
        post_hook=[
            "create index if not exists decision_history_run on {{ this }} (decided_at, scope)",
            "create index if not exists decision_history_customer on {{ this }} (customer_id, decided_at)",
        ],
    )
}}
-- The decision ledger (contract §4, O2): one row per (decided_at, scope, campaign, step, cart version) that
-- any run decided, kept for every run. A run writes only its own partition, (T, scope): a rerun deletes and
-- rewrites it, with the same values (O2), in one transaction, so a reader never sees it half written and
-- the runs of other dates and scopes are never touched (O6). "Why did customer X get nothing on D?" is
-- one query here, for any past D, without a replay (README).
select
    decided_at,
    scope,
    campaign,
    step,
    channel,
    customer_id,
    cart_id,
    cart_version,
    cart_value,
    currency,
    reason,
    applicable_reasons,
    coupon_tier,
    coupon_percent,
    coupon_pool,
    coupon_static_code,
    idempotency_key,
    message_id,
    dry_run_key,
    dry_run_message_id,
    outbox_status,
    outbox_channel
from {{ ref('int_decisions') }}
