{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ attribution_delete_report_days() }}",
        indexes=[{'columns': ['report_date', 'campaign']}],
    )
}}
-- A3 by segment: one row per report day × campaign × step × channel × coupon tier × store × language,
-- with additive counts (a dashboard regroups them by any of the dimensions and recomputes the rates).
-- The report day is the local day (reporting_timezone) of the messages' decided_at: a message's opens,
-- clicks and attributed orders count on the day it was decided, so conversion is orders over sends of
-- the same messages. Figures are as of T (events and orders up to T); `is_final` tells when every
-- message of the row has had its whole attribution window at T.
-- Incremental in one way only: a run rewrites every report day up to T's day (a sum over the messages,
-- cheap beside the attribution of orders) and keeps the later days, so replaying an old date rewrites
-- that date's view and leaves the later runs' days on the dashboard (O2).
with messages as (
    select * from {{ ref('int_recovery_messages') }}
),

engagement as (
    select * from {{ ref('int_message_engagement') }}
),

orders as (
    select
        message_id,
        count(*) as orders,
        sum(revenue) as revenue
    from {{ ref('attributed_orders') }}
    -- rows written by the runs of later dates stay in the table: a replayed T reads its own period only
    where attributed_at <= {{ evaluation_time() }}
    group by message_id
),

per_message as (
    select
        messages.report_date,
        messages.campaign,
        messages.step,
        messages.channel,
        messages.coupon_tier,
        messages.store_id,
        messages.locale,
        messages.decided_at + make_interval(hours => messages.attribution_window_hours) as window_closes_at,
        messages.is_held_out,
        messages.is_sent,
        messages.is_sent and engagement.delivered_at is not null as is_delivered,
        -- a click implies an open (images may be blocked, so no open event comes back)
        messages.is_sent and coalesce(engagement.opened_at, engagement.clicked_at) is not null as is_opened,
        messages.is_sent and engagement.clicked_at is not null as is_clicked,
        messages.is_sent and engagement.bounced_at is not null as is_bounced,
        coalesce(orders.orders, 0) as orders,
        coalesce(orders.revenue, 0) as revenue
    from messages
    left join engagement on messages.message_id = engagement.message_id
    left join orders on messages.message_id = orders.message_id
),

segments as (
    select
        report_date,
        campaign,
        step,
        channel,
        coupon_tier,
        store_id,
        locale,
        count(*) as eligible,
        count(*) filter (where is_held_out) as held_out,
        count(*) filter (where is_sent) as sent,
        count(*) filter (where is_delivered) as delivered,
        count(*) filter (where is_opened) as opened,
        count(*) filter (where is_clicked) as clicked,
        count(*) filter (where is_bounced) as bounced,
        sum(orders) as orders,
        count(*) filter (where orders > 0) as conversions,
        sum(revenue) as revenue,
        max(window_closes_at) as windows_close_at
    from per_message
    group by report_date, campaign, step, channel, coupon_tier, store_id, locale
),

day_totals as (
    select
        report_date,
        sum(revenue) as attributed_revenue_all_campaigns
    from segments
    group by report_date
),

final as (
    select
        segments.report_date,
        segments.campaign,
        segments.step,
        segments.channel,
        segments.coupon_tier,
        segments.store_id,
        segments.locale,
        segments.eligible::integer as eligible,
        segments.held_out::integer as held_out,
        segments.sent::integer as sent,
        segments.delivered::integer as delivered,
        segments.opened::integer as opened,
        segments.clicked::integer as clicked,
        segments.bounced::integer as bounced,
        segments.orders::integer as orders,
        segments.conversions::integer as conversions,
        segments.revenue,
        round(segments.conversions::numeric / nullif(segments.sent, 0), 6) as conversion_rate,
        round(segments.revenue / nullif(segments.sent, 0), 4) as revenue_per_recipient,
        round(segments.revenue / nullif(day_totals.attributed_revenue_all_campaigns, 0), 6)
            as share_of_attributed_revenue,
        segments.windows_close_at <= {{ evaluation_time() }} as is_final,
        {{ evaluation_time() }} as evaluated_at
    from segments
    inner join day_totals on segments.report_date = day_totals.report_date
)

select * from final
