-- D2 (contract §4): the carts abandoned at T in the latest run built, per campaign (a copy of that run's
-- int_abandoned_carts: the run's own schema is dropped once it has sent).
select
    campaign,
    cart_id,
    cart_version,
    customer_id,
    store_id,
    device,
    currency,
    cart_url,
    last_activity_at,
    item_count,
    cart_value,
    is_targetable,
    evaluated_at
from {{ ref('int_abandoned_carts') }}
