-- The items of each cart_updated event, unnested, with their position in the event's list (M2 order).
with events as (
    select * from {{ ref('stg_shop__cart_events') }}
    where event_type = 'cart_updated'
),

unnested as (
    select
        events.event_id,
        events.cart_id,
        item.value ->> 'sku' as sku,
        (item.value ->> 'quantity')::integer as quantity,
        (item.value ->> 'unit_price')::numeric(12, 2) as unit_price,
        (item.value ->> 'added_at')::timestamptz as added_at,
        item.ordinality::integer as list_position
    from events
    cross join lateral jsonb_array_elements(events.items) with ordinality as item (value, ordinality)
)

select * from unnested
