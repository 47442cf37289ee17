-- D1: a cart's state at T is the item list of its latest cart_updated event (by occurred_at, then
-- event_id); a later cart_deleted ends the cart. Late, duplicated and out-of-order events give the same state.
-- Only the carts with activity in one of the campaigns' D2 windows can be abandoned at T: they are the
-- only ones read (through the indexes of stg_shop__cart_events), so a run costs what its windows hold.
with campaigns as (
    select * from {{ ref('int_campaigns') }}
),

active_carts as (
    select distinct cart_id
    from {{ ref('stg_shop__cart_events') }}
    where
        occurred_at > (select min(campaigns.window_start) from campaigns)
        and occurred_at <= (select max(campaigns.window_end) from campaigns)
),

events as (
    select events.*
    from {{ ref('stg_shop__cart_events') }} as events
    inner join active_carts on events.cart_id = active_carts.cart_id
    where events.occurred_at <= {{ evaluation_time() }}
),

latest_event as (
    select distinct on (cart_id)
        cart_id,
        event_type as latest_event_type,
        occurred_at as last_activity_at
    from events
    order by cart_id asc, occurred_at desc, event_id desc
),

latest_update as (
    select distinct on (cart_id)
        cart_id,
        event_id as cart_version,
        customer_id,
        device,
        store_id,
        currency,
        cart_url,
        items,
        jsonb_array_length(items) as gross_item_count
    from events
    where event_type = 'cart_updated'
    order by cart_id asc, occurred_at desc, event_id desc
),

final as (
    select
        latest_update.cart_id,
        latest_update.cart_version,
        latest_update.customer_id,
        latest_update.device,
        latest_update.store_id,
        latest_update.currency,
        latest_update.cart_url,
        latest_update.items,
        latest_update.gross_item_count,
        latest_event.last_activity_at,
        latest_event.latest_event_type = 'cart_deleted' as is_deleted
    from latest_update
    inner join latest_event on latest_update.cart_id = latest_event.cart_id
)

select * from final
