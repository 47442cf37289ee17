{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=[
            "{{ lock_relation() }}",
            "{{ delete_run_partition() }}",
            "{{ delete_expired_contents() }}",
        ],
        post_hook=["create index if not exists message_contents_run on {{ this }} (decided_at, scope)"],
    )
}}
-- What the templates need for each message of a run (docs/INTERFACES.md), kept by (decided_at, scope) as the
-- ledger is: the sender of a run reads its own partition (O6). Kept `message_contents_retention_days` (14)
-- after T, then deleted (personal data is kept no longer than the sends need). Personal data (email, phone,
-- first name) lives in this `restricted` schema, not in `marts`.
-- M1 locale: the customer's (fr/en) else the campaign's default; M2 items in the order added, at most
-- max_items, and how many more; M4 store: the customer's preferred store, else the cart's.
-- Push rows carry the customer's subscriptions active at T (E2), device first (F1, F3): a cart last
-- updated on a mobile gets the app (ios/android, FCM) subscriptions when it has any, on a desktop the web
-- push ones when it has any; otherwise (or on a tablet or unknown device) all of them.
with decided as (
    select * from {{ ref('int_decisions') }}
    where outbox_status = 'pending'
),

campaigns as (
    select * from {{ ref('int_campaigns') }}
),

-- M2: each recipient's items, at most the campaign's max_items, in the order they were put in the cart
item_lists as (
    select
        decided.campaign,
        decided.step,
        decided.cart_id,
        jsonb_agg(
            jsonb_build_object(
                'position', net.item_rank,
                'sku', net.sku,
                'title', products.title,
                'author', products.author,
                'publisher', products.publisher,
                'image_url', products.image_url,
                'product_url', products.product_url,
                'unit_price', net.unit_price,
                'quantity', net.quantity
            ) order by net.item_rank
        ) as items
    from decided
    inner join campaigns on decided.campaign = campaigns.campaign
    inner join {{ ref('int_cart_items_net_of_purchases') }} as net
        on
            decided.cart_id = net.cart_id
            and campaigns.max_items >= net.item_rank
    left join {{ ref('stg_shop__products') }} as products on net.sku = products.sku
    group by decided.campaign, decided.step, decided.cart_id
),

-- F3: the push subscriptions of each push row, the cart's device's kind first (rank 1 only)
push_ranked as (
    select
        decided.campaign,
        decided.step,
        decided.cart_id,
        subs.subscription_kind,
        subs.is_mobile,
        subs.endpoint,
        subs.p256dh,
        subs.auth,
        rank() over (
            partition by decided.campaign, decided.step, decided.cart_id
            order by
                case
                    when carts.device = 'mobile' and subs.is_mobile then 0
                    when carts.device = 'desktop' and not subs.is_mobile then 0
                    else 1
                end asc
        ) as device_rank
    from decided
    inner join {{ ref('int_carts_evaluated') }} as carts on decided.cart_id = carts.cart_id
    inner join {{ ref('int_push_subscriptions_as_of_t') }} as subs on decided.customer_id = subs.customer_id
    where decided.channel = 'push'
),

push_lists as (
    select
        campaign,
        step,
        cart_id,
        jsonb_agg(
            jsonb_strip_nulls(
                jsonb_build_object(
                    'kind', subscription_kind,
                    'endpoint', endpoint,
                    'p256dh', p256dh,
                    'auth', auth,
                    'token', case when is_mobile then endpoint end
                )
            ) order by endpoint
        ) as push_subscriptions
    from push_ranked
    where device_rank = 1
    group by campaign, step, cart_id
),

final as (
    select
        decided.decided_at,
        decided.scope,
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
        -- F4: the store's zone, for quiet hours when the phone gives none
        zones.time_zone as store_time_zone,
        stores.store_url,
        carts.cart_url,
        carts.cart_value,
        carts.currency,
        carts.item_count,
        greatest(carts.item_count - campaigns.max_items, 0) as more_items_count,
        coalesce(item_lists.items, '[]'::jsonb) as items,
        coalesce(push_lists.push_subscriptions, '[]'::jsonb) as push_subscriptions,
        carts.device
    from decided
    inner join campaigns on decided.campaign = campaigns.campaign
    inner join {{ ref('int_carts_evaluated') }} as carts on decided.cart_id = carts.cart_id
    left join {{ ref('int_customers_as_of_t') }} as customers on decided.customer_id = customers.customer_id
    -- M4: the customer's preferred store when it exists, else the cart's
    left join {{ ref('stg_shop__stores') }} as preferred on customers.preferred_store_id = preferred.store_id
    left join {{ ref('stg_shop__stores') }} as stores on coalesce(preferred.store_id, carts.store_id) = stores.store_id
    left join {{ ref('region_time_zones') }} as zones on upper(stores.store_region) = zones.region
    left join item_lists
        on
            decided.campaign = item_lists.campaign
            and decided.step = item_lists.step
            and decided.cart_id = item_lists.cart_id
    left join push_lists
        on
            decided.campaign = push_lists.campaign
            and decided.step = push_lists.step
            and decided.cart_id = push_lists.cart_id
)

select * from final
