-- F5: every retargeting membership that has begun by T, one row per (customer, joined_at).
-- Join: a customer joins at their first candidate moment (int_retargeting_candidates), and again at the
-- first candidate at least `retargeting_membership_days` (14) after their previous join — at most once per
-- 14 days, whether or not they left early. A greedy walk: a recursive CTE whose every step is one index
-- lookup (the next candidate after the previous join + 14 days), so a run costs the joins, not the history.
-- Leave: 14 days after joining, or earlier on the customer's first completed order placed after joining
-- (a cancelled or refunded order does not count: an order's status is its latest-loaded event's), or when
-- they opt out of email (email consent withdrawn, unsubscribe, spam report) — all known by T only.
with recursive candidates as (
    select * from {{ ref('int_retargeting_candidates') }}
),

first_joins as (
    select distinct on (customer_id)
        customer_id,
        candidate_at as joined_at,
        email_sha256
    from candidates
    order by customer_id asc, candidate_at asc
),

joins as (
    select
        customer_id,
        joined_at,
        email_sha256
    from first_joins
    union all
    select
        joins.customer_id,
        next_join.candidate_at as joined_at,
        next_join.email_sha256
    from joins
    cross join lateral (
        select
            later.candidate_at,
            later.email_sha256
        from {{ ref('int_retargeting_candidates') }} as later
        where
            later.customer_id = joins.customer_id
            and later.candidate_at
            >= joins.joined_at + make_interval(days => {{ var('retargeting_membership_days', 14) }})
        order by later.candidate_at asc
        limit 1
    ) as next_join
),

-- the first completed order placed after joining, up to T
purchases as (
    select
        joins.customer_id,
        joins.joined_at,
        first_order.placed_at
    from joins
    cross join lateral (
        select orders.placed_at
        from {{ ref('stg_shop__orders') }} as orders
        where
            orders.customer_id = joins.customer_id
            and orders.status = 'completed'
            and orders.placed_at > joins.joined_at
            and orders.placed_at <= {{ evaluation_time() }}
        order by orders.placed_at asc
        limit 1
    ) as first_order
),

-- the first email consent record after joining that takes consent away, up to T
withdrawals as (
    select
        joins.customer_id,
        joins.joined_at,
        min(consents.recorded_at) as withdrawn_at
    from joins
    inner join {{ ref('stg_shop__consents') }} as consents
        on
            joins.customer_id = consents.customer_id
            and consents.channel = 'email'
            and joins.joined_at < consents.recorded_at
            and consents.recorded_at <= {{ evaluation_time() }}
            and consents.status != 'granted'
    group by joins.customer_id, joins.joined_at
),

opt_outs as (
    select
        customer_id,
        null::text as email_sha256,
        recorded_at as opted_out_at
    from {{ ref('stg_ops__unsubscribes') }}
    where channel = 'email' and recorded_at <= {{ evaluation_time() }}
    union all
    select
        null::text as customer_id,
        encode(sha256(convert_to(trim(lower(email)), 'UTF8')), 'hex') as email_sha256,
        occurred_at as opted_out_at
    from {{ ref('stg_shop__provider_events') }}
    where
        event in ('unsubscribe', 'group_unsubscribe', 'spamreport')
        and email is not null
        and occurred_at <= {{ evaluation_time() }}
),

-- An unsubscribe or spam report is for good (E4): one made before joining would have kept the customer
-- out, unless it arrived after their moment was settled (macros/retargeting.sql); then it ends the
-- membership as it begins
unsubscribed as (
    select
        joins.customer_id,
        joins.joined_at,
        greatest(joins.joined_at, min(opt_outs.opted_out_at)) as opted_out_at
    from joins
    inner join opt_outs
        on (joins.customer_id = opt_outs.customer_id or joins.email_sha256 = opt_outs.email_sha256)
    group by joins.customer_id, joins.joined_at
),

ends as (
    select
        joins.customer_id,
        joins.joined_at,
        joins.email_sha256,
        joins.joined_at + make_interval(days => {{ var('retargeting_membership_days', 14) }}) as expires_at,
        purchases.placed_at as purchased_at,
        least(withdrawals.withdrawn_at, unsubscribed.opted_out_at) as opted_out_at
    from joins
    left join purchases
        on joins.customer_id = purchases.customer_id and joins.joined_at = purchases.joined_at
    left join withdrawals
        on joins.customer_id = withdrawals.customer_id and joins.joined_at = withdrawals.joined_at
    left join unsubscribed
        on joins.customer_id = unsubscribed.customer_id and joins.joined_at = unsubscribed.joined_at
),

leaves as (
    select
        customer_id,
        email_sha256,
        joined_at,
        purchased_at,
        opted_out_at,
        least(expires_at, purchased_at, opted_out_at) as leaves_at
    from ends
),

final as (
    select
        customer_id,
        email_sha256,
        joined_at,
        leaves_at,
        -- why the membership ended by T (null: still a member at T)
        case
            when leaves_at > {{ evaluation_time() }} then null
            when leaves_at = purchased_at then 'purchased'
            when leaves_at = opted_out_at then 'opted_out'
            else 'expired'
        end as leave_reason
    from leaves
)

select * from final
