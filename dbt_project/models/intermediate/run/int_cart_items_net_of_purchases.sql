-- D3: the items of each cart's current version, minus those whose SKU the customer bought (completed
-- order) after adding them and no later than T; ranked in the order they were put in the cart (M2).
with carts as (
    select * from {{ ref('int_carts_latest_state') }}
),

purchases as (
    select
        orders.customer_id,
        orders.cart_id,
        orders.placed_at,
        item.value ->> 'sku' as sku
    from {{ ref('int_orders_for_active_carts') }} as orders
    cross join lateral jsonb_array_elements(orders.items) as item (value)
),

-- an item is bought when a purchase of its SKU, by the cart's customer or in an order for the cart, was
-- placed at or after the item was added: the last such purchase decides, so each side is one row per key
last_bought_by_customer as (
    select
        customer_id,
        sku,
        max(placed_at) as last_bought_at
    from purchases
    where customer_id is not null
    group by customer_id, sku
),

last_bought_for_cart as (
    select
        cart_id,
        sku,
        max(placed_at) as last_bought_at
    from purchases
    where cart_id is not null
    group by cart_id, sku
),

-- the cart version's items, unnested from the version's event
current_items as (
    select
        carts.cart_id,
        carts.cart_version,
        carts.customer_id,
        item.value ->> 'sku' as sku,
        (item.value ->> 'quantity')::integer as quantity,
        (item.value ->> 'unit_price')::numeric(12, 2) as unit_price,
        coalesce((item.value ->> 'added_at')::timestamptz, carts.last_activity_at) as added_at,
        item.ordinality::integer as list_position
    from carts
    cross join lateral jsonb_array_elements(carts.items) with ordinality as item (value, ordinality)
),

net as (
    select current_items.*
    from current_items
    left join last_bought_by_customer as by_customer
        on
            current_items.customer_id = by_customer.customer_id
            and current_items.sku = by_customer.sku
    left join last_bought_for_cart as for_cart
        on
            current_items.cart_id = for_cart.cart_id
            and current_items.sku = for_cart.sku
    where
        not coalesce(by_customer.last_bought_at >= current_items.added_at, false)
        and not coalesce(for_cart.last_bought_at >= current_items.added_at, false)
),

final as (
    select
        net.*,
        row_number() over (
            partition by net.cart_id order by net.added_at asc, net.list_position asc
        ) as item_rank
    from net
)

select * from final
