{#- C2, C3: a decision's coupon code — its allocated pool code, else the tier's static code; none without a
    tier. `decided` holds coupon_percent and coupon_static_code, `allocations` is stg_ops__coupon_allocations. -#}
{% macro coupon_code(decided, allocations) -%}
    case
        when {{ decided }}.coupon_percent is not null
            then coalesce({{ allocations }}.coupon_code, {{ decided }}.coupon_static_code)
    end
{%- endmacro %}
