{{
    config(
        materialized='incremental',
        unique_key=['customer_id', 'channel', 'recorded_at'],
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['customer_id', 'channel', 'recorded_at'], 'unique': True},
            {'columns': ['_loaded_at']},
        ],
    )
}}
-- Every consent record, one per (customer, channel, recorded_at); a record delivered again replaces it
-- (the latest-loaded wins). E3 picks the latest per customer and channel at T. Incremental like
-- stg_shop__customers: the rows loaded since the last build and not already stored are merged by key.
with source as (
    select * from {{ source('shop', 'consents') }} as raw_consents
    -- sqlfluff mis-indents the templated incremental filter below
    -- noqa: disable=LT02
    where
        {{ loaded_since_last_build('raw_consents._loaded_at') }}
        {% if is_incremental() %}
        and not exists (
            select 1 from {{ this }} as kept
            where
                kept.customer_id = raw_consents.customer_id
                and kept.channel = raw_consents.channel
                and kept.recorded_at = raw_consents.recorded_at
                and kept._loaded_at >= raw_consents._loaded_at
        )
        {%- endif %}
    -- noqa: enable=LT02
),

renamed as (
    select distinct on (customer_id, channel, recorded_at)
        customer_id,
        channel,
        status,
        coalesce(basis, 'express') as basis,
        recorded_at,
        source as consent_source,
        _loaded_at
    from source
    order by customer_id asc, channel asc, recorded_at asc, _loaded_at desc, _file_name desc, _line_number desc
)

select * from renamed
