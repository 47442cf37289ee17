"""Simulated customer responses to a demo run's messages, written as landing files (contract §2), so the
attribution DAG and the dashboard have something to measure (A1–A5).

    python -m cart_recovery.demo.responses --landing var/landing --date 2026-11-20T14:00:00Z [--seed 7]

For every message a run decided at T (`ops.messages.decided_at = T`, dry runs left out):

- sent messages (status `sent`) get SendGrid Event Webhook objects in `provider_events_<T>_responses.jsonl`:
  `processed`, then `delivered` (≈97 %) or a `bounce`; `open` (≈45 % of sent, sometimes twice), `click`
  (≈12 %, mostly after an open, sometimes without one: images blocked), a few `unsubscribe` and
  `spamreport`, and a few events re-delivered with the same `sg_event_id` (SendGrid does that; A1 dedup).
  Each carries `sg_event_id, event, email, timestamp` (Unix seconds), `sg_message_id` (the provider id
  the send stored, plus SendGrid's filter suffix) and the custom args `message_id` and `campaign`, as the
  real webhook sends them (contract §5);
- orders in `orders_<T>_responses.jsonl`: a completed order of the message's cart within 24 h after T for
  ≈8 % of the sent messages (clickers buy more often) and ≈4 % of the held-out decisions (E8: the baseline
  the lift is measured against, A4); ≈10 % of these orders come back cancelled.

Deterministic: each message draws from its own `random.Random` seeded by (seed, message_id), and every time
is T plus a drawn offset — never the wall clock. Rates are module constants. The email address comes from
the customer's latest `raw.customers` row and goes into the event file only (the real webhook carries it
too); nothing here logs or prints one (O5).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SHOP_TZ = ZoneInfo("America/Toronto")

# Shares of the sent messages (of the held-out decisions for HOLDOUT_ORDER).
DELIVERED = 0.97  # the rest bounce
OPEN = 0.45
CLICK = 0.12
CLICK_WITHOUT_OPEN = 0.15  # of the clicks: images blocked, so no open event comes back
UNSUBSCRIBE = 0.01
SPAM_REPORT = 0.003
# the dashboard counts a click as an open (A3): opened-or-clicked ≈ OPEN of the sent
OPEN_IF_NOT_CLICKED = (OPEN - CLICK) / (DELIVERED - CLICK)
REDELIVERED = 0.02  # an event SendGrid posts twice, same sg_event_id
# Orders: ≈8 % of the sent overall; a clicker buys far more often than a reader who did not click.
ORDER_IF_CLICKED = 0.35
ORDER_OTHERWISE = (0.08 - CLICK * ORDER_IF_CLICKED) / (1 - CLICK)
HOLDOUT_ORDER = 0.04
CANCELLED = 0.10
WINDOW = timedelta(hours=24)  # orders land within the attribution window (A2), strictly inside it

# One row per decision of the run: the message, the address the event carries, the cart version's content.
_DECISIONS_SQL = """
with customers as (
    select distinct on (customer_id) customer_id, email
    from raw.customers
    order by customer_id, updated_at desc, _file_name desc, _line_number desc
),
carts as (
    select distinct on (event_id) event_id, store_id, currency, items
    from raw.cart_events
    order by event_id, _file_name, _line_number
)
select
    m.message_id::text as message_id,
    m.campaign,
    m.step,
    m.channel,
    m.status,
    m.customer_id,
    m.cart_id,
    m.provider_message_id,
    customers.email,
    carts.store_id,
    coalesce(carts.currency, 'CAD') as currency,
    coalesce(carts.items, '[]'::jsonb) as items
from ops.messages as m
left join customers on m.customer_id = customers.customer_id
left join carts on m.cart_version = carts.event_id
where
    m.decided_at = %(t)s
    and m.idempotency_key not like 'dry\\_run:%%'
    and (m.status = 'sent' or (m.status = 'skipped' and m.skip_reason = 'holdout'))
order by m.campaign, m.step, m.customer_id, m.cart_id, m.message_id
"""


@dataclass(frozen=True)
class Decision:
    message_id: str
    campaign: str
    step: int
    channel: str
    status: str
    customer_id: str
    cart_id: str
    provider_message_id: str | None
    email: str | None
    store_id: str | None
    currency: str
    items: list[dict[str, Any]]

    @property
    def is_sent(self) -> bool:
        return self.status == "sent"


def load_decisions(conn: Any, t: datetime) -> list[Decision]:
    """The run's sent messages and held-out decisions (psycopg connection to the warehouse)."""
    rows = conn.execute(_DECISIONS_SQL, {"t": t}).fetchall()
    return [
        Decision(
            message_id=r[0],
            campaign=r[1],
            step=int(r[2]),
            channel=r[3],
            status=r[4],
            customer_id=r[5],
            cart_id=r[6],
            provider_message_id=r[7],
            email=r[8],
            store_id=r[9],
            currency=r[10],
            items=list(r[11] if not isinstance(r[11], str) else json.loads(r[11])),
        )
        for r in rows
    ]


def _event_id(seed: int, message_id: str, kind: str, n: int) -> str:
    """A SendGrid-like sg_event_id (22 URL-safe characters), the same for the same inputs."""
    digest = hashlib.sha256(f"{seed}:{message_id}:{kind}:{n}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]


def _local_iso(t: datetime) -> str:
    return t.astimezone(SHOP_TZ).isoformat(timespec="seconds")


def _events_for(d: Decision, t: datetime, rng: random.Random, seed: int) -> list[dict[str, Any]]:
    """The webhook objects SendGrid would post for one sent email, in time order."""
    provider = d.provider_message_id or hashlib.sha1(d.message_id.encode()).hexdigest()[:22]
    counter = 0

    def event(kind: str, at: datetime, **extra: Any) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        return {
            "email": d.email,
            "timestamp": int(at.timestamp()),
            "smtp-id": f"<{provider}@sendgrid-standin.local>",
            "event": kind,
            "category": ["cart_recovery"],
            "sg_event_id": _event_id(seed, d.message_id, kind, counter),
            "sg_message_id": f"{provider}.filterdrecv-demo-{counter}",
            "message_id": d.message_id,  # custom args (contract §5)
            "campaign": d.campaign,
            "step": str(d.step),
            **extra,
        }

    sent_at = t + timedelta(seconds=rng.randint(5, 600))
    events = [event("processed", sent_at)]
    if rng.random() >= DELIVERED:
        events.append(
            event(
                "bounce",
                sent_at + timedelta(seconds=rng.randint(2, 120)),
                type="bounce",
                status="5.1.1",
                reason="550 5.1.1 The email account that you tried to reach does not exist.",
            )
        )
        return events
    delivered_at = sent_at + timedelta(seconds=rng.randint(1, 90))
    events.append(event("delivered", delivered_at, response="250 OK"))
    clicked = rng.random() < CLICK / DELIVERED
    opened = rng.random() >= CLICK_WITHOUT_OPEN if clicked else rng.random() < OPEN_IF_NOT_CLICKED
    opened_at = delivered_at + timedelta(minutes=rng.randint(1, 20 * 60))
    if opened:
        events.append(event("open", opened_at, useragent="Mozilla/5.0", sg_machine_open=False))
        if rng.random() < 0.3:  # a second look later the same day
            events.append(event("open", opened_at + timedelta(minutes=rng.randint(5, 120)), useragent="Mozilla/5.0"))
    if clicked:
        clicked_at = (opened_at if opened else delivered_at) + timedelta(minutes=rng.randint(0, 30))
        events.append(event("click", clicked_at, url=f"https://leslibraires.example/panier/{d.cart_id}"))
    if opened and rng.random() < UNSUBSCRIBE / OPEN:
        events.append(event("unsubscribe", opened_at + timedelta(minutes=1)))
    elif rng.random() < SPAM_REPORT:
        events.append(event("spamreport", delivered_at + timedelta(hours=rng.randint(1, 12))))
    if rng.random() < REDELIVERED:
        events.append(dict(events[-1]))  # the same object again: SendGrid retried its POST
    events.sort(key=lambda e: e["timestamp"])
    return events


def _order_for(d: Decision, t: datetime, rng: random.Random, n: int) -> dict[str, Any]:
    """A completed (or cancelled) order of the cart the message was about, within the window after T."""
    placed = t + timedelta(seconds=rng.randint(15 * 60, int(WINDOW.total_seconds()) - 15 * 60))
    lines = [
        {"sku": i["sku"], "quantity": int(i.get("quantity") or 1), "unit_price": str(i["unit_price"])}
        for i in d.items
        if isinstance(i, dict) and i.get("sku") and i.get("unit_price") is not None
    ] or [{"sku": "DEMO-GIFT-CARD", "quantity": 1, "unit_price": "25.00"}]
    total = sum((Decimal(line["unit_price"]) * line["quantity"] for line in lines), Decimal("0"))
    stamp = t.astimezone(SHOP_TZ).strftime("%Y%m%d")
    return {
        "event_id": f"rsp-{stamp}-{n:06d}",
        "order_id": f"CMD-R{stamp}-{n:06d}",
        "customer_id": d.customer_id,
        "cart_id": d.cart_id if rng.random() < 0.85 else None,  # some orders come without their cart id
        "placed_at": _local_iso(placed),
        "status": "cancelled" if rng.random() < CANCELLED else "completed",
        "store_id": d.store_id,
        "currency": d.currency,
        "total": f"{total:.2f}",
        "items": lines,
    }


def simulate(decisions: list[Decision], t: datetime, seed: int = 7) -> tuple[list[dict], list[dict]]:
    """(provider events, orders) for a run's decisions; pure: the same input gives the same output."""
    events: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    for d in decisions:
        rng = random.Random(f"{seed}:{d.message_id}")
        if d.is_sent:
            mine = _events_for(d, t, rng, seed) if d.channel == "email" and d.email else []
            events.extend(mine)
            clicked = any(e["event"] == "click" for e in mine)
            buys = rng.random() < (ORDER_IF_CLICKED if clicked else ORDER_OTHERWISE)
        else:
            buys = rng.random() < HOLDOUT_ORDER
        if buys:
            orders.append(_order_for(d, t, rng, len(orders) + 1))
    events.sort(key=lambda e: (e["timestamp"], e["sg_event_id"]))
    orders.sort(key=lambda o: (o["placed_at"], o["order_id"]))
    return events, orders


def write_responses(conn: Any, landing: Path, t: datetime, seed: int = 7) -> dict[str, Any]:
    """Write the landing files for the run at T; return counts (no personal data) and the file paths."""
    t = t.astimezone(UTC)
    decisions = load_decisions(conn, t)
    events, orders = simulate(decisions, t, seed)
    landing.mkdir(parents=True, exist_ok=True)
    tag = t.astimezone(SHOP_TZ).strftime("%Y%m%dT%H%M")
    files = {}
    for kind, rows in (("provider_events", events), ("orders", orders)):
        path = landing / f"{kind}_{tag}_responses.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        files[kind] = str(path)
    counts: dict[str, Any] = {
        "sent": sum(d.is_sent for d in decisions),
        "held_out": sum(not d.is_sent for d in decisions),
    }
    for kind in ("delivered", "bounce", "open", "click", "unsubscribe", "spamreport"):
        counts[kind] = len({e["message_id"] for e in events if e["event"] == kind})
    counts["orders_completed"] = sum(o["status"] == "completed" for o in orders)
    counts["orders_cancelled"] = sum(o["status"] == "cancelled" for o in orders)
    counts["files"] = files
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--landing", type=Path, required=True)
    ap.add_argument("--date", required=True, help="the daily run's T, ISO 8601 with offset")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--conn-id", default="cart_recovery_db")
    args = ap.parse_args(argv)
    import psycopg

    from cart_recovery.db import conninfo

    t = datetime.fromisoformat(args.date.replace("Z", "+00:00"))
    with psycopg.connect(conninfo(args.conn_id)) as conn:
        print(json.dumps(write_responses(conn, args.landing, t, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
