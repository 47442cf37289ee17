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

-- Every check below is a join on keys (no per-row subquery), so a run costs what its carts hold.
-- E4: (channel, customer) pairs suppressed at T, by address or by customer
suppressed as (
    select
        suppressions.channel,
        customers.customer_id
    from suppressions
    inner join customers on suppressions.email = customers.email
    union
    select
        channel,
        customer_id
    from suppressions
    where customer_id is not null
),

active_push as (
    select distinct customer_id
    from push_subscriptions
    where status = 'active'
),

-- E6: cart versions a campaign's step already reached
already_sent as (
    select distinct
        campaign,
        step,
        cart_id,
        cart_version
    from messages
    where status not in ('dry_run', 'skipped')
),

-- E5: carts whose customer got a message decided in [T - frequency_cap_days, T), any campaign and step;
-- the cart version's own messages are E6's business, not the cap's
capped as (
    select distinct
        ranked.campaign,
        ranked.cart_id
    from ranked
    inner join campaigns on ranked.campaign = campaigns.campaign
    inner join messages
        on
            ranked.customer_id = messages.customer_id
            and messages.decided_at
            >= campaigns.evaluated_at - make_interval(days => campaigns.frequency_cap_days)
            and campaigns.evaluated_at > messages.decided_at
    where
        messages.status in ('pending', 'sent', 'unknown')
        -- E5: later steps of the sequence this cart version already entered are not capped; any other
        -- campaign's message to the customer is
        and not (
            messages.campaign = ranked.campaign
            and messages.cart_id = ranked.cart_id
            and messages.cart_version = ranked.cart_version
        )
),

-- E2, E3, E4 for each channel the step may use, in the step's order of preference (F3)
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
            when channel.name = 'push' and active_push.customer_id is null then 'no_push_subscription'
            when (consents.status is distinct from 'granted') then 'no_consent'
            when
                consents.basis = 'implied'
                and consents.recorded_at + make_interval(days => campaigns.implied_consent_days)
                <= campaigns.evaluated_at
                then 'consent_expired'
            when suppressed.customer_id is not null then 'suppressed'
        end as channel_reason
    from ranked
    inner join campaigns on ranked.campaign = campaigns.campaign
    inner join first_steps on ranked.campaign = first_steps.campaign
    cross join lateral unnest(first_steps.channels) with ordinality as channel (name, preference)
    left join customers on ranked.customer_id = customers.customer_id
    left join consents on ranked.customer_id = consents.customer_id and channel.name = consents.channel
    left join active_push on ranked.customer_id = active_push.customer_id
    left join suppressed on ranked.customer_id = suppressed.customer_id and channel.name = suppressed.channel
),

-- the first allowed channel; when none is, the first channel's reason
channel_choice as (
    select distinct on (campaign, cart_id)
        campaign,
        cart_id,
        case when channel_reason is null then channel end as channel,
        channel_reason as first_channel_reason
    from channel_checks
    order by campaign asc, cart_id asc, (channel_reason is not null) asc, preference asc
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
            when campaigns.audience = 'test_group' and test_group.customer_id is null then 'not_in_test_group'
            when already_sent.cart_id is not null then 'already_sent'
            when capped.cart_id is not null then 'frequency_capped'
            when
                ('x' || substr(md5(ranked.customer_id || ':' || ranked.campaign), 1, 8))::bit(32)::bigint % 100
                < campaigns.holdout_percent
                then 'holdout'
        end as reason
    from ranked
    inner join campaigns on ranked.campaign = campaigns.campaign
    inner join channel_choice on ranked.campaign = channel_choice.campaign and ranked.cart_id = channel_choice.cart_id
    left join customers on ranked.customer_id = customers.customer_id
    left join test_group on ranked.customer_id = test_group.customer_id
    left join already_sent
        on
            ranked.campaign = already_sent.campaign
            and already_sent.step = 1
            and ranked.cart_id = already_sent.cart_id
            and ranked.cart_version = already_sent.cart_version
    left join capped on ranked.campaign = capped.campaign and ranked.cart_id = capped.cart_id
)

select * from decided
