{{ config(tags=['attribution']) }}
-- A4: one row per campaign × period (× its first day).
select
    campaign,
    period,
    period_start,
    count(*) as duplicate_rows
from {{ ref('campaign_lift') }}
group by campaign, period, period_start
having count(*) > 1
