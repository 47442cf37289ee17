{{ config(tags=['attribution']) }}
-- A3: one row per report day × campaign × step × channel × coupon tier × store × language (null store or
-- language is one segment of its own).
select
    report_date,
    campaign,
    step,
    channel,
    coupon_tier,
    store_id,
    locale,
    count(*) as duplicate_rows
from {{ ref('campaign_performance_daily_by_segment') }}
group by report_date, campaign, step, channel, coupon_tier, store_id, locale
having count(*) > 1
