-- Latest-wins per SKU: products are content for the message, not a decision.
with source as (
    select * from {{ source('shop', 'products') }}
),

renamed as (
    select distinct on (sku)
        sku,
        title,
        author,
        publisher,
        image_url,
        product_url,
        price,
        currency,
        updated_at
    from source
    order by sku asc, updated_at desc, _file_name desc, _line_number desc
)

select * from renamed
