-- Every subscription record; the state at T is the latest per (customer, endpoint).
with source as (
    select * from {{ source('shop', 'push_subscriptions') }}
),

renamed as (
    select distinct on (customer_id, endpoint, recorded_at)
        customer_id,
        kind as subscription_kind,
        endpoint,
        p256dh,
        auth,
        status,
        recorded_at
    from source
    order by customer_id asc, endpoint asc, recorded_at asc, _file_name desc, _line_number desc
)

select * from renamed
