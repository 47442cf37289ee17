"""D2 / O1 / E6 across daylight saving time: the daily runs fire at 09:00 America/Toronto, so a run's window
opens at the previous day's 09:00 local (less abandon_after) and consecutive windows meet on every day: 23 h
on 2026-03-08, 25 h on 2026-11-01, and every cart is messaged exactly once, by the run whose window holds it."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.dbt.world import World, campaign, h, rows

TORONTO = ZoneInfo("America/Toronto")
CAMPAIGNS = [campaign()]  # bookstore_daily: abandon_after 60 min, max_cart_age 24 h, one email step
ABANDON_AFTER = timedelta(minutes=60)
SECOND = timedelta(seconds=1)


def at_nine(day: date) -> datetime:
    """The daily DAG's fire time on `day` (09:00 on the Toronto wall clock), in UTC (O1)."""
    return datetime.combine(day, time(9), tzinfo=TORONTO).astimezone(UTC)


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


DAYS = [date(2026, 3, 6) + timedelta(days=i) for i in range(5)] + [
    date(2026, 10, 30) + timedelta(days=i) for i in range(5)
]
# each run: its T, and its D2 window (previous fire time - abandon_after, T - abandon_after]
RUNS = [
    {
        "day": day,
        "t": at_nine(day),
        "start": at_nine(day - timedelta(days=1)) - ABANDON_AFTER,
        "end": at_nine(day) - ABANDON_AFTER,
    }
    for day in DAYS
]


def expected_run(at: datetime) -> date:
    holding = [r["day"] for r in RUNS if r["start"] < at <= r["end"]]
    assert len(holding) == 1, (at, holding)
    return holding[0]


def instants() -> dict[datetime, str]:
    """Last-activity instants at every edge of every window, keyed to a label for the cart."""
    found: dict[datetime, str] = {}
    for r in RUNS:
        day = r["day"].isoformat()
        found.setdefault(r["end"], f"{day}-end")  # exactly T - abandon_after: this run (inclusive)
        found.setdefault(r["end"] - SECOND, f"{day}-end-1s")
        found.setdefault(r["start"] + SECOND, f"{day}-start+1s")  # = the previous window's end + 1 s
        found.setdefault(r["start"] + (r["end"] - r["start"]) / 2, f"{day}-middle")
    specials = {
        # the hour a fixed 24 h window missed on 2026-11-01: 08:00-09:00 EDT on Oct 31 (Nov 1's run now)
        z("2026-10-31T08:30:00-04:00"): "oct31-0830-edt",
        z("2026-10-31T09:00:00-04:00"): "oct31-0900-edt",  # the fixed-24h start, exclusive there
        # the fall-back night: 01:30 happens twice on Nov 1
        z("2026-11-01T01:30:00-04:00"): "nov01-0130-edt",
        z("2026-11-01T01:30:00-05:00"): "nov01-0130-est",
        # the hour a fixed 24 h window counted twice on 2026-03-08: 07:00-08:00 EST on Mar 7 (Mar 7's run only)
        z("2026-03-07T07:00:00-05:00"): "mar07-0700-est",  # the fixed-24h start, exclusive there
        z("2026-03-07T07:00:01-05:00"): "mar07-0700+1s-est",
        z("2026-03-07T07:30:00-05:00"): "mar07-0730-est",
        # the spring-forward night: 02:00 EST is 03:00 EDT on Mar 8
        z("2026-03-08T01:59:59-05:00"): "mar08-0159-est",
        z("2026-03-08T03:00:00-04:00"): "mar08-0300-edt",
    }
    for at, label in specials.items():
        found.setdefault(at, label)
    return found


CARTS = {f"cart-{label}": at for at, label in instants().items()}
EXPECTED = {cart_id: expected_run(at) for cart_id, at in CARTS.items()}


def has_column(conn, schema: str, table: str, column: str) -> bool:
    return bool(
        rows(
            conn,
            "select 1 from information_schema.columns where table_schema = %s and table_name = %s and column_name = %s",
            (schema, table, column),
        )
    )


def of_run(conn, table: str, t: datetime) -> list[dict[str, Any]]:
    """A mart's rows decided at T (the marts keep their names through the restructure)."""
    schema, name = table.split(".")
    where = " where decided_at = %s" if has_column(conn, schema, name, "decided_at") else ""
    return rows(conn, f"select * from {table}{where}", (t,) if where else None)


def campaign_windows(conn, t: datetime) -> list[dict[str, Any]]:
    """int_campaigns' rows evaluated at T, in whichever schema holds them (intermediate, or a run schema)."""
    schemas = [
        r["table_schema"]
        for r in rows(conn, "select table_schema from information_schema.tables where table_name = 'int_campaigns'")
    ]
    found = []
    for schema in schemas:
        found += rows(
            conn,
            f'select campaign, evaluated_at, abandon_window_start, window_end from "{schema}".int_campaigns'
            " where evaluated_at = %s and campaign = 'bookstore_daily'",
            (t,),
        )
    return found


@pytest.fixture(scope="module")
def runs(warehouse) -> dict[date, dict[str, Any]]:
    """Each day built in order; after each build the sender writes the run's outbox rows (S2, E6)."""
    with warehouse.connect() as conn:
        w = World(conn, file_name="windows.jsonl")
        w.store("s1")
        for n, (cart_id, at) in enumerate(sorted(CARTS.items(), key=lambda kv: kv[1])):
            customer_id = f"cust-{n:02d}"
            w.customer(customer_id)
            w.cart(f"{cart_id}-e1", cart_id, at, customer_id)

        out: dict[date, dict[str, Any]] = {}
        for r in RUNS:
            warehouse.build(r["t"], CAMPAIGNS)
            eligible = of_run(conn, "marts.eligible_recipients", r["t"])
            excluded = of_run(conn, "marts.recipient_exclusions", r["t"])
            out[r["day"]] = {
                "eligible": eligible,
                "outcomes": {e["cart_id"]: "eligible" for e in eligible}
                | {e["cart_id"]: e["reason"] for e in excluded},
                "windows": campaign_windows(conn, r["t"]),
            }
            for e in eligible:
                w.message(e["campaign"], e["step"], e["customer_id"], e["cart_id"], e["cart_version"], r["t"])
        return out


def test_scenario_covers_both_dst_changes():
    assert {c for c, day in EXPECTED.items() if day == date(2026, 11, 1)} >= {
        "cart-oct31-0830-edt",
        "cart-oct31-0900-edt",
        "cart-nov01-0130-edt",
        "cart-nov01-0130-est",
    }
    assert EXPECTED["cart-mar07-0730-est"] == date(2026, 3, 7)
    assert EXPECTED["cart-mar08-0300-edt"] == date(2026, 3, 8)


def test_d2_e6_every_cart_is_messaged_once_by_the_run_whose_window_holds_it(runs):
    messaged: dict[str, list[date]] = defaultdict(list)
    for day, run in runs.items():
        for e in run["eligible"]:
            messaged[e["cart_id"]].append(day)
    assert dict(messaged) == {cart_id: [day] for cart_id, day in EXPECTED.items()}


def test_d2_each_run_sees_exactly_the_carts_of_its_window(runs):
    # no cart of a neighbouring window is even abandoned at T (not merely excluded as already_sent, E6)
    for day, run in runs.items():
        expected = {cart_id: "eligible" for cart_id, d in EXPECTED.items() if d == day}
        assert run["outcomes"] == expected, day


def test_o1_window_lengths_follow_the_toronto_wall_clock(runs):
    for r in RUNS:
        assert runs[r["day"]]["windows"], f"no int_campaigns rows evaluated at {r['t']}"
    lengths = {
        day: {row["window_end"] - row["abandon_window_start"] for row in run["windows"]} for day, run in runs.items()
    }
    assert lengths[date(2026, 11, 1)] == {h(25)}  # fall back: Oct 31 09:00 EDT -> Nov 1 09:00 EST
    assert lengths[date(2026, 3, 8)] == {h(23)}  # spring forward: Mar 7 09:00 EST -> Mar 8 09:00 EDT
    assert all(v == {h(24)} for day, v in lengths.items() if day not in (date(2026, 11, 1), date(2026, 3, 8)))
    # the windows meet: each opens at the previous day's 09:00 local - abandon_after, closes at T - abandon_after
    for r in RUNS:
        bounds = {(row["abandon_window_start"], row["window_end"]) for row in runs[r["day"]]["windows"]}
        assert bounds == {(r["start"], r["end"])}, r["day"]
