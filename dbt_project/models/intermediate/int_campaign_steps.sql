-- One row per campaign step (1-based), with its ordered channel preference (F1, F3).
{%- set campaigns = var('campaigns') %}

with steps as (
    {%- for c in campaigns %}
    {%- set outer_loop = loop %}
    {%- for s in c['steps'] %}
    select
        {{ sql_literal(c['name']) }}::text as campaign,
        {{ s.get('step', loop.index) }}::integer as step,
        array[
            {%- for ch in s['channels'] %}
            {{ sql_literal(ch) }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        ]::text[] as channels,
        {{ s.get('delay_minutes', 0) }}::integer as delay_minutes,
        {{ sql_literal(s.get('template', 'abandoned_cart')) }}::text as template,
        {{ sql_literal(s.get('only_if_not_engaged', false)) }}::boolean as only_if_not_engaged,
        {{ sql_literal(s.get('coupon_tiers')) }}::text as step_coupon_tiers
    {%- if not (loop.last and outer_loop.last) %}
    union all
    {%- endif %}
    {%- endfor %}
    {%- endfor %}
)

select * from steps
