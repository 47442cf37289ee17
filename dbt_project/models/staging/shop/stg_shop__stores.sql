-- Latest-loaded row per store wins (stores have no timestamp in the contract).
with source as (
    select * from {{ source('shop', 'stores') }}
),

renamed as (
    select distinct on (store_id)
        store_id,
        name as store_name,
        email as store_email,
        phone as store_phone,
        address as store_address,
        city as store_city,
        region as store_region,
        url as store_url
    from source
    order by store_id asc, _file_name desc, _line_number desc
)

select * from renamed
