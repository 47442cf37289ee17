{#- T as a timestamptz literal: the run's data-interval end, never now() (O1, O2).
    Building or compiling a model that decides without T is an error; `dbt parse`, `dbt ls` and
    `dbt docs generate` (which compile for the docs only) render a placeholder instead. -#}
{% macro evaluation_time() -%}
    {%- set t = var('evaluation_time') -%}
    {%- if t is none and execute and flags.WHICH not in ('generate', 'list', 'ls', 'parse') -%}
        {{ exceptions.raise_compiler_error("var evaluation_time is required (T, the run's data-interval end), e.g. --vars '{evaluation_time: \"2026-11-20T14:00:00+00:00\"}'") }}
    {%- endif -%}
    ('{{ t or "1970-01-01T00:00:00+00:00" }}'::timestamptz)
{%- endmacro %}
