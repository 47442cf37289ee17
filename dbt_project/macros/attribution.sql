{#- Attribution and reporting (A2–A4): the settings and windows the attribution models share.

    - reporting_timezone: the calendar a report day belongs to (var `reporting_timezone`, default
      America/Toronto, the shop's and the DAGs' timezone).
    - attribution_lookback_days: a run at T re-attributes the completed orders placed in
      (T - lookback, T] (var `attribution_lookback_days`, default 3), so orders that arrive late or change
      status within that many days are caught by a later run.
    - max_attribution_window_hours: the largest `attribution_window_hours` of the campaigns (at least the
      default 24, for messages of campaigns no longer configured). -#}

{% macro reporting_timezone() -%}
    '{{ var("reporting_timezone", "America/Toronto") }}'
{%- endmacro %}

{% macro attribution_lookback_days() -%}
    {{ var("attribution_lookback_days", 3) | int }}
{%- endmacro %}

{% macro max_attribution_window_hours() -%}
    {%- set windows = [24] -%}
    {%- for c in var("campaigns") or [] -%}
        {%- do windows.append(c["attribution_window_hours"] | int) -%}
    {%- endfor -%}
    {{ windows | max }}
{%- endmacro %}

{#- The local calendar day of a timestamptz expression. -#}
{% macro report_date(expression) -%}
    (({{ expression }} at time zone {{ reporting_timezone() }})::date)
{%- endmacro %}

{#- The first order time (exclusive) a run at T re-attributes. -#}
{% macro attribution_orders_from() -%}
    ({{ evaluation_time() }} - make_interval(days => {{ attribution_lookback_days() }}))
{%- endmacro %}

{#- Pre-hook of attributed_orders (incremental): the run replaces the attributions of the orders placed in
    its period, and drops those of orders that are no longer completed (A2: a cancellation or refund that
    arrives later removes the attribution). Inside the model's transaction, so readers never see a gap. -#}
{% macro attribution_delete_order_window() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where
            (attributed_at > {{ attribution_orders_from() }} and attributed_at <= {{ evaluation_time() }})
            or order_id in (select order_id from {{ ref('stg_shop__orders') }} where status != 'completed')
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of the daily performance marts (incremental): a run at T rewrites every report day up to T's
    day, as of T, so the figures always agree with attributed_orders (late refunds included); the days
    after T's (written by the runs of later dates) are left as they are, so replaying an old date does not
    take the later days off the dashboard (O2). -#}
{% macro attribution_delete_report_days() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where report_date <= {{ report_date(evaluation_time()) }}
    {%- endif -%}
{%- endmacro %}
