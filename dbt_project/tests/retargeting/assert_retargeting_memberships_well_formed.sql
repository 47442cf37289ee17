-- F5: one membership per (customer, joined_at); joins of a customer at least 14 days apart; a membership
-- lasts more than nothing (but one that an opt-out which arrived late ends as it begins: int_retargeting_memberships)
-- and at most 14 days. Fails with each offending membership.
with memberships as (
    select
        customer_id,
        joined_at,
        leaves_at,
        leave_reason,
        lag(joined_at) over (partition by customer_id order by joined_at asc) as previous_joined_at
    from {{ ref('int_retargeting_memberships') }}
)

select *
from memberships
where
    previous_joined_at is not null
    and previous_joined_at + make_interval(days => {{ var('retargeting_membership_days', 14) }}) > joined_at
    or leaves_at < joined_at
    or (leaves_at = joined_at and leave_reason is distinct from 'opted_out')
    or leaves_at > joined_at + make_interval(days => {{ var('retargeting_membership_days', 14) }})
