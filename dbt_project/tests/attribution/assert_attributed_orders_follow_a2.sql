{{ config(tags=['attribution']) }}
-- A2: every attributed order is completed, placed by the customer of a sent message within that message's
-- window after its decided_at, and no later sent message of the same campaign falls between them (the
-- latest wins). Returns each row that breaks a rule, with the rule.
with attributed as (
    select
        attributed_orders.order_id,
        attributed_orders.attributed_at,
        orders.status as order_status,
        orders.customer_id as order_customer_id,
        orders.placed_at,
        messages.status as message_status,
        messages.customer_id as message_customer_id,
        messages.campaign,
        messages.decided_at
    from {{ ref('attributed_orders') }} as attributed_orders
    left join {{ ref('stg_shop__orders') }} as orders on attributed_orders.order_id = orders.order_id
    left join {{ ref('stg_ops__messages') }} as messages on attributed_orders.message_id = messages.message_id
),

later_messages as (
    select distinct attributed.order_id
    from attributed
    inner join {{ ref('stg_ops__messages') }} as later
        on
            attributed.message_customer_id = later.customer_id
            and attributed.campaign = later.campaign
            and attributed.decided_at < later.decided_at
            and attributed.placed_at >= later.decided_at
    where later.status = 'sent'
),

checked as (
    select
        attributed.order_id,
        case
            when coalesce(attributed.order_status, '') != 'completed' then 'order not completed'
            when coalesce(attributed.message_status, '') != 'sent' then 'message not sent'
            when attributed.message_customer_id != attributed.order_customer_id then 'another customer'
            when attributed.attributed_at != attributed.placed_at then 'attributed_at is not placed_at'
            when attributed.decided_at > attributed.placed_at then 'message after the order'
            when
                attributed.decided_at
                < attributed.placed_at - make_interval(hours => {{ max_attribution_window_hours() }})
                then 'message before the window'
            when later_messages.order_id is not null then 'a later message of the campaign'
        end as broken_rule
    from attributed
    left join later_messages on attributed.order_id = later_messages.order_id
)

select * from checked
where broken_rule is not null
