{#- The rows an incremental model must read: those loaded since its last build (by `_loaded_at`, the load
    time the raw tables stamp on every row), less an overlap of var `load_overlap_hours`, so that a load
    whose transaction began before the last build but committed after it is read too. Event time cannot
    serve: late events arrive in later loads (D1). Rows read twice are skipped or merged again by each
    model's key, so the overlap costs a re-read, never a duplicate.
    Within the overlap, a load whose `_loaded_at` the model already holds is skipped: a load is one
    transaction, so its rows have one `_loaded_at` and became visible together; the build that stored one of
    them read them all. Without this, the latest load would be read again on every build until a newer one
    arrives (1M customers loaded once cost 4.2 s a day at scale 1); with it the overlap costs what is new.
    The catch for a latest-wins model: once every row of an older load was replaced, that load is no longer
    held and is read again while the newer one is skipped; such a model must keep a stored row that came
    from a later load (stg_shop__orders compares `_loaded_at`; the others merge with the stored row).
    `loaded_at` must be qualified (`alias._loaded_at`): it is compared inside a subquery on the model.
    A full build (first run, --full-refresh) reads everything; so does the first incremental run after
    `_loaded_at` was added to an older table (its existing rows have none). -#}
{% macro loaded_since_last_build(loaded_at) -%}
    {#- `adapter is defined`: sqlfluff's lint templater has no adapter (dbt always has one) -#}
    {%- if is_incremental() and adapter is defined
        and '_loaded_at' in adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
        {%- set threshold = loaded_at_threshold(this) -%}
        {{ loaded_at }} > {{ threshold }}
        and not exists (
            select 1 from {{ this }} as seen_load
            where seen_load._loaded_at = {{ loaded_at }} and seen_load._loaded_at > {{ threshold }}
        )
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- The relation's latest `_loaded_at` less `load_overlap_hours`, as SQL. At execution it is read first and
    written as a constant: compared with a subquery, the planner cannot know how few rows pass (it assumes
    a third of the table) and picks full scans and hash joins over the whole history; with the constant it
    reads the `_loaded_at` statistics and uses the indexes (measured at scale 1: see bench/bench_models.py).
    Whole seconds, rounded down: the window only grows, by under a second. An empty relation: -infinity. -#}
{% macro loaded_at_threshold(relation) -%}
    {%- set threshold_sql -%}
        (
            select coalesce(max(loaded._loaded_at), '-infinity'::timestamptz)
            from {{ relation }} as loaded
        ) - make_interval(hours => {{ var('load_overlap_hours') }})
    {%- endset -%}
    {%- if execute and adapter is defined -%}
        {%- set found = run_query(
            'select floor(extract(epoch from max(_loaded_at)) - 3600 * ' ~ var('load_overlap_hours')
            ~ ')::bigint as since from ' ~ relation
        ) -%}
        {%- if found.rows[0][0] is not none -%}
            to_timestamp({{ found.rows[0][0] }})
        {%- else -%}
            '-infinity'::timestamptz
        {%- endif -%}
    {%- else -%}
        {{ threshold_sql }}
    {%- endif -%}
{%- endmacro %}
