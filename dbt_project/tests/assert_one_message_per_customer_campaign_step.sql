-- D5: no customer is messaged twice for the same campaign and step in one run (T).
select
    campaign,
    step,
    customer_id,
    decided_at,
    count(*) as recipient_rows
from {{ ref('int_decisions') }}
where reason is null
group by campaign, step, customer_id, decided_at
having count(*) > 1
