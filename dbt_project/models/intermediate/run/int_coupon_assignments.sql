-- C1: the coupon tier each eligible cart version gets, by remaining cart value and channel, from the
-- `coupon_tiers` seed (bounds inclusive). Campaigns without coupons have no rows here.
with decisions as (
    select * from {{ ref('int_recipient_decisions') }}
    where reason is null
),

campaigns as (
    select * from {{ ref('int_campaigns') }}
),

steps as (
    select * from {{ ref('int_campaign_steps') }}
),

tiers as (
    select * from {{ ref('coupon_tiers') }}
),

with_tier_set as (
    select
        decisions.*,
        coalesce(steps.step_coupon_tiers, campaigns.coupon_tiers) as tier_set
    from decisions
    inner join campaigns on decisions.campaign = campaigns.campaign
    inner join steps on decisions.campaign = steps.campaign and decisions.step = steps.step
),

matched as (
    select distinct on (with_tier_set.campaign, with_tier_set.step, with_tier_set.cart_id)
        with_tier_set.campaign,
        with_tier_set.step,
        with_tier_set.channel,
        with_tier_set.customer_id,
        with_tier_set.cart_id,
        with_tier_set.cart_version,
        with_tier_set.cart_value,
        with_tier_set.decided_at,
        tiers.tier_set,
        tiers.tier as coupon_tier,
        tiers.percent as coupon_percent,
        tiers.pool as coupon_pool,
        tiers.static_code as coupon_static_code
    from with_tier_set
    inner join tiers
        on
            with_tier_set.tier_set = tiers.tier_set
            and (with_tier_set.channel = tiers.channel or tiers.channel = 'any')
            and with_tier_set.cart_value >= tiers.min_value
            and (tiers.max_value is null or with_tier_set.cart_value <= tiers.max_value)
    where with_tier_set.tier_set is not null and with_tier_set.tier_set != 'none'
    -- a tier for the exact channel (the SMS 5 %) beats the value tiers
    order by
        with_tier_set.campaign asc,
        with_tier_set.step asc,
        with_tier_set.cart_id asc,
        (with_tier_set.channel = tiers.channel) desc,
        tiers.min_value desc
)

select * from matched
