-- One row per campaign step (1-based), with its ordered channel preference (F1, F3) and whether this build
-- decides it: the step's `decided` flag in the campaigns var, set for the run's scope by
-- cart_recovery.campaigns (the one owner of the scope rules: `daily` and `backfill` decide step 1 of the
-- `daily` campaigns, `followups` every step of the `hourly` campaigns and steps >= 2 of the `daily` ones).
-- Without any campaign the model is empty, with the same columns (a typed placeholder row, filtered out).
-- The linter's jinja templater renders the branches of the setting() macro as variants of this loop and
-- misreads their indentation: LT02 is off here (the rendered SQL is indented as everywhere else).
-- noqa: disable=LT02
{%- set rows = [] %}
{%- for c in var('campaigns') or [] %}
{%- for s in c['steps'] %}
{%- do rows.append((c, s)) %}
{%- endfor %}
{%- endfor %}

with steps as (
    {%- for c, s in rows or [(placeholder_campaign(), placeholder_step())] %}
    select
        {{ setting(c, 'name') }}::text as campaign,
        {{ setting(s, 'step', 'step') }}::integer as step,
        array[
            {%- for ch in s['channels'] %}
            {{ sql_literal(ch) }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        ]::text[] as channels,
        {{ setting(s, 'delay_minutes', 'step') }}::integer as delay_minutes,
        {{ setting(s, 'template', 'step') }}::text as template,
        {{ setting(s, 'only_if_not_engaged', 'step') }}::boolean as only_if_not_engaged,
        {{ setting(s, 'coupon_tiers', 'step') }}::text as step_coupon_tiers,
        {{ setting(s, 'decided', 'step') }}::boolean as is_decided
    {%- if not rows %}
    where false
    {%- endif %}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
)

select * from steps
