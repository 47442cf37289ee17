-- E4: who must never be messaged again on a channel, as of T. Hard bounces, drops for a bounce, spam
-- reports and unsubscribes from the provider (by address), plus the project's own unsubscribe records.
with provider as (
    select distinct
        'email' as channel,
        email,
        null::text as customer_id
    from {{ ref('stg_shop__provider_events') }}
    where
        occurred_at <= {{ evaluation_time() }}
        and email is not null
        and (
            event in ('spamreport', 'unsubscribe', 'group_unsubscribe')
            or (event = 'bounce' and coalesce(bounce_type, 'bounce') = 'bounce')
            or (event = 'dropped' and coalesce(reason, '') ilike '%bounce%')
        )
),

-- the same events when they carry no address but our message id (custom arg): the message's customer
by_message as (
    select distinct
        'email' as channel,
        null::text as email,
        message_rows.customer_id
    from {{ ref('stg_shop__provider_events') }} as events
    inner join {{ ref('stg_ops__messages') }} as message_rows
        on events.message_id = message_rows.message_id::text
    where
        events.occurred_at <= {{ evaluation_time() }}
        and events.email is null
        and (
            events.event in ('spamreport', 'unsubscribe', 'group_unsubscribe')
            or (events.event = 'bounce' and coalesce(events.bounce_type, 'bounce') = 'bounce')
            or (events.event = 'dropped' and coalesce(events.reason, '') ilike '%bounce%')
        )
),

-- E4, F4: an SMS STOP reply (provider event `sms_stop`) suppresses SMS for the customer from the event's time
-- on: the customer of our message it answers (message_id custom arg), the customer the event names, or the
-- customer whose phone at T is the number that replied (payload `phone`, or Twilio's `from` / `From`)
stop_events as (
    select
        message_id,
        customer_id,
        phone
    from {{ ref('stg_shop__provider_events') }}
    where event = 'sms_stop' and occurred_at <= {{ evaluation_time() }}
),

sms_stops as (
    select
        'sms' as channel,
        null::text as email,
        message_rows.customer_id
    from stop_events
    inner join {{ ref('stg_ops__messages') }} as message_rows
        on stop_events.message_id = message_rows.message_id::text
    union
    select
        'sms' as channel,
        null::text as email,
        customer_id
    from stop_events
    where customer_id is not null
    union
    select
        'sms' as channel,
        null::text as email,
        customers.customer_id
    from stop_events
    inner join {{ ref('int_customers_as_of_t') }} as customers
        on stop_events.phone = customers.phone
),

own as (
    select distinct
        channel,
        null::text as email,
        customer_id
    from {{ ref('stg_ops__unsubscribes') }}
    where recorded_at <= {{ evaluation_time() }}
)

select * from provider
union all
select * from by_message
union all
select * from sms_stops
union all
select * from own
