{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        pre_hook="set local work_mem = '256MB'",
        indexes=[
            {'columns': ['event_id'], 'unique': True},
            {'columns': ['_loaded_at']},
        ],
    )
}}
-- One row per order event id (orders arrive again when their status changes, and sometimes twice); the
-- first delivery wins. Incremental like stg_shop__cart_events: each run reads the rows loaded since the
-- last build and appends the events it has not seen yet. stg_shop__orders keeps each order's latest.
with source as (
    select * from {{ source('shop', 'orders') }} as raw_orders
    -- sqlfluff mis-indents the templated incremental filter below
    -- noqa: disable=LT02
    where
        {{ loaded_since_last_build('raw_orders._loaded_at') }}
        {% if is_incremental() %}
        and not exists (
            select 1 from {{ this }} as seen
            where seen.event_id = raw_orders.event_id
        )
        {%- endif %}
    -- noqa: enable=LT02
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
        _line_number as loaded_from_line,
        _loaded_at
    from source
    order by event_id asc, _loaded_at asc, _file_name asc, _line_number asc
)

select * from renamed
