-- The customer record in force at T: the latest `updated_at` not after T. Only the customers of the active
-- carts (int_carts_latest_state) are kept: no other customer can be decided on at T.
with active_customers as (
    select distinct customer_id
    from {{ ref('int_carts_latest_state') }}
    where customer_id is not null
),

versions as (
    select customers.*
    from {{ ref('stg_shop__customers') }} as customers
    inner join active_customers on customers.customer_id = active_customers.customer_id
    where customers.updated_at <= {{ evaluation_time() }}
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
