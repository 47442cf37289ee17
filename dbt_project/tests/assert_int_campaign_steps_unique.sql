-- F1: one row per campaign step.
-- Combination uniqueness (no dbt_utils): fails with each duplicated key and its count.
select
    campaign,
    step,
    count(*) as duplicate_rows
from {{ ref('int_campaign_steps') }}
group by campaign, step
having count(*) > 1
