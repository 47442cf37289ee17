{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        pre_hook="set local work_mem = '256MB'",
        indexes=[
            {'columns': ['event_id'], 'unique': True},
            {'columns': ['cart_id', 'occurred_at']},
            {'columns': ['occurred_at']},
            {'columns': ['_loaded_at']},
        ],
    )
}}
-- One row per event id (D1: events may arrive twice); the first delivery wins.
-- Incremental: a run reads the rows loaded since the last build (macros/loaded_since_last_build.sql),
-- whatever their occurred_at (late events count), and appends the events it has not seen yet, so the
-- history is copied once and a day costs what the day loaded; decisions filter on occurred_at <= T
-- downstream (O2).
with source as (
    select * from {{ source('shop', 'cart_events') }} as raw_events
    -- sqlfluff mis-indents the templated incremental filter below
    -- noqa: disable=LT02
    where
        {{ loaded_since_last_build('raw_events._loaded_at') }}
        {% if is_incremental() %}
        and not exists (
            select 1 from {{ this }} as seen
            where seen.event_id = raw_events.event_id
        )
        {%- endif %}
    -- noqa: enable=LT02
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
        items,
        _loaded_at
    from source
    order by event_id asc, _loaded_at asc, _file_name asc, _line_number asc
)

select * from renamed
