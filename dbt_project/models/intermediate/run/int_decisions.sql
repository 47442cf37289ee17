-- Every decision of the run at T in the form the ledger keeps and the sender records (contract §4): one row
-- per (campaign, step, cart version) this build decides, messaged (reason null) or not (the E9 reason),
-- with the coupon tier (C1) and the outbox row it becomes. The sender inserts these rows as they are and
-- delivers; it decides nothing (E6, E8, F3):
--   outbox_status `pending`  the step is to be sent;
--                 `skipped`  recorded with its reason: a holdout (E8, the lift's baseline), or a step
--                            skipped for a reason that hands the sequence on (`exclusion_reasons.hands_on`)
--                            when the campaign has a later step (F3);
--                 null       no outbox row (the ledger says why).
--   idempotency_key and message_id: the warehouse's functions (macros/message_id.sql); a dry run (S3)
--   records under `dry_run:<key>`, so a later real run of the date still sends.
with decisions as (
    select * from {{ ref('int_recipient_decisions') }}
),

campaigns as (
    select * from {{ ref('int_campaigns') }}
),

steps as (
    select * from {{ ref('int_campaign_steps') }}
),

coupons as (
    select * from {{ ref('int_coupon_assignments') }}
),

reasons as (
    select * from {{ ref('exclusion_reasons') }}
),

keyed as (
    select
        decisions.*,
        {{
            idempotency_key('decisions.campaign', 'decisions.step', 'decisions.cart_id', 'decisions.cart_version')
        }} as idempotency_key,
        case
            when decisions.reason is null then 'pending'
            when decisions.reason = 'holdout' then 'skipped'
            when reasons.hands_on and decisions.step < campaigns.step_count then 'skipped'
        end as outbox_status,
        -- a skipped row names the step's first channel when none was allowed
        coalesce(decisions.channel, steps.channels[1]) as outbox_channel
    from decisions
    inner join campaigns on decisions.campaign = campaigns.campaign
    inner join steps on decisions.campaign = steps.campaign and decisions.step = steps.step
    left join reasons on decisions.reason = reasons.reason
),

final as (
    select
        keyed.decided_at,
        {{ sql_literal(decision_scope()) }}::text as scope,
        keyed.campaign,
        keyed.step,
        keyed.channel,
        keyed.customer_id,
        keyed.cart_id,
        keyed.cart_version,
        keyed.cart_value,
        keyed.currency,
        keyed.reason,
        keyed.applicable_reasons,
        coupons.coupon_tier,
        coupons.coupon_percent,
        coupons.coupon_pool,
        coupons.coupon_static_code,
        keyed.idempotency_key,
        {{ message_id('keyed.idempotency_key') }} as message_id,
        {{ dry_run_key('keyed.idempotency_key') }} as dry_run_key,
        {{ message_id(dry_run_key('keyed.idempotency_key')) }} as dry_run_message_id,
        keyed.outbox_status,
        keyed.outbox_channel
    from keyed
    left join coupons
        on
            keyed.campaign = coupons.campaign
            and keyed.step = coupons.step
            and keyed.cart_id = coupons.cart_id
)

select * from final
