-- One row per campaign step (1-based), with its ordered channel preference (F1, F3) and whether this build
-- decides it (var decision_scope, see int_campaigns): `daily` decides step 1 of the `daily` campaigns;
-- `followups` every step of the `hourly` campaigns and the steps >= 2 of the `daily` ones.
{%- set campaigns = var('campaigns') %}
{%- set scope = var('decision_scope', 'daily') %}

with steps as (
    {%- for c in campaigns %}
    {%- set outer_loop = loop %}
    {%- set hourly = c.get('cadence', 'daily') == 'hourly' %}
    {%- for s in c['steps'] %}
    {%- set number = s.get('step', loop.index) %}
    {%- if scope == 'followups' %}
    {%- set decided = hourly or number > 1 %}
    {%- else %}
    {%- set decided = not hourly and number == 1 %}
    {%- endif %}
    select
        {{ sql_literal(c['name']) }}::text as campaign,
        {{ number }}::integer as step,
        array[
            {%- for ch in s['channels'] %}
            {{ sql_literal(ch) }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        ]::text[] as channels,
        {{ s.get('delay_minutes', 0) }}::integer as delay_minutes,
        {{ sql_literal(s.get('template', 'abandoned_cart')) }}::text as template,
        {{ sql_literal(s.get('only_if_not_engaged', false)) }}::boolean as only_if_not_engaged,
        {{ sql_literal(s.get('coupon_tiers')) }}::text as step_coupon_tiers,
        {{ sql_literal(decided) }}::boolean as is_decided
    {%- if not (loop.last and outer_loop.last) %}
    union all
    {%- endif %}
    {%- endfor %}
    {%- endfor %}
)

select * from steps
