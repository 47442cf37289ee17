-- E3: the latest consent record per (customer, channel) at T, and whether it is in force:
-- granted, and if implied (CASL) recorded less than implied_consent_days before T.
with records as (
    select * from {{ ref('stg_shop__consents') }}
    where recorded_at <= {{ evaluation_time() }}
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
