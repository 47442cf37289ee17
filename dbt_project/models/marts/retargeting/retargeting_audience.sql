-- F5 (contract §4): the retargeting audience at T, one row per customer currently in it:
-- joined_at <= T < leaves_at. Hashed emails only; the export task (cart_recovery.retargeting) turns the
-- changes of this table between runs into the ad platforms' customer-list files.
with memberships as (
    select * from {{ ref('int_retargeting_memberships') }}
),

final as (
    select
        customer_id,
        email_sha256,
        joined_at,
        leaves_at,
        -- T of this build: the export refuses a table built for another T (the DAGs share the marts)
        {{ evaluation_time() }} as evaluated_at
    from memberships
    where
        joined_at <= {{ evaluation_time() }}
        and leaves_at > {{ evaluation_time() }}
)

select * from final
