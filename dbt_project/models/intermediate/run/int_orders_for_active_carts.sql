-- The completed orders at T that D3 needs: placed no later than T, by the customer of an active cart
-- (int_carts_latest_state) or for one of those carts; an order's status is its latest-loaded event's
-- (stg_shop__orders). stg_shop__orders is read by key twice (through its indexes on customer_id and
-- cart_id), never whole, so a run costs what its active carts hold, not the order history.
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

by_customer as (
    select
        orders.order_id,
        orders.customer_id,
        orders.cart_id,
        orders.placed_at,
        orders.items
    from {{ ref('stg_shop__orders') }} as orders
    inner join customers on orders.customer_id = customers.customer_id
    where orders.placed_at <= {{ evaluation_time() }} and orders.status = 'completed'
),

for_cart as (
    select
        orders.order_id,
        orders.customer_id,
        orders.cart_id,
        orders.placed_at,
        orders.items
    from {{ ref('stg_shop__orders') }} as orders
    inner join carts on orders.cart_id = carts.cart_id
    where
        orders.placed_at <= {{ evaluation_time() }}
        and orders.status = 'completed'
        -- an order of the same customer is in by_customer already
        and not exists (
            select 1 from customers
            where customers.customer_id = orders.customer_id
        )
)

select * from by_customer
union all
select * from for_cart
