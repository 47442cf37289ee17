"""Unique coupon codes from pools (C2, C3), set-based and safe under overlapping runs.

The run's partition of `marts.decision_history` (T, scope) says which tier each eligible cart version gets;
this hands out pool codes:
- a code goes to at most one cart version, ever: `ops.coupon_allocations` has its primary key on the code;
- the same cart version keeps its code on every rerun: unique (campaign, step, cart_id, cart_version);
- two runs at once: a transaction-scoped advisory lock per pool serialises allocation from that pool, and
  `on conflict do nothing` keeps the constraints the last word;
- an exhausted pool allocates nothing (eligible_recipients shows the tier's static code) and raises one
  `coupon_pool_exhausted` alert per pool and run.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import psycopg

log = logging.getLogger(__name__)

_ALLOCATE = """
with needing as (
    select a.campaign, a.step, a.customer_id, a.cart_id, a.cart_version, a.decided_at,
           row_number() over (order by a.campaign, a.step, a.cart_id) as n
    from marts.decision_history as a
    where a.coupon_pool = %(pool)s and a.decided_at = %(t)s and a.scope = %(scope)s and a.reason is null
      and not exists (
          select 1 from ops.coupon_allocations as c
          where c.campaign = a.campaign and c.step = a.step and c.cart_id = a.cart_id
            and c.cart_version = a.cart_version
      )
),
free_codes as (
    select k.code, row_number() over (order by k.code) as n
    from staging.stg_shop__coupon_codes as k
    where k.pool = %(pool)s
      and not exists (select 1 from ops.coupon_allocations as c where c.code = k.code)
    limit (select count(*) from needing)
),
inserted as (
    insert into ops.coupon_allocations (code, pool, campaign, step, customer_id, cart_id, cart_version, decided_at)
    select f.code, %(pool)s, n.campaign, n.step, n.customer_id, n.cart_id, n.cart_version, n.decided_at
    from needing as n
    inner join free_codes as f using (n)
    on conflict do nothing
    returning 1
)
select (select count(*) from needing) as needed, (select count(*) from inserted) as allocated
"""


_MISSING = """
select a.campaign, count(*) as missing
from marts.decision_history as a
where a.coupon_pool = %(pool)s and a.decided_at = %(t)s and a.scope = %(scope)s and a.reason is null
  and not exists (
      select 1 from ops.coupon_allocations as c
      where c.campaign = a.campaign and c.step = a.step and c.cart_id = a.cart_id
        and c.cart_version = a.cart_version
  )
group by a.campaign
order by a.campaign
"""

# one alert per (run, pool, campaign, shortfall): a rerun that is just as short does not add another
_ALERT = """
insert into ops.alerts (kind, detail, decided_at)
select 'coupon_pool_exhausted', %(detail)s::jsonb, %(t)s
where not exists (
    select 1 from ops.alerts
    where kind = 'coupon_pool_exhausted' and decided_at = %(t)s and detail = %(detail)s::jsonb
)
"""


def assign_coupons(conn: psycopg.Connection, decided_at: datetime, scope: str = "daily") -> dict[str, Any]:
    """Allocate pool codes to the coupon tiers of the run (T, scope) in `marts.decision_history`.

    Returns `{pool: {"needed": n, "allocated": n, "fell_back_to_static": n}}`; "needed" counts the cart
    versions without a code before this call (a rerun needs nothing new)."""
    pools = [
        r[0]
        for r in conn.execute(
            "select distinct coupon_pool from marts.decision_history "
            "where decided_at = %s and scope = %s and reason is null and coupon_pool is not null order by 1",
            (decided_at, scope),
        ).fetchall()
    ]
    conn.commit()
    counts: dict[str, Any] = {}
    for pool in pools:
        with conn.transaction():
            # C2: one allocator per pool at a time; under READ COMMITTED the next statement sees what the
            # run that held the lock before us committed, so no two runs pick the same free code
            conn.execute("select pg_advisory_xact_lock(hashtext('cart_recovery.coupon_pool:' || %s))", (pool,))
            needed, allocated = conn.execute(_ALLOCATE, {"pool": pool, "t": decided_at, "scope": scope}).fetchone()
            missing_by_campaign = conn.execute(_MISSING, {"pool": pool, "t": decided_at, "scope": scope}).fetchall()
            for campaign, missing in missing_by_campaign:
                # C3: never reuse a code; the tier's static code applies and an operator sees why
                detail = json.dumps({"pool": pool, "campaign": campaign, "missing": missing}, sort_keys=True)
                conn.execute(_ALERT, {"detail": detail, "t": decided_at})
                log.warning(
                    "coupon pool %s exhausted for campaign %s: %d cart versions get the static code",
                    pool,
                    campaign,
                    missing,
                )
        missing_total = sum(m for _, m in missing_by_campaign)
        counts[pool] = {"needed": needed, "allocated": allocated, "fell_back_to_static": missing_total}
    log.info("coupons at %s: %s", decided_at.isoformat(), counts)
    return counts
