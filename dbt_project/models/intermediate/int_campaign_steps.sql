-- One row per campaign step (1-based), with its ordered channel preference (F1, F3) and whether this build
-- decides it (var decision_scope, see int_campaigns): `daily` decides step 1 of the `daily` campaigns;
-- `followups` every step of the `hourly` campaigns and the steps >= 2 of the `daily` ones.
-- Without any campaign the model is empty, with the same columns (a typed placeholder row, filtered out).
{%- set scope = var('decision_scope', 'daily') %}
{%- set rows = [] %}
{%- for c in var('campaigns') or [] %}
{%- for s in c['steps'] %}
{%- do rows.append((c, s, loop.index)) %}
{%- endfor %}
{%- endfor %}

with steps as (
    {%- for c, s, index in rows or [({'name': none}, {'channels': []}, 1)] %}
    {%- set hourly = c.get('cadence', 'daily') == 'hourly' %}
    {%- set number = s.get('step', index) %}
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
    {%- if not rows %}
    where false
    {%- endif %}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
)

select * from steps
