"""The demo's simulated customer responses (cart_recovery.demo.responses): deterministic, times from T only
(never the wall clock), SendGrid-shaped events and contract-shaped orders the ingest loads without a
quarantined row, only for the run's real sent and held-out decisions (A1, A2, E8, O5)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from cart_recovery.demo.responses import WINDOW, Decision, load_decisions, simulate, write_responses
from cart_recovery.devtools.demo_run import attribution_t
from cart_recovery.ingest import load_landing

T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # 09:00 in Montréal


def decisions(n_sent: int, n_held: int) -> list[Decision]:
    def one(i: int, status: str) -> Decision:
        return Decision(
            message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"m{status}{i}")),
            campaign="bookstore_daily",
            step=1,
            channel="email",
            status=status,
            customer_id=f"{status[:4]}{i}",
            cart_id=f"k{status[:4]}{i}",
            provider_message_id=f"pm{i:06d}" if status == "sent" else None,
            email=f"c{i}@mail.example",
            store_id="S1",
            currency="CAD",
            items=[{"sku": "B1", "quantity": 2, "unit_price": "12.50"}],
        )

    return [one(i, "sent") for i in range(n_sent)] + [one(i, "skipped") for i in range(n_held)]


def test_same_input_same_output_and_the_seed_matters() -> None:
    ds = decisions(300, 100)
    assert simulate(ds, T, seed=7) == simulate(ds, T, seed=7)
    assert simulate(ds, T, seed=7) != simulate(ds, T, seed=8)
    # each message draws from its own generator: dropping one decision changes no other message's events
    events, _ = simulate(ds, T)
    fewer, _ = simulate(ds[1:], T)
    assert [e for e in events if e["message_id"] != ds[0].message_id] == fewer


def test_times_come_from_t_only_never_the_wall_clock() -> None:
    ds = decisions(200, 100)
    later = T + timedelta(days=4000)  # 2037: a wall clock would show through as a different shift
    ev1, or1 = simulate(ds, T)
    ev2, or2 = simulate(ds, later)
    shift = int((later - T).total_seconds())
    assert [e["timestamp"] + shift for e in ev1] == [e["timestamp"] for e in ev2]
    placed1 = [datetime.fromisoformat(o["placed_at"]) for o in or1]
    placed2 = [datetime.fromisoformat(o["placed_at"]) for o in or2]
    assert [p + (later - T) for p in placed1] == placed2
    # A2: every order lands strictly inside the 24 h window after T, every event after T within a day
    assert all(T < p < T + WINDOW for p in placed1)
    assert all(T.timestamp() < e["timestamp"] < (T + timedelta(hours=26)).timestamp() for e in ev1)


def test_rates_and_event_shapes() -> None:
    ds = decisions(3000, 1000)
    events, orders = simulate(ds, T)
    per_kind = {k: len({e["message_id"] for e in events if e["event"] == k}) for k in ("delivered", "bounce")}
    assert per_kind["delivered"] + per_kind["bounce"] == 3000  # each sent email: delivered or bounced
    assert 0.95 < per_kind["delivered"] / 3000 < 0.99
    opened = {e["message_id"] for e in events if e["event"] in ("open", "click")}
    clicked = {e["message_id"] for e in events if e["event"] == "click"}
    assert 0.40 < len(opened) / 3000 < 0.50  # A3 counts a click as an open
    assert 0.09 < len(clicked) / 3000 < 0.15
    assert clicked - {e["message_id"] for e in events if e["event"] == "open"}  # some clicks without an open
    sent_ids = {d.message_id for d in ds if d.is_sent}
    assert {e["message_id"] for e in events} == sent_ids  # held-out decisions get no event
    by_id = {d.message_id: d for d in ds}
    for e in events:
        assert e["sg_message_id"].startswith(f"{by_id[e['message_id']].provider_message_id}.")
        assert e["campaign"] == "bookstore_daily"
        assert len(e["sg_event_id"]) == 22
    repeats = [k for k, n in Counter(e["sg_event_id"] for e in events).items() if n > 1]
    assert repeats  # SendGrid's retried POSTs: the same sg_event_id twice (A1 dedups them)
    assert len(repeats) < 0.05 * 3000
    sent_customers = {d.customer_id for d in ds if d.is_sent}
    treated = [o for o in orders if o["customer_id"] in sent_customers]
    held = [o for o in orders if o["customer_id"] not in sent_customers]
    assert 0.06 < len(treated) / 3000 < 0.10
    assert 0.02 < len(held) / 1000 < 0.06  # E8: the baseline the lift is measured against (A4)
    assert {o["status"] for o in orders} == {"completed", "cancelled"}
    assert {o["total"] for o in orders} == {"25.00"}  # 2 × 12.50: the cart's own lines


def insert_run(db: psycopg.Connection) -> dict[str, str]:
    """Customers, cart versions and the outbox of a daily run at T (and rows the responses must skip)."""
    for i, c in enumerate(("ana", "ben", "cat", "dan", "eve")):
        db.execute(
            "insert into raw.customers (customer_id, email, locale, customer_type, preferred_store_id, updated_at,"
            " _file_name, _line_number) values (%s, %s, 'fr', 'consumer', 'S1', %s, 'customers_1.csv', %s)",
            (c, f"{c}@mail.example", T - timedelta(days=30), i + 2),
        )
        db.execute(
            "insert into raw.cart_events (event_id, event_type, occurred_at, cart_id, customer_id, store_id,"
            " currency, items, _file_name, _line_number) values (%s, 'cart_updated', %s, %s, %s, 'S2', 'CAD',"
            " %s, 'cart_events_1.jsonl', %s)",
            (
                f"v-{c}",
                T - timedelta(hours=12),
                f"k-{c}",
                c,
                json.dumps([{"sku": "9782764626122", "quantity": 1, "unit_price": "31.95", "added_at": "x"}]),
                i + 1,
            ),
        )
    ids = {}
    rows = [
        ("ana", "sent", None, T, ""),
        ("ben", "sent", None, T, ""),
        ("cat", "skipped", "holdout", T, ""),
        ("dan", "failed", None, T, ""),  # not sent: no response
        ("eve", "dry_run", None, T, "dry_run:"),  # S3: dry runs are left out
        ("ana", "sent", None, T - timedelta(days=1), ""),  # another run's message
    ]
    for c, status, reason, at, prefix in rows:
        key = f"{prefix}bookstore_daily:1:k-{c}:v-{c}:{at:%d}"
        mid = str(uuid.uuid5(uuid.NAMESPACE_URL, key))
        db.execute(
            "insert into ops.messages (message_id, idempotency_key, campaign, step, channel, customer_id, cart_id,"
            " cart_version, status, skip_reason, provider_message_id, decided_at) values"
            " (%s, %s, 'bookstore_daily', 1, 'email', %s, %s, %s, %s, %s, %s, %s)",
            (mid, key, c, f"k-{c}", f"v-{c}", status, reason, f"pm-{c}-{at:%d}" if status == "sent" else None, at),
        )
        ids[f"{c}:{status}:{at:%d}"] = mid
    return ids


def test_write_responses_for_a_real_outbox_loads_cleanly(db, tmp_path: Path) -> None:
    ids = insert_run(db)
    landing = tmp_path / "landing"
    run = load_decisions(db, T)
    # a seed under which a sent message and the held-out decision both lead to an order (found, not guessed)
    seed = next(
        s
        for s in range(5000)
        if {o["customer_id"] for o in simulate(run, T, s)[1]} >= {"cat"} and len(simulate(run, T, s)[1]) >= 2
    )
    counts = write_responses(db, landing, T, seed=seed)
    files = counts.pop("files")
    assert counts["sent"] == 2  # ana and ben at T; dan failed, eve's dry run and yesterday's ana left out
    assert counts["held_out"] == 1
    assert counts["delivered"] + counts["bounce"] == 2
    assert "@" not in json.dumps(counts)  # O5: what the demo prints carries no address
    assert sorted(Path(p).name for p in files.values()) == [
        "orders_20261120T0900_responses.jsonl",
        "provider_events_20261120T0900_responses.jsonl",
    ]
    events = [json.loads(line) for line in Path(files["provider_events"]).read_text().splitlines()]
    assert {e["message_id"] for e in events} == {ids["ana:sent:20"], ids["ben:sent:20"]}
    assert {e["email"] for e in events} == {"ana@mail.example", "ben@mail.example"}  # the customer's address
    assert {e["sg_message_id"].split(".")[0] for e in events} == {"pm-ana-20", "pm-ben-20"}
    orders = [json.loads(line) for line in Path(files["orders"]).read_text().splitlines()]
    assert len(orders) >= 2
    assert "cat" in {o["customer_id"] for o in orders}  # E8: held-out customers buy too (the baseline)
    assert {o["customer_id"] for o in orders} <= {"ana", "ben", "cat"}
    for o in orders:
        assert o["items"] == [{"sku": "9782764626122", "quantity": 1, "unit_price": "31.95"}]
        assert o["store_id"] == "S2"
    # the same call again writes the same bytes
    first = {k: Path(p).read_bytes() for k, p in files.items()}
    write_responses(db, landing, T, seed=seed)
    assert {k: Path(p).read_bytes() for k, p in files.items()} == first
    # contract §2: the ingest takes every line (no quarantine)
    report = load_landing(landing, db)
    assert report.rows_quarantined == 0
    assert report.rows_loaded == len(events) + len(orders)


def test_the_demos_attribution_run_is_10_oclock_the_next_day_in_toronto() -> None:
    assert attribution_t(T) == datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    # across the end of daylight saving time (1 November 2026): 09:00 EDT, then 10:00 EST
    assert attribution_t(datetime(2026, 10, 31, 13, 0, tzinfo=UTC)) == datetime(2026, 11, 1, 15, 0, tzinfo=UTC)
