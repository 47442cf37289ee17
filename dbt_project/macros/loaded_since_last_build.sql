{#- The rows an incremental model must read: those loaded since its last build (by `_loaded_at`, the load
    time the raw tables stamp on every row), less an overlap of var `load_overlap_hours`, so that a load
    whose transaction began before the last build but committed after it is read too. Event time cannot
    serve: late events arrive in later loads (D1). Rows read twice are skipped or merged again by each
    model's key, so the overlap costs a re-read, never a duplicate.
    A full build (first run, --full-refresh) reads everything; so does the first incremental run after
    `_loaded_at` was added to an older table (its existing rows have none). -#}
{% macro loaded_since_last_build(loaded_at) -%}
    {#- `adapter is defined`: sqlfluff's lint templater has no adapter (dbt always has one) -#}
    {%- if is_incremental() and adapter is defined
        and '_loaded_at' in adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
        {{ loaded_at }} > (
            select coalesce(max(built._loaded_at), '-infinity'::timestamptz)
            from {{ this }} as built
        ) - make_interval(hours => {{ var('load_overlap_hours') }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
