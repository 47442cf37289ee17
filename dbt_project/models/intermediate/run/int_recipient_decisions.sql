{#- Hash joins only: the chain of CTEs below makes the planner estimate a handful of candidates where a
    day can hold hundreds of thousands, and a nested loop over the customers then turns quadratic (measured:
    over 4 min at 240k abandoned carts). `set local` lasts for this model's transaction only. -#}
{{ config(pre_hook="set local enable_nestloop = off") }}
-- The decision of every step this build decides (var decision_scope, see int_campaign_steps) for every cart
-- version it is due for at T: the channel it would use (F3) and the first reason, in the E9 priority order,
-- that stops it. reason is null when the cart version is to be messaged. A step that is not due yet has no
-- row at all (F1).
--
-- Due (F1, docs/INTERFACES.md): step 1 when the cart version is abandoned at T (D2) and
-- last_activity_at + abandon_after + step 1's delay <= T; step k >= 2 when step k - 1's outbox row for the
-- same campaign and cart version is no longer pending and its decided_at + step k's delay <= T, for
-- max_cart_age from then on (as step 1 stays in the D2 window). Every rule reads decided_at, never the wall
-- clock (O2).
--
-- E9: `applicable_reasons` holds every reason that applies to the row, `reason` the first of them in the
-- order of the exclusion_reasons seed (dbt_project/seeds/exclusion_reasons.csv, the one list of reasons).
-- The reasons of a step skipped for its channel (F3) or as engaged hand the sequence on (`hands_on`).
with abandoned as (
    select * from {{ ref('int_abandoned_carts') }}
),

campaigns as (
    select * from {{ ref('int_campaigns') }}
),

steps as (
    select * from {{ ref('int_campaign_steps') }}
    where is_decided
),

carts as (
    select * from {{ ref('int_carts_evaluated') }}
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
    select * from {{ ref('int_push_subscriptions_as_of_t') }}
),

-- the messages of the runs before T: a run's own outbox rows (decided at T) are its output, never its input,
-- so a rerun of T decides exactly as the first run did (O2; the outbox's keys keep E6 across the reruns)
messages as (
    select * from {{ ref('stg_ops__messages') }}
    where decided_at < {{ evaluation_time() }}
),

provider_message_ids as (
    select * from {{ ref('stg_ops__provider_message_ids') }}
),

test_group as (
    select * from {{ ref('stg_shop__test_group') }}
),

-- E9: the reasons and their order (a seed an analyst reads and edits)
reasons as (
    select * from {{ ref('exclusion_reasons') }}
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

-- F1: step 1 of the abandoned carts, once its delay after abandonment has passed
first_step_candidates as (
    select
        ranked.campaign,
        steps.step,
        ranked.cart_id,
        ranked.cart_version,
        ranked.customer_id,
        ranked.cart_value,
        ranked.currency,
        ranked.recency_rank,
        null::uuid as previous_message_id,
        null::text as previous_status,
        null::text as previous_skip_reason
    from ranked
    inner join campaigns on ranked.campaign = campaigns.campaign
    inner join steps on ranked.campaign = steps.campaign and steps.step = 1
    where
        ranked.last_activity_at
        + make_interval(mins => campaigns.abandon_after_minutes + steps.delay_minutes)
        <= campaigns.evaluated_at
),

-- F1: step k >= 2 of the cart versions step k - 1 reached, once its delay after step k - 1's decision has
-- passed and for max_cart_age after that; a pending step k - 1 (not sent yet, e.g. quiet hours) is not a
-- reason yet. A cart restarted on a new version (F2) keeps only its newest sequence's row per step.
later_step_candidates as (
    select distinct on (steps.campaign, steps.step, messages.cart_id)
        steps.campaign,
        steps.step,
        messages.cart_id,
        messages.cart_version,
        messages.customer_id,
        messages.message_id as previous_message_id,
        messages.status as previous_status,
        messages.skip_reason as previous_skip_reason
    from steps
    inner join campaigns on steps.campaign = campaigns.campaign
    inner join messages
        on
            steps.campaign = messages.campaign
            and steps.step - 1 = messages.step
            and messages.decided_at + make_interval(mins => steps.delay_minutes) <= campaigns.evaluated_at
            and messages.decided_at
            + make_interval(mins => steps.delay_minutes)
            + make_interval(hours => campaigns.max_cart_age_hours)
            > campaigns.evaluated_at
    where steps.step > 1 and messages.status != 'pending'
    order by steps.campaign asc, steps.step asc, messages.cart_id asc, messages.decided_at desc
),

-- F2: the first exit of each later step's cart version by T (int_cart_version_exits, the one definition the
-- send-time re-check reads too), in the exclusion_reasons seed's order; read by key, version by version
exits as (
    select
        later.campaign,
        later.step,
        later.cart_id,
        first_exit.exit_reason
    from later_step_candidates as later
    cross join lateral (
        select version_exits.exit_reason
        from {{ ref('int_cart_version_exits') }} as version_exits
        inner join reasons on version_exits.exit_reason = reasons.reason
        where
            version_exits.cart_id = later.cart_id
            and version_exits.cart_version = later.cart_version
            and version_exits.exited_at <= {{ evaluation_time() }}
        order by reasons.priority asc
        limit 1
    ) as first_exit
),

-- only_if_not_engaged: a message of this sequence (same campaign and cart version, an earlier step) was
-- opened or clicked up to T (by our message id custom arg, else by the provider's message id). Every
-- earlier step counts, not only the previous one: a previous step skipped as `engaged` or
-- `no_allowed_channel` has no message of its own to open.
engaged as (
    select distinct
        later.campaign,
        later.step,
        later.cart_id
    from later_step_candidates as later
    inner join messages as earlier
        on
            later.campaign = earlier.campaign
            and later.cart_id = earlier.cart_id
            and later.cart_version = earlier.cart_version
            and later.step > earlier.step
    left join provider_message_ids on earlier.message_id = provider_message_ids.message_id
    inner join {{ ref('stg_shop__provider_events') }} as events
        on
            (
                earlier.message_id::text = events.message_id
                or provider_message_ids.provider_message_id = events.provider_message_id
            )
            and events.event in ('open', 'click')
            and events.occurred_at <= {{ evaluation_time() }}
),

candidates as (
    select
        campaign,
        step,
        cart_id,
        cart_version,
        customer_id,
        cart_value,
        currency,
        recency_rank,
        previous_message_id,
        previous_status,
        previous_skip_reason
    from first_step_candidates
    union all
    select
        later.campaign,
        later.step,
        later.cart_id,
        later.cart_version,
        later.customer_id,
        carts.cart_value,
        carts.currency,
        1 as recency_rank,
        later.previous_message_id,
        later.previous_status,
        later.previous_skip_reason
    from later_step_candidates as later
    left join carts on later.cart_id = carts.cart_id
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

-- E5: first steps whose customer got a message decided in [T - frequency_cap_days, T), any campaign and
-- step. Not counted: the cart version's own messages (E6's business), and the same campaign's messages
-- for an earlier version of the same cart whose sequence had not reached its last step (F2: new items
-- restart the sequence). Later steps of an entered sequence are never capped; a sequence is entered by its
-- first message (pending, sent or unknown): a later step whose earlier steps were all skipped (F3, no
-- channel) is capped like a first step, so a skip never opens a way around E5.
entered as (
    select distinct
        campaign,
        cart_id,
        cart_version
    from messages
    where status in ('pending', 'sent', 'unknown')
),

capped as (
    select distinct
        candidates.campaign,
        candidates.step,
        candidates.cart_id
    from candidates
    inner join campaigns on candidates.campaign = campaigns.campaign
    inner join messages
        on
            candidates.customer_id = messages.customer_id
            and messages.decided_at
            >= campaigns.evaluated_at - make_interval(days => campaigns.frequency_cap_days)
            and campaigns.evaluated_at > messages.decided_at
    left join entered
        on
            candidates.campaign = entered.campaign
            and candidates.cart_id = entered.cart_id
            and candidates.cart_version = entered.cart_version
    where
        (candidates.step = 1 or entered.cart_id is null)
        and messages.status in ('pending', 'sent', 'unknown')
        and not (
            messages.campaign = candidates.campaign
            and messages.cart_id = candidates.cart_id
            and (messages.cart_version = candidates.cart_version or messages.step < campaigns.step_count)
        )
),

-- E2, E3, E4 for each channel the step may use, in the step's order of preference (F3)
channel_checks as (
    select
        candidates.campaign,
        candidates.step,
        candidates.cart_id,
        channel.name as channel,
        channel.preference,
        cardinality(steps.channels) as channel_count,
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
    from candidates
    inner join campaigns on candidates.campaign = campaigns.campaign
    inner join steps on candidates.campaign = steps.campaign and candidates.step = steps.step
    cross join lateral unnest(steps.channels) with ordinality as channel (name, preference)
    left join customers on candidates.customer_id = customers.customer_id
    left join consents on candidates.customer_id = consents.customer_id and channel.name = consents.channel
    left join active_push on candidates.customer_id = active_push.customer_id and channel.name = 'push'
    left join suppressed on candidates.customer_id = suppressed.customer_id and channel.name = suppressed.channel
),

-- F3: the first allowed channel; when none is, the channel's own reason for a one-channel step (E2-E4),
-- else no_allowed_channel
channel_choice as (
    select distinct on (campaign, step, cart_id)
        campaign,
        step,
        cart_id,
        case when channel_reason is null then channel end as channel,
        case when channel_count = 1 then channel_reason else 'no_allowed_channel' end as no_channel_reason
    from channel_checks
    order by campaign asc, step asc, cart_id asc, (channel_reason is not null) asc, preference asc
),

decided as (
    select
        candidates.campaign,
        candidates.step,
        candidates.cart_id,
        candidates.cart_version,
        candidates.customer_id,
        candidates.cart_value,
        candidates.currency,
        channel_choice.channel,
        campaigns.evaluated_at as decided_at,
        candidates.previous_message_id,
        -- E9: every reason that applies; `final` keeps the first in the exclusion_reasons seed's order
        array_remove(array[
            exits.exit_reason,
            -- F3: a step skipped for want of an allowed channel, or as engaged, hands the sequence on
            case
                when
                    candidates.step > 1
                    and candidates.previous_status != 'sent'
                    and not (
                        candidates.previous_status = 'skipped'
                        and coalesce(candidates.previous_skip_reason, '') in (
                            select hands_on_reasons.reason from reasons as hands_on_reasons
                            where hands_on_reasons.hands_on
                        )
                    )
                    then 'previous_step_not_sent'
            end,
            case when candidates.customer_id is null or customers.customer_id is null then 'anonymous' end,
            case when customers.customer_type = 'institution' then 'institutional' end,
            case when candidates.recency_rank > 1 then 'superseded_by_newer_cart' end,
            -- D4: a customer without an email address is never targeted, whatever the step's channel
            case when customers.customer_id is not null and customers.email is null then 'no_email' end,
            case when channel_choice.channel is null then channel_choice.no_channel_reason end,
            case when campaigns.audience = 'test_group' and test_group.customer_id is null then 'not_in_test_group' end,
            case when already_sent.cart_id is not null then 'already_sent' end,
            case when capped.cart_id is not null then 'frequency_capped' end,
            case when steps.only_if_not_engaged and engaged.cart_id is not null then 'engaged' end,
            case
                when
                    ('x' || substr(md5(candidates.customer_id || ':' || candidates.campaign), 1, 8))::bit(32)::bigint
                    % 100
                    < campaigns.holdout_percent
                    then 'holdout'
            end
        ], null) as applicable_reasons
    from candidates
    inner join campaigns on candidates.campaign = campaigns.campaign
    inner join steps on candidates.campaign = steps.campaign and candidates.step = steps.step
    inner join channel_choice
        on
            candidates.campaign = channel_choice.campaign
            and candidates.step = channel_choice.step
            and candidates.cart_id = channel_choice.cart_id
    left join customers on candidates.customer_id = customers.customer_id
    left join test_group on candidates.customer_id = test_group.customer_id
    left join exits
        on
            candidates.campaign = exits.campaign
            and candidates.step = exits.step
            and candidates.cart_id = exits.cart_id
    left join engaged
        on
            candidates.campaign = engaged.campaign
            and candidates.step = engaged.step
            and candidates.cart_id = engaged.cart_id
    left join already_sent
        on
            candidates.campaign = already_sent.campaign
            and candidates.step = already_sent.step
            and candidates.cart_id = already_sent.cart_id
            and candidates.cart_version = already_sent.cart_version
    left join capped
        on
            candidates.step = capped.step
            and candidates.campaign = capped.campaign
            and candidates.cart_id = capped.cart_id
),

final as (
    select
        decided.campaign,
        decided.step,
        decided.cart_id,
        decided.cart_version,
        decided.customer_id,
        decided.cart_value,
        decided.currency,
        decided.channel,
        decided.decided_at,
        decided.previous_message_id,
        -- text, not an array: readable as it is, and typed in dbt's unit-test fixtures
        array_to_string(decided.applicable_reasons, ',') as applicable_reasons,
        (
            select applied.reason
            from unnest(decided.applicable_reasons) as applied (reason)
            -- a reason missing from the seed still stops the message (last), and its test fails
            left join reasons on applied.reason = reasons.reason
            order by coalesce(reasons.priority, 2147483647) asc
            limit 1
        ) as reason
    from decided
)

select * from final
