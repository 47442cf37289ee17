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

-- the cart version's items, unnested from the version's event (as stg_shop__cart_items does for all events)
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

-- minus the items bought by the cart's customer, or in an order for the cart, after they were added: two
-- anti-joins on keys (an `or` between them would make one subquery per item)
net as (
    select current_items.*
    from current_items
    where
        not exists (
            select 1 from purchases
            where
                current_items.customer_id = purchases.customer_id
                and current_items.sku = purchases.sku
                and current_items.added_at <= purchases.placed_at
        )
        and not exists (
            select 1 from purchases
            where
                current_items.cart_id = purchases.cart_id
                and current_items.sku = purchases.sku
                and current_items.added_at <= purchases.placed_at
        )
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
