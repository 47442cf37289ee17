-- Each cart at T with its remaining items and value, and whether it is converted (D3): a completed order
-- by the customer (or for the cart) placed after the cart's last activity and no later than T, or
-- nothing left once purchased items are removed.
with carts as (
    select * from {{ ref('int_carts_latest_state') }}
),

net_items as (
    select
        cart_id,
        count(*) as item_count,
        sum(quantity * unit_price) as cart_value
    from {{ ref('int_cart_items_net_of_purchases') }}
    group by cart_id
),

gross_items as (
    select
        event_id as cart_version,
        count(*) as gross_item_count
    from {{ ref('stg_shop__cart_items') }}
    group by event_id
),

orders as (
    select * from {{ ref('stg_shop__orders') }}
    where status = 'completed' and placed_at <= {{ evaluation_time() }}
),

final as (
    select
        carts.cart_id,
        carts.cart_version,
        carts.customer_id,
        carts.device,
        carts.store_id,
        carts.currency,
        carts.cart_url,
        carts.last_activity_at,
        carts.is_deleted,
        coalesce(net_items.item_count, 0) as item_count,
        coalesce(net_items.cart_value, 0)::numeric(12, 2) as cart_value,
        coalesce(gross_items.gross_item_count, 0) as gross_item_count,
        (
            exists (
                select 1 from orders
                where
                    orders.placed_at > carts.last_activity_at
                    and (orders.cart_id = carts.cart_id or orders.customer_id = carts.customer_id)
            )
            or (coalesce(gross_items.gross_item_count, 0) > 0 and net_items.item_count is null)
        ) as is_converted
    from carts
    left join net_items on carts.cart_id = net_items.cart_id
    left join gross_items on carts.cart_version = gross_items.cart_version
)

select * from final
