{{ config(tags=['attribution']) }}
-- A2: every attributed order was placed within its message's window after the message's decided_at, both
-- ends included. Reads attributed_orders only, so the test runs with the model in the attribution DAG (a
-- test over several models would also be rendered by the daily DAG, which does not build this one).
select
    order_id,
    message_id,
    message_decided_at,
    attributed_at,
    attribution_window_hours
from {{ ref('attributed_orders') }}
where
    attributed_at < message_decided_at
    or attributed_at > message_decided_at + make_interval(hours => attribution_window_hours)
    or attribution_window_hours is null
