-- One row per event id (D1: events may arrive twice); the first delivery wins.
with source as (
    select * from {{ source('shop', 'cart_events') }}
),

renamed as (
    select distinct on (event_id)
        event_id,
        event_type,
        occurred_at,
        cart_id,
        customer_id,
        coalesce(device, 'unknown') as device,
        store_id,
        currency,
        cart_url,
        items
    from source
    order by event_id asc, _file_name asc, _line_number asc
)

select * from renamed
