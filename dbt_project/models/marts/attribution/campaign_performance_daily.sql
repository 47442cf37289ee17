{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ attribution_delete_report_days() }}",
        indexes=[{'columns': ['report_date', 'campaign']}],
    )
}}
-- A3 (contract §4): one row per report day × campaign × step × channel, the segments of
-- campaign_performance_daily_by_segment summed over coupon tier, store and language. Same report day
-- (local day of decided_at), same figures as of T; a run rewrites every report day up to T's and keeps
-- the later days, like the segments.
-- Shares of revenue (A3, "recovery's share of all campaign-attributed sales"):
-- - share_of_attributed_revenue: the row's attributed revenue over the revenue attributed to any message
--   of any campaign decided that day (the bookstore case's 28 % compares the same way: one campaign's
--   sales over the sales of all the shop's tracked campaigns);
-- - share_of_shop_revenue: the row's attributed revenue over every completed order placed that local day
--   (the messages' orders may fall on the next day, up to the window: a day-level approximation).
with segments as (
    select * from {{ ref('campaign_performance_daily_by_segment') }}
    where report_date <= {{ report_date(evaluation_time()) }}
),

shop_days as (
    select
        {{ report_date('placed_at') }} as report_date,
        sum(total) as shop_revenue
    from {{ ref('stg_shop__orders') }}
    where
        status = 'completed'
        and placed_at <= {{ evaluation_time() }}
    group by {{ report_date('placed_at') }}
),

rows_by_channel as (
    select
        report_date,
        campaign,
        step,
        channel,
        sum(eligible) as eligible,
        sum(held_out) as held_out,
        sum(sent) as sent,
        sum(delivered) as delivered,
        sum(opened) as opened,
        sum(clicked) as clicked,
        sum(bounced) as bounced,
        sum(orders) as orders,
        sum(conversions) as conversions,
        sum(revenue) as revenue,
        bool_and(is_final) as is_final
    from segments
    group by report_date, campaign, step, channel
),

day_totals as (
    select
        report_date,
        sum(revenue) as attributed_revenue_all_campaigns
    from rows_by_channel
    group by report_date
),

final as (
    select
        rows_by_channel.report_date,
        rows_by_channel.campaign,
        rows_by_channel.step,
        rows_by_channel.channel,
        rows_by_channel.eligible::integer as eligible,
        rows_by_channel.held_out::integer as held_out,
        rows_by_channel.sent::integer as sent,
        rows_by_channel.delivered::integer as delivered,
        rows_by_channel.opened::integer as opened,
        rows_by_channel.clicked::integer as clicked,
        rows_by_channel.bounced::integer as bounced,
        rows_by_channel.orders::integer as orders,
        rows_by_channel.conversions::integer as conversions,
        rows_by_channel.revenue,
        round(rows_by_channel.conversions::numeric / nullif(rows_by_channel.sent, 0), 6) as conversion_rate,
        round(rows_by_channel.revenue / nullif(rows_by_channel.sent, 0), 4) as revenue_per_recipient,
        round(rows_by_channel.revenue / nullif(day_totals.attributed_revenue_all_campaigns, 0), 6)
            as share_of_attributed_revenue,
        day_totals.attributed_revenue_all_campaigns,
        coalesce(shop_days.shop_revenue, 0) as shop_revenue,
        round(rows_by_channel.revenue / nullif(shop_days.shop_revenue, 0), 6) as share_of_shop_revenue,
        rows_by_channel.is_final,
        {{ evaluation_time() }} as evaluated_at
    from rows_by_channel
    inner join day_totals on rows_by_channel.report_date = day_totals.report_date
    left join shop_days on rows_by_channel.report_date = shop_days.report_date
)

select * from final
