{#- Custom schemas are used as named (staging, intermediate, marts, restricted): the contract names
    `marts.eligible_recipients`, not `public_marts.eligible_recipients`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
