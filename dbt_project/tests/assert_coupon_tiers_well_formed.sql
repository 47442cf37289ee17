-- C1: the coupon_tiers seed analysts edit is well formed: one row per (tier_set, tier); a percent between
-- 1 and 100; min_value <= max_value; a pool or a static code to draw from; and no two tiers of a set for
-- the same channel overlap (a cart value falls in at most one tier). Fails with one row per problem.
with tiers as (
    select * from {{ ref('coupon_tiers') }}
),

duplicated as (
    select
        tier_set,
        tier,
        'duplicated tier' as problem
    from tiers
    group by tier_set, tier
    having count(*) > 1
),

malformed as (
    select
        tier_set,
        tier,
        case
            when percent not between 1 and 100 then 'percent out of range'
            when max_value < min_value then 'max_value below min_value'
            when static_code is null and pool is null then 'no pool and no static code'
        end as problem
    from tiers
),

overlapping as (
    select
        lower_tier.tier_set,
        lower_tier.tier || ' overlaps ' || upper_tier.tier as tier,
        'overlapping tiers' as problem
    from tiers as lower_tier
    inner join tiers as upper_tier
        on
            lower_tier.tier_set = upper_tier.tier_set
            and lower_tier.channel = upper_tier.channel
            and lower_tier.tier < upper_tier.tier
            and lower_tier.min_value <= coalesce(upper_tier.max_value, 'infinity'::numeric)
            and upper_tier.min_value <= coalesce(lower_tier.max_value, 'infinity'::numeric)
),

final as (
    select * from duplicated
    union all
    select * from malformed
    where problem is not null
    union all
    select * from overlapping
)

select * from final
