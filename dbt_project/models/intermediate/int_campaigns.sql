-- One row per campaign run at T, from the `campaigns` var (contract §6), with its D2 window:
-- last activity in (window_start, window_end], window_end = T - abandon_after, so consecutive runs meet.
{%- set campaigns = var('campaigns') %}

with settings as (
    {%- for c in campaigns %}
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
        {{ c.get('attribution_window_hours', 24) }}::integer as attribution_window_hours
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

final as (
    select
        settings.*,
        {{ evaluation_time() }} as evaluated_at,
        {{ evaluation_time() }} - make_interval(mins => settings.abandon_after_minutes) as window_end,
        {{ evaluation_time() }}
        - make_interval(mins => settings.abandon_after_minutes)
        - make_interval(hours => settings.max_cart_age_hours) as window_start
    from settings
)

select * from final
