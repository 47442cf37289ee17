-- One row per campaign run at T, from the `campaigns` var (contract §6), with its D2 window: last activity
-- in (abandon_window_start, window_end], window_end = T - abandon_after, so consecutive runs meet.
-- var decision_scope (docs/INTERFACES.md) says which steps this build decides: `daily` (the 09:00 DAG, the
-- default) step 1 of the `daily` campaigns; `followups` (the hourly DAG) every step of the `hourly`
-- campaigns and the steps >= 2 of the `daily` ones (F1).
-- window_start is where the build starts reading carts (int_carts_latest_state): the D2 window's start,
-- and in the followups scope earlier by the campaign's follow-up span, so a cart whose later step is due
-- is still read (a step k >= 2 stays due for max_cart_age after its due time, as step 1 stays in D2).
-- Without any campaign (a scope with nothing enabled) the model is empty, with the same columns: one typed
-- placeholder row, filtered out.
{%- set campaigns = var('campaigns') or [] %}
{%- set scope = var('decision_scope', 'daily') %}
{%- if scope not in ('daily', 'followups') %}
{{ exceptions.raise_compiler_error("var decision_scope must be daily or followups, not " ~ scope) }}
{%- endif %}

with settings as (
    {%- for c in campaigns or [{'name': none, 'steps': []}] %}
    {%- set max_age_minutes = c.get('max_cart_age_hours', 24) * 60 %}
    {%- set ns = namespace(span=0) %}
    {%- for s in c['steps'][1:] %}
    {%- set ns.span = ns.span + s.get('delay_minutes', 0) + max_age_minutes %}
    {%- endfor %}
    select
        {{ sql_literal(c['name']) }}::text as campaign,
        {{ sql_literal(c.get('cadence', 'daily')) }}::text as cadence,
        {{ sql_literal(c.get('audience', 'all')) }}::text as audience,
        {{ sql_literal(c.get('default_locale', 'fr')) }}::text as default_locale,
        {{ c.get('abandon_after_minutes', 60) }}::integer as abandon_after_minutes,
        {{ c.get('max_cart_age_hours', 24) }}::integer as max_cart_age_hours,
        {{ c.get('frequency_cap_days', 7) }}::integer as frequency_cap_days,
        {{ c.get('holdout_percent', 0) }}::numeric as holdout_percent,
        {{ c.get('max_items', 4) }}::integer as max_items,
        {{ sql_literal(c.get('coupon_tiers', 'none')) }}::text as coupon_tiers,
        {{ c.get('implied_consent_days', 730) }}::integer as implied_consent_days,
        {{ c.get('attribution_window_hours', 24) }}::integer as attribution_window_hours,
        {{ c['steps'] | length }}::integer as step_count,
        {{ ns.span if scope == 'followups' else 0 }}::integer as followup_span_minutes
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
        -- F1: step 1 is decided by the daily build for `daily` campaigns, by the hourly one for `hourly` ones
        (settings.cadence = 'hourly') = ({{ sql_literal(scope) }} = 'followups') as decides_first_step,
        {{ evaluation_time() }} as evaluated_at,
        {{ evaluation_time() }} - make_interval(mins => settings.abandon_after_minutes) as window_end,
        {{ evaluation_time() }}
        - make_interval(mins => settings.abandon_after_minutes)
        - make_interval(hours => settings.max_cart_age_hours) as abandon_window_start,
        {{ evaluation_time() }}
        - make_interval(mins => settings.abandon_after_minutes)
        - make_interval(hours => settings.max_cart_age_hours)
        - make_interval(mins => settings.followup_span_minutes) as window_start
    from settings
)

select * from final
