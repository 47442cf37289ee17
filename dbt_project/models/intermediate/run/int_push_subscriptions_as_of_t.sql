-- E2 for push: each customer's push subscriptions active at T — the latest record per (customer, endpoint)
-- recorded no later than T says `active`, and the push service has not answered 404/410 for the endpoint
-- (ops.push_revocations, from its revoked_at on: a replayed earlier T still sees it active, O2).
-- is_mobile: an app's device token (ios, android: FCM); the rest is web push (VAPID).
with records as (
    select * from {{ ref('stg_shop__push_subscriptions') }}
    where recorded_at <= {{ evaluation_time() }}
),

revocations as (
    select * from {{ source('ops_sending', 'push_revocations') }}
    where revoked_at <= {{ evaluation_time() }}
),

latest as (
    select distinct on (customer_id, endpoint)
        customer_id,
        subscription_kind,
        endpoint,
        p256dh,
        auth,
        status,
        recorded_at
    from records
    order by customer_id asc, endpoint asc, recorded_at desc
),

final as (
    select
        latest.customer_id,
        latest.subscription_kind,
        latest.subscription_kind in ('ios', 'android', 'fcm') as is_mobile,
        latest.endpoint,
        latest.p256dh,
        latest.auth,
        latest.recorded_at
    from latest
    where
        latest.status = 'active'
        and not exists (
            select 1 from revocations
            where revocations.endpoint = latest.endpoint
        )
)

select * from final
