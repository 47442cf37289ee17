{{ config(materialized='view') }}
-- E9 (contract §4): every abandoned cart not messaged in the latest run built, with exactly one reason. A
-- view over the ledger's partition of that run; any earlier run's exclusions are in decision_history.
select
    campaign,
    step,
    cart_id,
    cart_version,
    customer_id,
    reason,
    decided_at,
    scope
from {{ ref('decision_history') }}
where {{ this_run() }} and reason is not null
