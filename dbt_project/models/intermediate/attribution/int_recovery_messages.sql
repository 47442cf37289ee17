{{
    config(
        indexes=[
            {'columns': ['message_id'], 'unique': True},
            {'columns': ['customer_id', 'decided_at']},
            {'columns': ['report_date']},
        ],
    )
}}
-- One row per recipient decision of a real run decided up to T (the outbox, S2), with what the reports
-- group by (A3): the report day of decided_at, the coupon tier, the store and the language.
-- - Dry runs (S3) are left out: status `dry_run`, and their holdout rows, recorded under a `dry_run:` key.
-- - is_held_out: recorded as held out (E8), never sent; is_sent: the provider accepted it (S2).
-- - Times read decided_at (the run's T), never sent_at: a replayed date reports as it did (O2).
-- - coupon_tier: the tier of the pool the code came from (C2), else of the static code it equals (C3).
-- - store_id: the message's store (M4): the customer's preferred store in force at decided_at, else the
--   cart version's; locale: the customer's at decided_at (fr/en), else the campaign's default (M1).
with messages as (
    select * from {{ ref('stg_ops__messages') }}
    where
        decided_at <= {{ evaluation_time() }}
        and status != 'dry_run'
        and idempotency_key not like 'dry\_run:%'
),

provider_ids as (
    select * from {{ ref('stg_ops__provider_message_ids') }}
),

campaigns as (
    select * from {{ ref('int_attribution_campaigns') }}
),

allocations as (
    select * from {{ ref('stg_ops__coupon_allocations') }}
),

tiers as (
    select * from {{ ref('coupon_tiers') }}
),

pool_tiers as (
    select distinct on (pool)
        pool,
        tier
    from tiers
    where pool is not null
    order by pool asc, tier_set asc, tier asc
),

static_tiers as (
    select distinct on (static_code)
        static_code,
        tier
    from tiers
    where static_code is not null
    order by static_code asc, tier_set asc, tier asc
),

cart_versions as (
    select
        event_id,
        store_id
    from {{ ref('stg_shop__cart_events') }}
),

stores as (
    select store_id from {{ ref('stg_shop__stores') }}
),

-- the customer record in force when the message was decided
customer_versions as (
    select distinct on (messages.message_id)
        messages.message_id,
        customers.locale,
        customers.preferred_store_id
    from messages
    inner join {{ ref('stg_shop__customers') }} as customers
        on
            messages.customer_id = customers.customer_id
            and messages.decided_at >= customers.updated_at
    order by messages.message_id asc, customers.updated_at desc
),

final as (
    select
        messages.message_id,
        messages.campaign,
        messages.step,
        messages.channel,
        messages.customer_id,
        messages.cart_id,
        messages.cart_version,
        messages.status,
        messages.skip_reason,
        messages.decided_at,
        {{ report_date('messages.decided_at') }} as report_date,
        coalesce(messages.status = 'skipped' and messages.skip_reason = 'holdout', false) as is_held_out,
        messages.status = 'sent' as is_sent,
        provider_ids.provider_message_id,
        messages.coupon_code,
        case
            when messages.coupon_code is null then 'none'
            else coalesce(pool_tiers.tier, static_tiers.tier, 'unknown')
        end as coupon_tier,
        coalesce(preferred.store_id, cart_versions.store_id) as store_id,
        case
            when customer_versions.locale in ('fr', 'en') then customer_versions.locale
            else campaigns.default_locale
        end as locale,
        coalesce(campaigns.attribution_window_hours, 24) as attribution_window_hours
    from messages
    left join provider_ids on messages.message_id = provider_ids.message_id
    left join campaigns on messages.campaign = campaigns.campaign
    left join allocations on messages.coupon_code = allocations.coupon_code
    left join pool_tiers on allocations.coupon_pool = pool_tiers.pool
    left join static_tiers on messages.coupon_code = static_tiers.static_code
    left join cart_versions on messages.cart_version = cart_versions.event_id
    left join customer_versions on messages.message_id = customer_versions.message_id
    left join stores as preferred on customer_versions.preferred_store_id = preferred.store_id
)

select * from final
