-- The customer record in force at T: the latest `updated_at` not after T.
with versions as (
    select * from {{ ref('stg_shop__customers') }}
    where updated_at <= {{ evaluation_time() }}
),

latest as (
    select distinct on (customer_id) *
    from versions
    order by customer_id asc, updated_at desc
)

select * from latest
