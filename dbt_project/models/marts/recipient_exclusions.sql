-- E9: every abandoned cart not messaged in this run, with exactly one reason (see
-- int_recipient_decisions for the priority order). "Why did customer X get nothing?" is one query here.
with decisions as (
    select * from {{ ref('int_recipient_decisions') }}
),

final as (
    select
        campaign,
        step,
        cart_id,
        cart_version,
        customer_id,
        reason,
        decided_at
    from decisions
    where reason is not null
)

select * from final
