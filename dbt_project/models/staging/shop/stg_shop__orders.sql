{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['order_id'], 'unique': True},
            {'columns': ['customer_id', 'placed_at']},
            {'columns': ['cart_id']},
            {'columns': ['_loaded_at']},
        ],
    )
}}
-- One row per order: its latest-loaded event wins (a completed order may later arrive as cancelled or
-- refunded). Incremental: the order events added since the last build (less the overlap) replace their
-- orders' rows. An order whose stored row came from a later load than any of its events read now keeps
-- that row: the overlap can re-read an older load (its `_loaded_at` no longer held once all its orders
-- changed) while skipping the newer one, and a cancellation must never revert to `completed`.
with events as (
    select loaded_events.* from {{ ref('stg_shop__order_events') }} as loaded_events
    where {{ loaded_since_last_build('loaded_events._loaded_at') }}
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
        items,
        _loaded_at
    from events
    order by order_id asc, _loaded_at desc, loaded_from_file desc, loaded_from_line desc
)

select latest.* from latest
-- the linter mis-indents the templated incremental filter below
-- noqa: disable=LT02
{%- if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as held
        where held.order_id = latest.order_id and held._loaded_at > latest._loaded_at
    )
{%- endif %}
-- noqa: enable=LT02
