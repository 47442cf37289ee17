-- The completed orders at T that D3 needs: placed no later than T, by the customer of an active cart
-- (int_carts_latest_state) or for one of those carts; an order's status is its latest-loaded event's.
-- stg_shop__order_events is read three times by key (never materialized whole in a CTE), so its indexes
-- on customer_id, cart_id and order_id keep a run proportional to its active carts.
with carts as (
    select
        cart_id,
        customer_id
    from {{ ref('int_carts_latest_state') }}
),

customers as (
    select distinct customer_id from carts
    where customer_id is not null
),

relevant_orders as (
    select order_events.order_id
    from {{ ref('stg_shop__order_events') }} as order_events
    inner join customers on order_events.customer_id = customers.customer_id
    where order_events.placed_at <= {{ evaluation_time() }}
    union
    select order_events.order_id
    from {{ ref('stg_shop__order_events') }} as order_events
    inner join carts on order_events.cart_id = carts.cart_id
    where order_events.placed_at <= {{ evaluation_time() }}
),

latest as (
    select distinct on (order_events.order_id)
        order_events.order_id,
        order_events.customer_id,
        order_events.cart_id,
        order_events.placed_at,
        order_events.status,
        order_events.items
    from {{ ref('stg_shop__order_events') }} as order_events
    inner join relevant_orders on order_events.order_id = relevant_orders.order_id
    order by order_events.order_id asc, order_events.loaded_from_file desc, order_events.loaded_from_line desc
),

final as (
    select
        order_id,
        customer_id,
        cart_id,
        placed_at,
        items
    from latest
    where status = 'completed'
)

select * from final
