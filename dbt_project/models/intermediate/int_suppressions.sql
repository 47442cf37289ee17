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

sms_stops as (
    select distinct
        'sms' as channel,
        null::text as email,
        message_rows.customer_id
    from {{ ref('stg_shop__provider_events') }} as events
    inner join {{ ref('stg_ops__messages') }} as message_rows
        on events.message_id = message_rows.message_id::text
    where events.event = 'sms_stop' and events.occurred_at <= {{ evaluation_time() }}
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
