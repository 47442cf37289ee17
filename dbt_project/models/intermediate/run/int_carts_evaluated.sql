-- Each active cart at T with its remaining items and value, and whether it is converted (D3): a completed
-- order by the customer (or for the cart) placed after the cart's last activity and no later than T, or
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

orders as (
    select * from {{ ref('int_orders_for_active_carts') }}
),

converted as (
    select carts.cart_id
    from carts
    inner join orders
        on
            carts.customer_id = orders.customer_id
            and carts.last_activity_at < orders.placed_at
    union
    select carts.cart_id
    from carts
    inner join orders
        on
            carts.cart_id = orders.cart_id
            and carts.last_activity_at < orders.placed_at
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
        carts.gross_item_count,
        (
            converted.cart_id is not null
            or (carts.gross_item_count > 0 and net_items.item_count is null)
        ) as is_converted
    from carts
    left join net_items on carts.cart_id = net_items.cart_id
    left join converted on carts.cart_id = converted.cart_id
)

select * from final
