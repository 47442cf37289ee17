-- E9: every abandoned cart of a campaign whose first step this build decides (var decision_scope) and is
-- due (F1: its delay after abandonment has passed) has exactly one outcome for the first step: either it
-- is to be messaged, or it has exactly one row with one reason — never
-- both, never neither, never two reasons. Step-1 rows of either mart for any other cart fail too.
with abandoned as (
    select
        abandoned_carts.campaign,
        abandoned_carts.cart_id,
        abandoned_carts.cart_version
    from {{ ref('int_abandoned_carts') }} as abandoned_carts
    inner join {{ ref('int_campaigns') }} as campaigns on abandoned_carts.campaign = campaigns.campaign
    inner join {{ ref('int_campaign_steps') }} as steps
        on abandoned_carts.campaign = steps.campaign and steps.step = 1
    where
        steps.is_decided
        and abandoned_carts.last_activity_at
        + make_interval(mins => campaigns.abandon_after_minutes + steps.delay_minutes)
        <= campaigns.evaluated_at
),

eligible as (
    select
        campaign,
        cart_id,
        cart_version,
        count(*) as eligible_rows
    from {{ ref('int_decisions') }}
    where step = 1 and reason is null
    group by campaign, cart_id, cart_version
),

excluded as (
    select
        campaign,
        cart_id,
        cart_version,
        count(*) as reason_rows
    from {{ ref('int_decisions') }}
    where step = 1 and reason is not null
    group by campaign, cart_id, cart_version
),

outcomes as (
    select
        coalesce(abandoned.campaign, eligible.campaign, excluded.campaign) as campaign,
        coalesce(abandoned.cart_id, eligible.cart_id, excluded.cart_id) as cart_id,
        abandoned.cart_id is not null as is_abandoned,
        coalesce(eligible.eligible_rows, 0) as eligible_rows,
        coalesce(excluded.reason_rows, 0) as reason_rows
    from abandoned
    full outer join eligible
        on
            abandoned.campaign = eligible.campaign
            and abandoned.cart_id = eligible.cart_id
            and abandoned.cart_version = eligible.cart_version
    full outer join excluded
        on
            coalesce(abandoned.campaign, eligible.campaign) = excluded.campaign
            and coalesce(abandoned.cart_id, eligible.cart_id) = excluded.cart_id
            and coalesce(abandoned.cart_version, eligible.cart_version) = excluded.cart_version
),

final as (
    select *
    from outcomes
    where not is_abandoned or eligible_rows + reason_rows != 1
)

select * from final
