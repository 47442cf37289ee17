-- One row per order: events deduplicated by event id, then the latest-loaded status of each order wins
-- (a completed order may later arrive as cancelled or refunded).
with source as (
    select * from {{ source('shop', 'orders') }}
),

events as (
    select distinct on (event_id) *
    from source
    order by event_id asc, _file_name asc, _line_number asc
),

latest as (
    select distinct on (order_id)
        order_id,
        event_id,
        customer_id,
        cart_id,
        placed_at,
        status,
        store_id,
        currency,
        total,
        items
    from events
    order by order_id asc, _file_name desc, _line_number desc
)

select * from latest
