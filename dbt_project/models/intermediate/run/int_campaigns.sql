-- One row per campaign run at T, from the `campaigns` var (contract §6), with its D2 window: last activity
-- in (abandon_window_start, window_end], window_end = T - abandon_after, abandon_window_start = the
-- previous run's T - abandon_after, where the previous run's T is T less max_cart_age on the shop's wall
-- clock (macros/windows.sql): the schedule's previous fire time, 25 h before on the day daylight saving
-- time ends and 23 h on the day it starts, so consecutive runs meet on every day of the year (D2, O1).
-- Which steps this build decides comes with each step of the campaigns var (`decided`, set for the run's
-- scope by cart_recovery.campaigns, see int_campaign_steps).
-- window_start is where the build starts reading carts (int_carts_latest_state): the D2 window's start,
-- earlier by the span of the later steps this build decides, so a cart whose later step is due is still
-- read (a step k >= 2 stays due for max_cart_age after its due time, as step 1 stays in D2).
-- Without any campaign (a scope with nothing enabled) the model is empty, with the same columns: one typed
-- placeholder row, filtered out.
{%- set campaigns = var('campaigns') or [] %}
{%- set scope = decision_scope() %}

with settings as (
    {%- for c in campaigns or [none] %}
    {%- set c = c or placeholder_campaign() %}
    {%- set max_age_minutes = c['max_cart_age_hours'] * 60 %}
    {%- set ns = namespace(span=0) %}
    {#- the later steps this build decides: a cart stays due for each for max_cart_age after its delay #}
    {%- for s in c['steps'][1:] if s['decided'] %}
    {%- set ns.span = ns.span + s['delay_minutes'] + max_age_minutes %}
    {%- endfor %}
    select
        {{ setting(c, 'name') }}::text as campaign,
        {{ setting(c, 'cadence') }}::text as cadence,
        {{ setting(c, 'audience') }}::text as audience,
        {{ setting(c, 'default_locale') }}::text as default_locale,
        {{ setting(c, 'abandon_after_minutes') }}::integer as abandon_after_minutes,
        {{ setting(c, 'max_cart_age_hours') }}::integer as max_cart_age_hours,
        {{ setting(c, 'frequency_cap_days') }}::integer as frequency_cap_days,
        {{ setting(c, 'holdout_percent') }}::numeric as holdout_percent,
        {{ setting(c, 'max_items') }}::integer as max_items,
        {{ setting(c, 'coupon_tiers') }}::text as coupon_tiers,
        {{ setting(c, 'implied_consent_days') }}::integer as implied_consent_days,
        {{ setting(c, 'attribution_window_hours') }}::integer as attribution_window_hours,
        {{ c['steps'] | length }}::integer as step_count,
        {{ ns.span }}::integer as followup_span_minutes,
        {{ sql_literal(c['steps'][0]['decided'] if c['steps'] else false) }}::boolean as decides_first_step
    {%- if not campaigns %}
    where false
    {%- endif %}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

final as (
    select
        settings.*,
        {{ sql_literal(scope) }}::text as decision_scope,
        {{ evaluation_time() }} as evaluated_at,
        {{ evaluation_time() }} - make_interval(mins => settings.abandon_after_minutes) as window_end,
        {{ window_opening('settings.max_cart_age_hours') }}
        - make_interval(mins => settings.abandon_after_minutes) as abandon_window_start,
        {{ window_opening('settings.max_cart_age_hours') }}
        - make_interval(mins => settings.abandon_after_minutes)
        - make_interval(mins => settings.followup_span_minutes) as window_start
    from settings
)

select * from final
