-- E1, E3: no institution, and no customer without a consent in force on the chosen channel at T, is ever
-- eligible. Re-derived from the staging records (not from the decision's own intermediate models), for the
-- eligible customers only (read by key: the test costs what the run decides, not the customer history).
-- Fails with one row per offending recipient.
with eligible as (
    select * from {{ ref('int_decisions') }}
    where reason is null
),

campaigns as (
    select * from {{ ref('int_campaigns') }}
),

customers as (
    select distinct on (customer_id)
        customer_id,
        customer_type
    from {{ ref('stg_shop__customers') }}
    where
        updated_at <= {{ evaluation_time() }}
        and customer_id in (select eligible.customer_id from eligible)
    order by customer_id asc, updated_at desc
),

consents as (
    select distinct on (customer_id, channel)
        customer_id,
        channel,
        status,
        basis,
        recorded_at
    from {{ ref('stg_shop__consents') }}
    where
        recorded_at <= {{ evaluation_time() }}
        and customer_id in (select eligible.customer_id from eligible)
    order by customer_id asc, channel asc, recorded_at desc
),

final as (
    select
        eligible.campaign,
        eligible.step,
        eligible.cart_id,
        eligible.customer_id,
        eligible.channel,
        customers.customer_type,
        consents.status as consent_status,
        consents.basis as consent_basis,
        consents.recorded_at as consent_recorded_at
    from eligible
    inner join campaigns on eligible.campaign = campaigns.campaign
    left join customers on eligible.customer_id = customers.customer_id
    left join consents
        on
            eligible.customer_id = consents.customer_id
            and eligible.channel = consents.channel
    where
        customers.customer_id is null
        or customers.customer_type = 'institution'
        or consents.status is null
        or consents.status != 'granted'
        or (
            consents.basis = 'implied'
            and consents.recorded_at + make_interval(days => campaigns.implied_consent_days)
            <= campaigns.evaluated_at
        )
)

select * from final
