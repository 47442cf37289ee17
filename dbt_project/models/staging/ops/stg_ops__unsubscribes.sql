with source as (
    select * from {{ source('ops', 'unsubscribes') }}
)

select
    customer_id,
    channel,
    recorded_at,
    source as unsubscribe_source
from source
