-- A1, A3: what the provider reported about each message up to T, one row per message with at least one
-- event: the first time of each kind. An event finds its message by our message_id custom arg (contract
-- §5), else by SendGrid's message id (the prefix of sg_message_id) stored with the sent message.
with events as (
    select * from {{ ref('stg_shop__provider_events') }}
    where occurred_at <= {{ evaluation_time() }}
),

messages as (
    select
        message_id,
        message_id::text as message_id_text,
        provider_message_id
    from {{ ref('int_recovery_messages') }}
),

matched as (
    select
        coalesce(by_custom_arg.message_id, by_provider_id.message_id) as message_id,
        events.event,
        events.occurred_at
    from events
    left join messages as by_custom_arg on events.message_id = by_custom_arg.message_id_text
    left join messages as by_provider_id
        on
            by_custom_arg.message_id is null
            and events.provider_message_id = by_provider_id.provider_message_id
),

final as (
    select
        message_id,
        min(occurred_at) filter (where event = 'delivered') as delivered_at,
        min(occurred_at) filter (where event = 'open') as opened_at,
        min(occurred_at) filter (where event = 'click') as clicked_at,
        min(occurred_at) filter (where event = 'bounce') as bounced_at,
        min(occurred_at) filter (where event = 'dropped') as dropped_at,
        min(occurred_at) filter (where event = 'spamreport') as spam_reported_at,
        min(occurred_at) filter (where event in ('unsubscribe', 'group_unsubscribe')) as unsubscribed_at,
        count(*) as event_count
    from matched
    where message_id is not null
    group by message_id
)

select * from final
