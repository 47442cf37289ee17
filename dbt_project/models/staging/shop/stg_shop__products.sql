{{
    config(
        materialized='incremental',
        unique_key='sku',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['sku'], 'unique': True},
            {'columns': ['_loaded_at']},
        ],
    )
}}
-- Latest-wins per SKU (latest `updated_at`, then the latest-loaded): products are content for the message,
-- not a decision. Incremental: the SKUs loaded since the last build are decided again between their new
-- rows and the stored one, so a late-loaded older version never replaces a newer one.
with loaded as (
    select
        raw_products.sku,
        raw_products.title,
        raw_products.author,
        raw_products.publisher,
        raw_products.image_url,
        raw_products.product_url,
        raw_products.price,
        raw_products.currency,
        raw_products.updated_at,
        raw_products._loaded_at,
        raw_products._file_name,
        raw_products._line_number
    from {{ source('shop', 'products') }} as raw_products
    where {{ loaded_since_last_build('raw_products._loaded_at') }}
),

candidates as (
    select * from loaded
    {%- if is_incremental() %}
    union all
    select
        kept.sku,
        kept.title,
        kept.author,
        kept.publisher,
        kept.image_url,
        kept.product_url,
        kept.price,
        kept.currency,
        kept.updated_at,
        kept._loaded_at,
        null as _file_name,
        null as _line_number
    from {{ this }} as kept
    where kept.sku in (select loaded.sku from loaded)
    {%- endif %}
),

latest as (
    select distinct on (sku)
        sku,
        title,
        author,
        publisher,
        image_url,
        product_url,
        price,
        currency,
        updated_at,
        _loaded_at
    from candidates
    order by sku asc, updated_at desc, _loaded_at desc, _file_name desc nulls last, _line_number desc nulls last
)

select * from latest
