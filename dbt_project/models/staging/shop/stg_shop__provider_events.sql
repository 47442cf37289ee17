-- SendGrid re-delivers events, sometimes with a new id (A1): deduplicated by sg_event_id, then by content
-- (event, SendGrid message, our message id, time, email; our message id keeps apart the events that carry
-- neither an address nor a SendGrid id, such as SMS events). Rows come from `provider_events` files and
-- from the signed webhook alike.
-- provider_message_id: SendGrid's X-Message-Id (returned by Mail Send, stored in ops.messages), the part
-- of sg_message_id before its first dot: how an event without our message_id custom arg finds its message.
-- phone, customer_id: what an SMS event (e.g. a STOP reply, `sms_stop`) says about who sent it.
with source as (
    select * from {{ source('shop', 'provider_events') }}
),

by_id as (
    select distinct on (coalesce(sg_event_id, md5(payload::text))) *
    from source
    order by coalesce(sg_event_id, md5(payload::text)) asc, _file_name asc, _line_number asc
),

by_content as (
    select distinct on (event, sg_message_id, message_id, occurred_at, lower(email))
        sg_event_id,
        event,
        nullif(trim(lower(email)), '') as email,
        occurred_at,
        sg_message_id,
        nullif(split_part(sg_message_id, '.', 1), '') as provider_message_id,
        message_id,
        campaign,
        payload ->> 'reason' as reason,
        payload ->> 'type' as bounce_type,
        -- SMS events (F4): the number that replied (payload `phone`, or Twilio's `from` / `From`),
        -- normalised like customers' phones, and the customer when the event names one
        nullif(
            regexp_replace(coalesce(payload ->> 'phone', payload ->> 'from', payload ->> 'From'), '[\s().-]', '', 'g'),
            ''
        ) as phone,
        nullif(payload ->> 'customer_id', '') as customer_id
    from by_id
    order by
        event asc,
        sg_message_id asc,
        message_id asc,
        occurred_at asc,
        lower(email) asc,
        _file_name asc,
        _line_number asc
)

select * from by_content
