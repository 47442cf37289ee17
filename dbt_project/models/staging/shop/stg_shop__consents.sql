-- Every consent record (E3 picks the latest per customer and channel at T).
with source as (
    select * from {{ source('shop', 'consents') }}
),

renamed as (
    select distinct on (customer_id, channel, recorded_at)
        customer_id,
        channel,
        status,
        coalesce(basis, 'express') as basis,
        recorded_at,
        source as consent_source
    from source
    order by customer_id asc, channel asc, recorded_at asc, _file_name desc, _line_number desc
)

select * from renamed
