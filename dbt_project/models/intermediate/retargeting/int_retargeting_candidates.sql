{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ retargeting_delete_recheck_window() }}",
        indexes=[
            {'columns': ['customer_id', 'candidate_at'], 'unique': True},
        ],
    )
}}
-- F5: the moments up to T at which a customer could join the retargeting audience: every run that decided
-- to message them (this run's decisions at T, int_decisions, and every earlier run's outbox rows by
-- decided_at, never the wall clock: O2), kept when at that moment the customer had a valid email (E2),
-- email consent in force (E3) and had not opted out of email (E4: unsubscribe or spam report). Held-out
-- customers (E8) and dry runs (S3) are not candidates: the holdout measures recovery without any nudge.
-- The address is hashed here (trimmed, lower case, SHA-256 hex); no plain email leaves this model.
-- Incremental: a run re-checks the moments after retargeting_recheck_from() (macros/retargeting.sql) and
-- keeps the earlier, settled ones, so a day costs the day's decisions, not the message history.
with decided_now as (
    select distinct customer_id
    from {{ ref('int_decisions') }}
    where customer_id is not null and reason is null
),

decided_before as (
    select distinct
        customer_id,
        decided_at
    from {{ ref('stg_ops__messages') }}
    where
        decided_at <= {{ evaluation_time() }}
        and decided_at > {{ retargeting_recheck_from() }}
        and status != 'dry_run'
        and idempotency_key not like 'dry\_run:%'
        and skip_reason is distinct from 'holdout'
),

decisions as (
    select
        customer_id,
        {{ evaluation_time() }} as candidate_at
    from decided_now
    union
    select
        customer_id,
        decided_at as candidate_at
    from decided_before
),

-- E4: opting out of email, with its time: our own unsubscribe records, and the provider's unsubscribe
-- and spam-report events (matched by the hashed address, so a later address change does not hide them)
own_opt_outs as (
    select
        customer_id,
        recorded_at as opted_out_at
    from {{ ref('stg_ops__unsubscribes') }}
    where channel = 'email' and recorded_at <= {{ evaluation_time() }}
),

provider_opt_outs as (
    select
        encode(sha256(convert_to(trim(lower(email)), 'UTF8')), 'hex') as email_sha256,
        occurred_at as opted_out_at
    from {{ ref('stg_shop__provider_events') }}
    where
        event in ('unsubscribe', 'group_unsubscribe', 'spamreport')
        and email is not null
        and occurred_at <= {{ evaluation_time() }}
),

-- the customer record and the email consent in force at each candidate moment (index lookups)
at_candidate as (
    select
        decisions.customer_id,
        decisions.candidate_at,
        customer_version.email,
        consent.status as consent_status,
        consent.basis as consent_basis,
        consent.recorded_at as consent_recorded_at
    from decisions
    left join lateral (
        select customers.email
        from {{ ref('stg_shop__customers') }} as customers
        where
            customers.customer_id = decisions.customer_id
            and customers.updated_at <= decisions.candidate_at
        order by customers.updated_at desc
        limit 1
    ) as customer_version on true
    left join lateral (
        select
            consents.status,
            consents.basis,
            consents.recorded_at
        from {{ ref('stg_shop__consents') }} as consents
        where
            consents.customer_id = decisions.customer_id
            and consents.channel = 'email'
            and consents.recorded_at <= decisions.candidate_at
        order by consents.recorded_at desc
        limit 1
    ) as consent on true
),

hashed as (
    select
        customer_id,
        candidate_at,
        encode(sha256(convert_to(trim(lower(email)), 'UTF8')), 'hex') as email_sha256
    from at_candidate
    where
        email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'
        and consent_status = 'granted'
        and (
            consent_basis is distinct from 'implied'
            or consent_recorded_at
            + make_interval(days => {{ var('implied_consent_days', 730) }}) > candidate_at
        )
),

final as (
    select
        hashed.customer_id,
        hashed.candidate_at,
        hashed.email_sha256
    from hashed
    where
        not exists (
            select 1 from own_opt_outs
            where
                own_opt_outs.customer_id = hashed.customer_id
                and own_opt_outs.opted_out_at <= hashed.candidate_at
        )
        and not exists (
            select 1 from provider_opt_outs
            where
                provider_opt_outs.email_sha256 = hashed.email_sha256
                and provider_opt_outs.opted_out_at <= hashed.candidate_at
        )
)

select * from final
