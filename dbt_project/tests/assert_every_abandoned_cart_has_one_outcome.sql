-- E9: every abandoned cart of a campaign has exactly one outcome for the first step: either it is in
-- eligible_recipients_decided, or it has exactly one row (one reason) in recipient_exclusions — never
-- both, never neither, never two reasons. Rows of either mart for a cart that is not abandoned fail too.
with abandoned as (
    select
        campaign,
        cart_id,
        cart_version
    from {{ ref('abandoned_carts') }}
),

eligible as (
    select
        campaign,
        cart_id,
        cart_version,
        count(*) as eligible_rows
    from {{ ref('eligible_recipients_decided') }}
    where step = 1
    group by campaign, cart_id, cart_version
),

excluded as (
    select
        campaign,
        cart_id,
        cart_version,
        count(*) as reason_rows
    from {{ ref('recipient_exclusions') }}
    where step = 1
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
