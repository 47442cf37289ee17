-- F5 / O5: the audience holds SHA-256 hex digests only, never an address, and only current members.
select
    customer_id,
    joined_at,
    leaves_at
from {{ ref('retargeting_audience') }}
where
    email_sha256 !~ '^[0-9a-f]{64}$'
    or joined_at > {{ evaluation_time() }}
    or leaves_at <= {{ evaluation_time() }}
