-- The provider's id of each sent message (SendGrid's X-Message-Id, S2), to match the provider events that
-- lack our message_id custom arg (A1). Kept apart from stg_ops__messages, which the decision models read.
with source as (
    select * from {{ source('ops', 'messages') }}
)

select
    message_id,
    provider_message_id
from source
where provider_message_id is not null
