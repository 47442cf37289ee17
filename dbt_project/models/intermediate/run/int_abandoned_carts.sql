-- D2: per campaign, the carts abandoned at T: at least one item left (D3), not deleted, not converted,
-- last activity in the campaign's window (abandon_window_start, window_end]. Anonymous carts are counted
-- with is_targetable = false (D4).
with campaigns as (
    select * from {{ ref('int_campaigns') }}
),

carts as (
    select * from {{ ref('int_carts_evaluated') }}
),

customers as (
    select * from {{ ref('int_customers_as_of_t') }}
),

final as (
    select
        campaigns.campaign,
        carts.cart_id,
        carts.cart_version,
        carts.customer_id,
        carts.store_id,
        carts.device,
        carts.currency,
        carts.cart_url,
        carts.last_activity_at,
        carts.item_count,
        carts.cart_value,
        (customers.customer_id is not null and customers.email is not null) as is_targetable,
        campaigns.evaluated_at
    from campaigns
    inner join carts
        on
            campaigns.abandon_window_start < carts.last_activity_at
            and campaigns.window_end >= carts.last_activity_at
    left join customers on carts.customer_id = customers.customer_id
    where
        not carts.is_deleted
        and not carts.is_converted
        and carts.item_count > 0
)

select * from final
