-- E3: the latest consent record per (customer, channel) at T, and whether it is in force:
-- granted, and if implied (CASL) recorded less than implied_consent_days before T.
-- Only the customers of the active carts (int_carts_latest_state) are kept.
with active_customers as (
    select distinct customer_id
    from {{ ref('int_carts_latest_state') }}
    where customer_id is not null
),

records as (
    select consents.*
    from {{ ref('stg_shop__consents') }} as consents
    inner join active_customers on consents.customer_id = active_customers.customer_id
    where consents.recorded_at <= {{ evaluation_time() }}
),

latest as (
    select distinct on (customer_id, channel)
        customer_id,
        channel,
        status,
        basis,
        recorded_at,
        consent_source
    from records
    order by customer_id asc, channel asc, recorded_at desc
)

select * from latest
