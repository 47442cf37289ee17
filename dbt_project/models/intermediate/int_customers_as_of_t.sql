-- The customer record in force at T: the latest `updated_at` not after T.
with versions as (
    select * from {{ ref('stg_shop__customers') }}
    where updated_at <= {{ evaluation_time() }}
),

latest as (
    select distinct on (customer_id)
        customer_id,
        email,
        phone,
        first_name,
        last_name,
        locale,
        customer_type,
        institution_kind,
        preferred_store_id,
        updated_at
    from versions
    order by customer_id asc, updated_at desc
)

select * from latest
