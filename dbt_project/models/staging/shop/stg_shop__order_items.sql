with orders as (
    select * from {{ ref('stg_shop__orders') }}
),

unnested as (
    select
        orders.order_id,
        orders.customer_id,
        orders.cart_id,
        orders.placed_at,
        orders.status,
        item.value ->> 'sku' as sku,
        (item.value ->> 'quantity')::integer as quantity,
        (item.value ->> 'unit_price')::numeric(12, 2) as unit_price
    from orders
    cross join lateral jsonb_array_elements(orders.items) as item (value)
)

select * from unnested
