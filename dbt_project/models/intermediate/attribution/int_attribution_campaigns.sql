-- The attribution settings of every campaign in the `campaigns` var (contract §6), one row per campaign.
-- A2: `attribution_window_hours` (default 24). A4: the lift compares conversions over the whole sequence,
-- so its window adds the delays of the steps after the first to the attribution window (a one-step
-- campaign's lift window is its attribution window). Without any campaign: no row.
{%- set campaigns = var('campaigns') or [] %}

with settings as (
    select
        null::text as campaign,
        null::text as default_locale,
        null::numeric as holdout_percent,
        null::integer as attribution_window_hours,
        null::numeric as lift_window_hours
    where false
    {%- for c in campaigns %}
    {%- set later_delay_minutes = c['steps'][1:] | map(attribute='delay_minutes') | sum %}
    union all
    select
        {{ setting(c, 'name') }}::text as campaign,
        {{ setting(c, 'default_locale') }}::text as default_locale,
        {{ setting(c, 'holdout_percent') }}::numeric as holdout_percent,
        {{ setting(c, 'attribution_window_hours') }}::integer as attribution_window_hours,
        ({{ setting(c, 'attribution_window_hours') }} + {{ later_delay_minutes }} / 60.0)::numeric as lift_window_hours
    {%- endfor %}
)

select * from settings
