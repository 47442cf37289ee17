{#- dbt's `where` test config, plus one placeholder (YAML configs cannot call macros; dbt documents this
    override for the purpose): `__recently_loaded__` keeps the rows loaded in the last `load_overlap_hours`
    before the table's latest load — what the latest builds brought in. The data tests of the incremental
    staging tables use it: each row is tested in the builds after it was loaded, so a daily build tests a
    day of data, not the whole history again (the ingest validated every row before that, O4). -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- if '__recently_loaded__' in where -%}
            {#- a constant at execution (macros/loaded_since_last_build.sql): the index on _loaded_at is used -#}
            {%- set recent -%}
                _loaded_at > {{ loaded_at_threshold(relation) }}
            {%- endset -%}
            {%- set where = where | replace('__recently_loaded__', recent) -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
