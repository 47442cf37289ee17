-- D3: the items of each cart's current version, minus those whose SKU the customer bought (completed
-- order) after adding them and no later than T; ranked in the order they were put in the cart (M2).
with carts as (
    select * from {{ ref('int_carts_latest_state') }}
),

items as (
    select * from {{ ref('stg_shop__cart_items') }}
),

purchases as (
    select * from {{ ref('stg_shop__order_items') }}
    where status = 'completed' and placed_at <= {{ evaluation_time() }}
),

current_items as (
    select
        carts.cart_id,
        carts.cart_version,
        carts.customer_id,
        items.sku,
        items.quantity,
        items.unit_price,
        coalesce(items.added_at, carts.last_activity_at) as added_at,
        items.list_position
    from carts
    inner join items on carts.cart_version = items.event_id
),

net as (
    select current_items.*
    from current_items
    where
        not exists (
            select 1
            from purchases
            where
                purchases.sku = current_items.sku
                and purchases.placed_at >= current_items.added_at
                and (
                    purchases.customer_id = current_items.customer_id
                    or purchases.cart_id = current_items.cart_id
                )
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
