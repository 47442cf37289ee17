"""The decision ledger, `marts.decision_history` (contract §4, O2, E9): every run's decisions stay readable
after later runs, a rerun replaces only its own partition, and "why did customer X get nothing on D?" is one
query over the history, without a replay.

Two days, each with a daily run at 09:00 and an hourly run an hour later (an hourly campaign), the sender
simulated between runs (outbox rows for what was decided, as `send_messages` records them); then a replay
of the first daily run.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dbt.world import T, World, campaign, d, h, rows

DAILY = campaign("daily_one")
HOURLY = campaign("hourly_one", cadence="hourly", steps=[{"channels": ["email"], "delay_minutes": 120}])
CAMPAIGNS = [DAILY, HOURLY]
RUNS = [(T, "daily"), (T + h(1), "followups"), (T + d(1), "daily"), (T + d(1) + h(1), "followups")]

# the README's "why not" query, as an analyst runs it for customer X on a day D (America/Toronto)
WHY_NOT = """
select h.decided_at, h.scope, h.campaign, h.step, h.cart_id, h.reason, r.rule, r.description
from marts.decision_history as h
left join marts.exclusion_reasons as r using (reason)
where h.customer_id = %(customer)s
  and (h.decided_at at time zone 'America/Toronto')::date = %(day)s
order by h.decided_at, h.campaign, h.step
"""


def partition(conn, t, scope) -> list[tuple[Any, ...]]:
    return sorted(
        (
            tuple(r.values())
            for r in rows(
                conn,
                "select campaign, step, channel, customer_id, cart_id, cart_version, reason, coupon_percent, "
                "idempotency_key, message_id, outbox_status from marts.decision_history "
                "where decided_at = %s and scope = %s",
                (t, scope),
            )
        ),
        key=lambda r: tuple(str(v) for v in r),
    )


def send(w: World, conn, t, scope) -> None:
    """The sender: one outbox row per pending decision of the run, sent."""
    for r in rows(
        conn,
        "select * from marts.decided_messages where decided_at = %s and scope = %s and outbox_status = 'pending'",
        (t, scope),
    ):
        w.message(r["campaign"], r["step"], r["customer_id"], r["cart_id"], r["cart_version"], t)


@pytest.fixture(scope="module")
def history(warehouse) -> dict[str, Any]:
    with warehouse.connect() as conn:
        w = World(conn)
        w.store("s1")
        w.product("sku-1")
        w.customer("ann")  # day 1: both campaigns message her (frequency cap 7 days: the hourly is capped)
        w.cart("ann-e1", "ann-cart", T - h(5), "ann")
        w.customer("ben", consent=False)  # no consent: excluded every run
        w.cart("ben-e1", "ben-cart", T - h(5), "ben")
        w.customer("lib", customer_type="institution")
        w.cart("lib-e1", "lib-cart", T - h(5), "lib")
        w.customer("cat")  # day 2's cart
        w.cart("cat-e1", "cat-cart", T + d(1) - h(6), "cat")

        outcomes: dict[tuple[Any, str], list[tuple[Any, ...]]] = {}
        for t, scope in RUNS:
            warehouse.build(t, CAMPAIGNS, scope=scope)
            outcomes[(t, scope)] = partition(conn, t, scope)
            send(w, conn, t, scope)
        before = {run: partition(conn, *run) for run in RUNS}
        warehouse.build(T, CAMPAIGNS, scope="daily")  # replay of the first daily run (O2)
        after = {run: partition(conn, *run) for run in RUNS}
        latest = rows(conn, "select scope, decided_at from marts.recipient_exclusions")
        why_ben = rows(conn, WHY_NOT, {"customer": "ben", "day": T.date()})
        why_ben_later = rows(conn, WHY_NOT, {"customer": "ben", "day": (T + d(1)).date()})
        why_ann = rows(conn, WHY_NOT, {"customer": "ann", "day": T.date()})
    return {
        "outcomes": outcomes,
        "before": before,
        "after": after,
        "latest": latest,
        "ben": why_ben,
        "ben_later": why_ben_later,
        "ann": why_ann,
    }


def reasons(partition_rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], str | None]:
    return {(r[0], r[3]): r[6] for r in partition_rows}


def test_o2_every_run_keeps_its_partition(history):
    o = history["outcomes"]
    assert reasons(o[RUNS[0]]) == {
        ("daily_one", "ann"): None,
        ("daily_one", "ben"): "no_consent",
        ("daily_one", "lib"): "institutional",
    }
    # the hourly campaign's first step at 10:00: ann was messaged at 09:00 (E5)
    assert reasons(o[RUNS[1]]) == {
        ("hourly_one", "ann"): "frequency_capped",
        ("hourly_one", "ben"): "no_consent",
        ("hourly_one", "lib"): "institutional",
    }
    assert reasons(o[RUNS[2]]) == {("daily_one", "cat"): None}
    assert reasons(o[RUNS[3]]) == {("hourly_one", "cat"): "frequency_capped"}
    # every run is still in the history after the later ones, as it was decided
    assert history["before"] == o


def test_o2_a_replay_rewrites_its_own_partition_only_with_the_same_rows(history):
    assert history["after"] == history["before"]
    # the contract's latest-run views follow the last build: the replayed daily run of day 1
    assert {(r["scope"], r["decided_at"]) for r in history["latest"]} == {("daily", T)}


def test_e9_why_not_customer_x_on_day_d_is_one_query(history):
    assert [(r["scope"], r["campaign"], r["reason"], r["rule"]) for r in history["ben"]] == [
        ("daily", "daily_one", "no_consent", "E3"),
        ("followups", "hourly_one", "no_consent", "E3"),
    ]
    assert history["ben_later"] == []  # no abandoned cart of his on day 2: no decision
    ann = history["ann"]
    assert [(r["scope"], r["campaign"], r["reason"], r["rule"]) for r in ann] == [
        ("daily", "daily_one", None, None),
        ("followups", "hourly_one", "frequency_capped", "E5"),
    ]


def test_the_ledger_keys_are_the_outbox_keys(history):
    """The idempotency key and message id come out of dbt, from the warehouse's one definition."""
    first = history["outcomes"][RUNS[0]]
    ann = next(r for r in first if r[3] == "ann")
    assert ann[8] == "daily_one:1:ann-cart:ann-e1"
    assert ann[10] == "pending"
