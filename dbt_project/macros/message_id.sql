{#- S2, E6: a message's idempotency key and id, from the warehouse's functions `ops.idempotency_key` and
    `ops.message_id` (plugins/cart_recovery/sql/schema.sql, the one definition, which the sender's stand-ins
    and tests call too). -#}
{% macro idempotency_key(campaign, step, cart_id, cart_version) -%}
    ops.idempotency_key({{ campaign }}, {{ step }}, {{ cart_id }}, {{ cart_version }})
{%- endmacro %}

{% macro message_id(key_expression) -%}
    ops.message_id({{ key_expression }})
{%- endmacro %}

{% macro dry_run_key(key_expression) -%}
    ops.dry_run_key({{ key_expression }})
{%- endmacro %}
