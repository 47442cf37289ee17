{{
    config(
        materialized='incremental',
        pre_hook="set local work_mem = '256MB'",
        indexes=[
            {'columns': ['event_id'], 'unique': True},
            {'columns': ['cart_id', 'occurred_at']},
            {'columns': ['occurred_at']},
        ],
    )
}}
-- One row per event id (D1: events may arrive twice); the first delivery wins.
-- The anti-join against what was already copied hashes every event id once: work_mem keeps it in memory.
-- Incremental: a run appends the events it has not seen yet, whatever their occurred_at (late events
-- count), so the history is copied once; decisions filter on occurred_at <= T downstream (O2).
with source as (
    select * from {{ source('shop', 'cart_events') }} as raw_events
    {%- if is_incremental() %}
    where
        not exists (
            select 1 from {{ this }} as seen
            where seen.event_id = raw_events.event_id
        )
    {%- endif %}
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
