{#- Contract §6: a campaign setting from the `campaigns` var as a SQL literal. Every setting is filled in by
    cart_recovery.campaigns, the one owner of the defaults: a missing key is an error that names it, never
    a second default here. -#}
{% macro setting(settings, key, what='campaign') -%}
    {%- if key not in settings -%}
        {{ exceptions.raise_compiler_error(what ~ " " ~ (settings.get('name') or settings.get('step') or '?') ~ " in the campaigns var has no " ~ key ~ ": pass the campaigns as cart_recovery.campaigns.to_dbt_vars builds them (docs/INTERFACES.md)") }}
    {%- endif -%}
    {{ sql_literal(settings[key]) }}
{%- endmacro %}

{#- A campaign of no consequence: the typed row a model over an empty campaign set selects and filters out. -#}
{% macro placeholder_campaign() -%}
    {%- do return({
        'name': none, 'cadence': 'daily', 'audience': 'all', 'default_locale': 'fr', 'abandon_after_minutes': 0,
        'max_cart_age_hours': 0, 'frequency_cap_days': 0, 'holdout_percent': 0, 'max_items': 0,
        'coupon_tiers': 'none', 'implied_consent_days': 0, 'attribution_window_hours': 0, 'steps': [],
    }) -%}
{%- endmacro %}

{#- A step of no consequence, for the same purpose. -#}
{% macro placeholder_step() -%}
    {%- do return({
        'step': 1, 'channels': [], 'delay_minutes': 0, 'template': 'abandoned_cart', 'only_if_not_engaged': false,
        'coupon_tiers': none, 'decided': false,
    }) -%}
{%- endmacro %}
