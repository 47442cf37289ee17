-- The first step's decision for every abandoned cart of every campaign at T: the channel it would use
-- (F3: the first of the step's channels with an address, consent and no suppression) and the first
-- reason, in the E9 priority order, that stops it. reason is null when the cart version is to be messaged.
--
-- E9 priority order (the first that applies wins):
--   anonymous, institutional, superseded_by_newer_cart, no_email (D4, whatever the channel),
--   (for the step's first channel) no_email | invalid_email | no_phone | invalid_phone |
--   no_push_subscription, no_consent, consent_expired, suppressed,
--   not_in_test_group, already_sent, frequency_capped, holdout
with abandoned as (
    select * from {{ ref('abandoned_carts') }}
),

campaigns as (
    select * from {{ ref('int_campaigns') }}
),

first_steps as (
    select * from {{ ref('int_campaign_steps') }}
    where step = 1
),

customers as (
    select * from {{ ref('int_customers_as_of_t') }}
),

consents as (
    select * from {{ ref('int_consents_as_of_t') }}
),

suppressions as (
    select * from {{ ref('int_suppressions') }}
),

push_subscriptions as (
    select distinct on (customer_id, endpoint)
        customer_id,
        status
    from {{ ref('stg_shop__push_subscriptions') }}
    where recorded_at <= {{ evaluation_time() }}
    order by customer_id asc, endpoint asc, recorded_at desc
),

messages as (
    select * from {{ ref('stg_ops__messages') }}
    where decided_at <= {{ evaluation_time() }}
),

test_group as (
    select * from {{ ref('stg_shop__test_group') }}
),

-- D5: the customer's newest abandoned cart in this run and campaign
ranked as (
    select
        abandoned.*,
        row_number() over (
            partition by abandoned.campaign, abandoned.customer_id
            order by abandoned.last_activity_at desc, abandoned.cart_id desc
        ) as recency_rank
    from abandoned
),

-- E2, E3, E4 for each channel the step may use
channel_checks as (
    select
        ranked.campaign,
        ranked.cart_id,
        channel.name as channel,
        channel.preference,
        case
            when channel.name = 'email' and customers.email is null then 'no_email'
            when
                channel.name = 'email'
                and customers.email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'
                then 'invalid_email'
            when channel.name = 'sms' and customers.phone is null then 'no_phone'
            when channel.name = 'sms' and customers.phone !~ '^\+[1-9][0-9]{7,14}$' then 'invalid_phone'
            when
                channel.name = 'push'
                and not exists (
                    select 1 from push_subscriptions
                    where push_subscriptions.customer_id = ranked.customer_id and push_subscriptions.status = 'active'
                )
                then 'no_push_subscription'
            when (consents.status is distinct from 'granted') then 'no_consent'
            when
                consents.basis = 'implied'
                and consents.recorded_at + make_interval(days => campaigns.implied_consent_days)
                <= campaigns.evaluated_at
                then 'consent_expired'
            when
                exists (
                    select 1 from suppressions
                    where
                        suppressions.channel = channel.name
                        and (suppressions.email = customers.email or suppressions.customer_id = ranked.customer_id)
                )
                then 'suppressed'
        end as channel_reason
    from ranked
    inner join campaigns on ranked.campaign = campaigns.campaign
    inner join first_steps on ranked.campaign = first_steps.campaign
    cross join lateral unnest(first_steps.channels) with ordinality as channel (name, preference)
    left join customers on ranked.customer_id = customers.customer_id
    left join consents on ranked.customer_id = consents.customer_id and channel.name = consents.channel
),

channel_choice as (
    select
        campaign,
        cart_id,
        (array_agg(channel order by preference) filter (where channel_reason is null))[1] as channel,
        (array_agg(channel_reason order by preference))[1] as first_channel_reason
    from channel_checks
    group by campaign, cart_id
),

decided as (
    select
        ranked.campaign,
        1 as step,
        ranked.cart_id,
        ranked.cart_version,
        ranked.customer_id,
        ranked.cart_value,
        ranked.currency,
        channel_choice.channel,
        campaigns.evaluated_at as decided_at,
        case
            when ranked.customer_id is null or customers.customer_id is null then 'anonymous'
            when customers.customer_type = 'institution' then 'institutional'
            when ranked.recency_rank > 1 then 'superseded_by_newer_cart'
            -- D4: a customer without an email address is never targeted, whatever the step's channel
            when customers.email is null then 'no_email'
            when channel_choice.channel is null then channel_choice.first_channel_reason
            when
                campaigns.audience = 'test_group'
                and not exists (
                    select 1 from test_group
                    where test_group.customer_id = ranked.customer_id
                )
                then 'not_in_test_group'
            when
                exists (
                    select 1 from messages
                    where
                        messages.campaign = ranked.campaign
                        and messages.step = 1
                        and messages.cart_id = ranked.cart_id
                        and messages.cart_version = ranked.cart_version
                        and messages.status not in ('dry_run', 'skipped')
                )
                then 'already_sent'
            when
                exists (
                    select 1 from messages
                    where
                        messages.customer_id = ranked.customer_id
                        and messages.status in ('pending', 'sent', 'unknown')
                        -- E5: decided in [T - frequency_cap_days, T), any campaign and step; the cart
                        -- version's own messages are E6's business, not the cap's
                        and messages.decided_at
                        >= campaigns.evaluated_at - make_interval(days => campaigns.frequency_cap_days)
                        and messages.decided_at < campaigns.evaluated_at
                        and not (
                            messages.cart_id = ranked.cart_id
                            and messages.cart_version = ranked.cart_version
                        )
                )
                then 'frequency_capped'
            when
                ('x' || substr(md5(ranked.customer_id || ':' || ranked.campaign), 1, 8))::bit(32)::bigint % 100
                < campaigns.holdout_percent
                then 'holdout'
        end as reason
    from ranked
    inner join campaigns on ranked.campaign = campaigns.campaign
    left join customers on ranked.customer_id = customers.customer_id
    left join channel_choice on ranked.campaign = channel_choice.campaign and ranked.cart_id = channel_choice.cart_id
)

select * from decided
