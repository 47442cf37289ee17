{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        pre_hook="{{ attribution_delete_order_window() }}",
        indexes=[
            {'columns': ['order_id'], 'unique': True},
            {'columns': ['message_id']},
            {'columns': ['attributed_at']},
        ],
    )
}}
-- A2: each completed order goes to the latest cart-recovery message its customer was sent (status `sent`)
-- whose decided_at lies within the message's campaign `attribution_window_hours` before the order:
-- decided_at in [placed_at - window, placed_at], both ends included (a message exactly 24 h before counts).
-- - decided_at (the deciding run's T), not sent_at (wall clock), as every rule on past messages (contract
--   §4): the same data gives the same attribution on any replay (O2); sends follow decisions by minutes.
-- - Latest wins: the greatest decided_at; equal ones (two campaigns decided by one run) by the later step,
--   then campaign name and message id, so the choice is stable.
-- - Cancelled and refunded orders are excluded (the order's latest status); each order at most once.
-- - Only orders placed up to T. Incremental: a run re-attributes the orders placed in
--   (T - attribution_lookback_days, T] (late orders and status changes), and its pre-hook drops
--   the rows of orders no longer completed; the first build attributes every order up to T.
with orders as (
    select
        order_id,
        customer_id,
        cart_id,
        placed_at,
        store_id,
        currency,
        total
    from {{ ref('stg_shop__orders') }}
    where
        status = 'completed'
        and customer_id is not null
        and placed_at <= {{ evaluation_time() }}
        {%- if is_incremental() %}
        and placed_at > {{ attribution_orders_from() }}
        {%- endif %}
),

messages as (
    select * from {{ ref('int_recovery_messages') }}
    where is_sent
),

candidates as (
    select
        orders.order_id,
        orders.customer_id,
        orders.cart_id as order_cart_id,
        orders.placed_at,
        orders.store_id,
        orders.currency,
        orders.total,
        messages.message_id,
        messages.campaign,
        messages.step,
        messages.channel,
        messages.cart_id,
        messages.cart_version,
        messages.decided_at,
        messages.coupon_code,
        messages.coupon_tier,
        messages.locale,
        messages.attribution_window_hours
    from orders
    inner join messages
        on
            orders.customer_id = messages.customer_id
            and orders.placed_at >= messages.decided_at
            and orders.placed_at - make_interval(hours => messages.attribution_window_hours) <= messages.decided_at
),

latest as (
    select distinct on (order_id) *
    from candidates
    order by order_id asc, decided_at desc, step desc, campaign asc, message_id asc
),

final as (
    select
        order_id,
        message_id,
        campaign,
        total as revenue,
        placed_at as attributed_at,
        step,
        channel,
        customer_id,
        cart_id,
        cart_version,
        coalesce(order_cart_id = cart_id, false) as is_same_cart,
        decided_at as message_decided_at,
        attribution_window_hours,
        coupon_code,
        coupon_tier,
        store_id,
        locale,
        currency,
        {{ evaluation_time() }} as evaluated_at
    from latest
)

select * from final
