{#- Custom schemas are used as named (staging, intermediate, marts, restricted): the contract names
    `marts.eligible_recipients`, not `public_marts.eligible_recipients`. The schema `run` stands for the
    run's own schema (run_schema()): what depends on T or on the scope is never shared between runs. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}
    {%- elif custom_schema_name | trim == 'run' -%}{{ run_schema() }}
    {%- else -%}{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
