-- SendGrid re-delivers events, sometimes with a new id (A1): deduplicated by sg_event_id, then by content
-- (event, message, time, email).
with source as (
    select * from {{ source('shop', 'provider_events') }}
),

by_id as (
    select distinct on (coalesce(sg_event_id, md5(payload::text))) *
    from source
    order by coalesce(sg_event_id, md5(payload::text)) asc, _file_name asc, _line_number asc
),

by_content as (
    select distinct on (event, sg_message_id, occurred_at, lower(email))
        sg_event_id,
        event,
        nullif(trim(lower(email)), '') as email,
        occurred_at,
        sg_message_id,
        message_id,
        campaign,
        payload ->> 'reason' as reason,
        payload ->> 'type' as bounce_type
    from by_id
    order by event asc, sg_message_id asc, occurred_at asc, lower(email) asc, _file_name asc, _line_number asc
)

select * from by_content
