{#- Pre-hook of the ledgers (marts.decision_history, restricted.message_contents): a run replaces its own
    partition, (T, scope), and nothing else (O2, O6); inside the model's transaction, after lock_relation(). -#}
{% macro delete_run_partition() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where decided_at = {{ evaluation_time() }} and scope = {{ sql_literal(decision_scope()) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The partition of the run being built, as a where clause on a ledger (the contract's latest-run views). -#}
{% macro this_run() -%}
    decided_at = {{ evaluation_time() }} and scope = {{ sql_literal(decision_scope()) }}
{%- endmacro %}

{#- Pre-hook of restricted.message_contents: personal data older than `message_contents_retention_days`
    (14) before T goes (a deferred SMS waits at most a night; the ledger keeps the decisions, ids only). -#}
{% macro delete_expired_contents() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where decided_at < {{ evaluation_time() }}
        - make_interval(days => {{ var('message_contents_retention_days', 14) | int }})
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
