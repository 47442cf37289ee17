{#- Contract §3, O6: the schema a deciding run builds its T- and scope-dependent models in, var `run_schema`,
    which the DAGs set from the run's scope and T (cart_recovery.dbt.run_schema: `run_daily_20261120t140000`,
    the one place the name is made). The daily, hourly and backfill runs may build at the same moment;
    each reads only its own schema, the shared history (staging) and the ledgers (marts.decision_history,
    restricted.message_contents), which it writes by its own partition. A rerun rebuilds its schema; the
    run drops it once it has sent. Without the var (an analyst's own `dbt build`) the models go to
    `run_adhoc`. -#}
{% macro run_schema() -%}
    {{ var('run_schema', 'run_adhoc') }}
{%- endmacro %}

{#- The run's scope (docs/INTERFACES.md): `daily` (step 1 of the daily campaigns, the default),
    `followups` (the hourly run: every step of the hourly campaigns, steps >= 2 of the daily ones) or
    `backfill` (decides as `daily`, over lookback_days, O3; a partition of its own in the ledgers). -#}
{% macro decision_scope() -%}
    {%- set scope = var('decision_scope', 'daily') -%}
    {%- if scope not in ('daily', 'followups', 'backfill') -%}
        {{ exceptions.raise_compiler_error("var decision_scope must be daily, followups or backfill, not " ~ scope) }}
    {%- endif -%}
    {{ scope }}
{%- endmacro %}

{#- Serialises the builds of one relation across runs that overlap (O6): a transaction-level advisory lock
    on the relation's name, taken in the model's own transaction before it is replaced, and released at its
    commit. Two runs never rebuild the same shared model at once; runs building different relations (their
    own schemas) never wait for each other. -#}
{% macro lock_relation() -%}
    select pg_advisory_xact_lock(hashtextextended('cart_recovery:{{ this }}', 0))
{%- endmacro %}
