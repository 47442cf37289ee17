-- Single-use codes per pool; a code listed twice is one code.
with source as (
    select * from {{ source('shop', 'coupon_codes') }}
),

renamed as (
    select distinct on (code)
        code,
        pool
    from source
    order by code asc, _file_name asc, _line_number asc
)

select * from renamed
