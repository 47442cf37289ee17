{{
    config(
        materialized='incremental',
        pre_hook="set local work_mem = '256MB'",
        indexes=[
            {'columns': ['event_id'], 'unique': True},
            {'columns': ['order_id']},
            {'columns': ['customer_id', 'placed_at']},
            {'columns': ['cart_id']},
            {'columns': ['placed_at']},
        ],
    )
}}
-- One row per order event id (orders arrive again when their status changes, and sometimes twice).
-- The anti-join against what was already copied hashes every event id once: work_mem keeps it in memory.
-- Incremental like stg_shop__cart_events: each run appends the events it has not seen yet.
with source as (
    select * from {{ source('shop', 'orders') }} as raw_orders
    {%- if is_incremental() %}
    where
        not exists (
            select 1 from {{ this }} as seen
            where seen.event_id = raw_orders.event_id
        )
    {%- endif %}
),

renamed as (
    select distinct on (event_id)
        event_id,
        order_id,
        customer_id,
        cart_id,
        placed_at,
        status,
        store_id,
        currency,
        total,
        items,
        _file_name as loaded_from_file,
        _line_number as loaded_from_line
    from source
    order by event_id asc, _file_name asc, _line_number asc
)

select * from renamed
