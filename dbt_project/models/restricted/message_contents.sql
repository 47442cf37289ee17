-- What the templates need for each eligible recipient (docs/INTERFACES.md). Personal data (email, phone,
-- first name) lives in this `restricted` schema, not in `marts`.
-- M1 locale: the customer's (fr/en) else the campaign's default; M2 items in the order added, at most
-- max_items, and how many more; M4 store: the customer's preferred store, else the cart's.
with decided as (
    select * from {{ ref('eligible_recipients_decided') }}
),

campaigns as (
    select * from {{ ref('int_campaigns') }}
),

carts as (
    select * from {{ ref('int_carts_evaluated') }}
),

customers as (
    select * from {{ ref('int_customers_as_of_t') }}
),

stores as (
    select * from {{ ref('stg_shop__stores') }}
),

items as (
    select
        net.cart_id,
        net.item_rank,
        net.sku,
        net.quantity,
        net.unit_price,
        products.title,
        products.author,
        products.publisher,
        products.image_url,
        products.product_url
    from {{ ref('int_cart_items_net_of_purchases') }} as net
    left join {{ ref('stg_shop__products') }} as products on net.sku = products.sku
),

final as (
    select
        decided.campaign,
        decided.step,
        decided.cart_id,
        decided.cart_version,
        decided.customer_id,
        customers.email,
        customers.phone,
        nullif(trim(customers.first_name), '') as first_name,
        case when customers.locale in ('fr', 'en') then customers.locale else campaigns.default_locale end as locale,
        stores.store_id,
        stores.store_name,
        stores.store_email,
        stores.store_phone,
        stores.store_address,
        stores.store_city,
        stores.store_region,
        stores.store_url,
        carts.cart_url,
        carts.cart_value,
        carts.currency,
        carts.item_count,
        greatest(carts.item_count - campaigns.max_items, 0) as more_items_count,
        (
            select
                coalesce(jsonb_agg(
                    jsonb_build_object(
                        'position', items.item_rank,
                        'sku', items.sku,
                        'title', items.title,
                        'author', items.author,
                        'publisher', items.publisher,
                        'image_url', items.image_url,
                        'product_url', items.product_url,
                        'unit_price', items.unit_price,
                        'quantity', items.quantity
                    ) order by items.item_rank
                ), '[]'::jsonb) as items_json
            from items
            where items.cart_id = decided.cart_id and items.item_rank <= campaigns.max_items
        ) as items
    from decided
    inner join campaigns on decided.campaign = campaigns.campaign
    inner join carts on decided.cart_id = carts.cart_id
    left join customers on decided.customer_id = customers.customer_id
    left join stores
        on
            stores.store_id = coalesce(
                (
                    select s.store_id from stores as s
                    where s.store_id = customers.preferred_store_id
                ),
                carts.store_id
            )
)

select * from final
