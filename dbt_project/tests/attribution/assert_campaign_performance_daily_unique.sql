{{ config(tags=['attribution']) }}
-- A3: one row per report day × campaign × step × channel (contract §4).
select
    report_date,
    campaign,
    step,
    channel,
    count(*) as duplicate_rows
from {{ ref('campaign_performance_daily') }}
group by report_date, campaign, step, channel
having count(*) > 1
