with source as (
    select * from {{ source('shop', 'test_group') }}
)

select distinct customer_id from source
