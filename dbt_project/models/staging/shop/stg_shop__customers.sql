-- One row per customer version (exact re-deliveries collapsed); the version in force at T is picked
-- downstream (latest `updated_at` not after T), so a replayed date sees the data it saw (O2).
with source as (
    select * from {{ source('shop', 'customers') }}
),

renamed as (
    select distinct on (customer_id, updated_at)
        customer_id,
        nullif(trim(lower(email)), '') as email,
        nullif(regexp_replace(phone, '[\s().-]', '', 'g'), '') as phone,
        first_name,
        last_name,
        locale,
        customer_type,
        institution_kind,
        preferred_store_id,
        updated_at
    from source
    order by customer_id asc, updated_at asc, _file_name desc, _line_number desc
)

select * from renamed
