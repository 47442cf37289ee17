"""The decision rules of spec/PRODUCT.md (D1–D5, E1–E9, C1–C3, O2) against the real dbt project.

Two worlds, each one database built a few times (a dbt build takes seconds): every rule has its own
customers and carts (ids start with the rule id), so the scenarios do not touch each other.

- `rules`: four campaigns at T — `main` (the bookstore defaults), `test_mode` (audience test_group, E7),
  `holdout_half` (holdout 50 %, E8) and `weekly` (a 7-day window, as the backfill). Built at T, then,
  after the sender's outbox rows for T and data that arrives later, at T + 1 day and at T again (O2).
- `coupons`: a campaign with the value tiers and an SMS one; pool codes allocated by two runs at once,
  then a rerun (C1–C3).

Every build is a full `dbt build`: the project's data tests (the singular rule tests included) pass on
each world, or the build raises.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.dbt.conftest import EVERYTHING, fresh_warehouse
from tests.dbt.world import T, World, campaign, d, h, outcome, rows, snapshot

T2 = T + d(1)
SECOND = timedelta(seconds=1)

MAIN = campaign("main")
TEST_MODE = campaign("test_mode", audience="test_group")
HOLDOUT = campaign("holdout_half", holdout_percent=50)
WEEKLY = campaign("weekly", max_cart_age_hours=7 * 24)
RULES_CAMPAIGNS = [MAIN, TEST_MODE, HOLDOUT, WEEKLY]

E8_CUSTOMERS = [f"e8-{i:02d}" for i in range(20)]


# E9: the documented order of the exclusion reasons (the first that applies wins)
def _e9_order() -> list[str]:
    """E9's reasons in their order: the exclusion_reasons seed, the one list (the model picks from it)."""
    import csv

    from cart_recovery import DBT_PROJECT_DIR

    with (DBT_PROJECT_DIR / "seeds" / "exclusion_reasons.csv").open(encoding="utf-8") as f:
        return [r["reason"] for r in sorted(csv.DictReader(f), key=lambda r: int(r["priority"]))]


E9_ORDER = _e9_order()
# D2: last activity relative to T, every 30 minutes around the two windows, plus the exact edges
D2_OFFSETS = sorted(
    {timedelta(minutes=30 * k) for k in range(-54, 50)}
    | {
        -h(25) - SECOND,
        -h(25),
        -h(25) + SECOND,
        -h(1),
        -h(1) + SECOND,
        h(23),
        h(23) + SECOND,
    }
)


def _d2_cart(offset: timedelta) -> str:
    return f"d2-{int(offset.total_seconds()):+d}s"


# ---------------------------------------------------------------------------------------------------
# the rules world
# ---------------------------------------------------------------------------------------------------
def _write_rules_world(w: World) -> None:
    # D1: the newer update arrives first and twice, the older one later (late, duplicated, out of order)
    w.customer("d1-late")
    newer = [("A", 1, 20.0), ("B", 1, 20.0)]
    w.cart("d1-late-new", "d1-late", T - h(3), "d1-late", newer, file_name="cart_events_1")
    w.cart("d1-late-new", "d1-late", T - h(3), "d1-late", newer, file_name="cart_events_2")
    w.cart("d1-late-old", "d1-late", T - h(5), "d1-late", [("A", 1, 20.0)], file_name="cart_events_2")
    # D1: two updates at the same instant: the greater event id wins
    w.customer("d1-tie")
    w.cart("d1-tie-b", "d1-tie", T - h(4), "d1-tie", [("A", 1, 20.0), ("B", 1, 20.0), ("C", 1, 20.0)])
    w.cart("d1-tie-a", "d1-tie", T - h(4), "d1-tie", [("A", 1, 20.0)])
    # D1: deletions
    w.customer("d1-del")
    w.cart("d1-del-e1", "d1-del", T - h(5), "d1-del")
    w.cart("d1-del-e2", "d1-del", T - h(4), "d1-del", event_type="cart_deleted")
    w.customer("d1-del-late")
    w.cart(
        "d1-del-late-e1", "d1-del-late", T - h(2), "d1-del-late", event_type="cart_deleted", file_name="cart_events_1"
    )
    w.cart("d1-del-late-e2", "d1-del-late", T - h(5), "d1-del-late", file_name="cart_events_2")
    w.customer("d1-readd")
    w.cart("d1-readd-e1", "d1-readd", T - h(6), "d1-readd")
    w.cart("d1-readd-e2", "d1-readd", T - h(5), "d1-readd", event_type="cart_deleted")
    w.cart("d1-readd-v3", "d1-readd", T - h(4), "d1-readd", [("C", 1, 20.0)])
    w.customer("d1-del-after-t")
    w.cart("d1-del-after-t-v1", "d1-del-after-t", T - h(5), "d1-del-after-t")
    w.cart("d1-del-after-t-e1", "d1-del-after-t", T + h(1), "d1-del-after-t", event_type="cart_deleted")

    # D2: anonymous carts (no customer: counted, never targeted), one per instant
    for offset in D2_OFFSETS:
        w.cart(f"{_d2_cart(offset)}-e1", _d2_cart(offset), T + offset, None)

    # D3
    w.customer("d3-conv")
    w.cart("d3-conv-e1", "d3-conv", T - h(5), "d3-conv", [("A", 1, 20.0)])
    w.order("d3-conv-o", "d3-conv", T - h(3), ["Z"])
    w.customer("d3-conv-by-cart")
    w.cart("d3-conv-by-cart-e1", "d3-conv-by-cart", T - h(5), "d3-conv-by-cart", [("A", 1, 20.0)])
    w.order("d3-conv-by-cart-o", None, T - h(3), ["Z"], cart_id="d3-conv-by-cart")
    w.customer("d3-order-after-t")
    w.cart("d3-order-after-t-e1", "d3-order-after-t", T - h(5), "d3-order-after-t", [("A", 1, 20.0)])
    w.order("d3-order-after-t-o", "d3-order-after-t", T + h(1), ["A"])
    w.customer("d3-order-before")
    w.cart("d3-order-before-e1", "d3-order-before", T - h(5), "d3-order-before", [("A", 1, 20.0)])
    w.order("d3-order-before-o", "d3-order-before", T - h(8), ["Z"])
    w.customer("d3-partial")
    w.cart(
        "d3-partial-e1",
        "d3-partial",
        T - h(4),
        "d3-partial",
        [("A", 1, 20.0, T - h(10)), ("B", 1, 20.0, T - h(10)), ("C", 1, 7.5, T - h(4))],
    )
    w.order("d3-partial-o1", "d3-partial", T - h(8), ["A"])  # bought after adding A: A goes
    w.order("d3-partial-o2", "d3-partial", T - h(6), ["C"])  # bought before adding C: C stays
    w.customer("d3-all-bought")
    w.cart("d3-all-bought-e1", "d3-all-bought", T - h(4), "d3-all-bought", [("A", 1, 20.0, T - h(10))])
    w.order("d3-all-bought-o", "d3-all-bought", T - h(8), ["A"])
    w.customer("d3-cancelled")
    w.cart("d3-cancelled-e1", "d3-cancelled", T - h(5), "d3-cancelled", [("A", 1, 20.0)])
    w.order("d3-cancelled-o", "d3-cancelled", T - h(3), ["A"], status="cancelled")
    w.customer("d3-completed-then-cancelled")
    w.cart(
        "d3-completed-then-cancelled-e1",
        "d3-completed-then-cancelled",
        T - h(5),
        "d3-completed-then-cancelled",
        [("A", 1, 20.0)],
    )
    w.order("d3-ctc-o", "d3-completed-then-cancelled", T - h(3), ["A"], file_name="orders_1")
    w.order("d3-ctc-o", "d3-completed-then-cancelled", T - h(3), ["A"], status="cancelled", file_name="orders_2")
    w.customer("d3-cancelled-item")
    w.cart("d3-cancelled-item-e1", "d3-cancelled-item", T - h(4), "d3-cancelled-item", [("A", 1, 20.0, T - h(10))])
    w.order("d3-cancelled-item-o", "d3-cancelled-item", T - h(8), ["A"], status="cancelled")

    # D4
    w.cart("d4-anon-e1", "d4-anon", T - h(5), None)
    w.cart("d4-unknown-e1", "d4-unknown", T - h(5), "d4-ghost")
    w.customer("d4-no-email", email=None, consent=False)
    w.consent("d4-no-email")
    w.cart("d4-no-email-e1", "d4-no-email", T - h(5), "d4-no-email")

    # D5
    w.customer("d5")
    w.cart("d5-old-e1", "d5-old", T - h(10), "d5")
    w.cart("d5-mid-e1", "d5-mid", T - h(6), "d5")
    w.cart("d5-new-e1", "d5-new", T - h(2), "d5")
    w.customer("d5-deleted")
    w.cart("d5-deleted-old-e1", "d5-deleted-old", T - h(10), "d5-deleted")
    w.cart("d5-deleted-new-e1", "d5-deleted-new", T - h(3), "d5-deleted")
    w.cart("d5-deleted-new-e2", "d5-deleted-new", T - h(2), "d5-deleted", event_type="cart_deleted")
    w.customer("d5-tie")
    w.cart("d5-tie-a-e1", "d5-tie-a", T - h(3), "d5-tie")
    w.cart("d5-tie-b-e1", "d5-tie-b", T - h(3), "d5-tie")

    # E1
    w.customer("e1-library", customer_type="institution", institution_kind="library", consent=False)
    w.consent("e1-library")
    w.cart("e1-library-e1", "e1-library", T - h(5), "e1-library")
    w.customer("e1-school-no-email", email=None, customer_type="institution", institution_kind="school", consent=False)
    w.cart("e1-school-no-email-e1", "e1-school-no-email", T - h(5), "e1-school-no-email")
    w.customer("e1-consumer")
    w.cart("e1-consumer-e1", "e1-consumer", T - h(5), "e1-consumer")

    # E2
    for cid, email in [
        ("e2-no-at", "anne.mail.example"),
        ("e2-no-dot", "anne@localhost"),
        ("e2-space", "anne marie@example.org"),
        ("e2-two-ats", "anne@b@example.org"),
        ("e2-trimmed", "  Anne.Case@Example.Org "),
        ("e2-blank", "   "),
    ]:
        w.customer(cid, email=email)
        w.cart(f"{cid}-e1", cid, T - h(5), cid)

    # E3: implied consent expires 730 days after it was recorded
    for cid, age in [("e3-implied-729", 729), ("e3-implied-730", 730), ("e3-implied-731", 731)]:
        w.customer(cid, consent=False)
        w.consent(cid, basis="implied", recorded_at=T - d(age))
        w.cart(f"{cid}-e1", cid, T - h(5), cid)
    w.customer("e3-express-1000", consent=False)
    w.consent("e3-express-1000", basis="express", recorded_at=T - d(1000))
    w.cart("e3-express-1000-e1", "e3-express-1000", T - h(5), "e3-express-1000")
    w.customer("e3-null-basis", consent=False)
    w.consent("e3-null-basis", basis=None, recorded_at=T - d(1000))
    w.cart("e3-null-basis-e1", "e3-null-basis", T - h(5), "e3-null-basis")
    # E3: the latest record wins
    w.customer("e3-withdrawn", consent=False)
    w.consent("e3-withdrawn", recorded_at=T - d(100))
    w.consent("e3-withdrawn", status="withdrawn", recorded_at=T - d(10))
    w.customer("e3-regranted", consent=False)
    w.consent("e3-regranted", status="withdrawn", recorded_at=T - d(100))
    w.consent("e3-regranted", recorded_at=T - d(10))
    w.customer("e3-withdrawn-after-t", consent=False)
    w.consent("e3-withdrawn-after-t", recorded_at=T - d(100))
    w.consent("e3-withdrawn-after-t", status="withdrawn", recorded_at=T + h(1))
    w.customer("e3-granted-after-t", consent=False)
    w.consent("e3-granted-after-t", recorded_at=T + h(1))
    w.customer("e3-none", consent=False)
    w.customer("e3-sms-only", consent=False)
    w.consent("e3-sms-only", channel="sms")
    w.customer("e3-implied-renewed", consent=False)
    w.consent("e3-implied-renewed", basis="implied", recorded_at=T - d(800))
    w.consent("e3-implied-renewed", basis="express", recorded_at=T - d(5))
    for cid in (
        "e3-withdrawn",
        "e3-regranted",
        "e3-withdrawn-after-t",
        "e3-granted-after-t",
        "e3-none",
        "e3-sms-only",
        "e3-implied-renewed",
    ):
        w.cart(f"{cid}-e1", cid, T - h(5), cid)

    # E4
    for cid in (
        "e4-bounce",
        "e4-soft-bounce",
        "e4-spam",
        "e4-unsub",
        "e4-group-unsub",
        "e4-dropped-bounce",
        "e4-own",
        "e4-own-sms",
        "e4-after-t",
        "e4-case",
    ):
        w.customer(cid)
        w.cart(f"{cid}-e1", cid, T - h(5), cid)
    w.provider_event("bounce", "e4-bounce@example.org", T - d(2), bounce_type="bounce")
    w.provider_event("bounce", "e4-soft-bounce@example.org", T - d(2), bounce_type="blocked")
    w.provider_event("spamreport", "e4-spam@example.org", T - d(2))
    w.provider_event("unsubscribe", "e4-unsub@example.org", T - d(2))
    w.provider_event("group_unsubscribe", "e4-group-unsub@example.org", T - d(2))
    w.provider_event("dropped", "e4-dropped-bounce@example.org", T - d(2), reason="Bounced Address")
    w.unsubscribe("e4-own", T - timedelta(minutes=1))  # takes effect at the next run
    w.unsubscribe("e4-own-sms", T - d(1), channel="sms")
    w.provider_event("unsubscribe", "e4-after-t@example.org", T + h(1))
    w.provider_event("spamreport", "E4-Case@Example.Org", T - d(2))

    # E5: the customer's messages of other carts (any campaign, any step)
    e5 = [
        ("e5-3d", T - d(3), "sent", "main", 1),
        ("e5-7d-inside", T - d(7) + h(1), "sent", "main", 1),
        ("e5-7d-outside", T - d(7) - h(1), "sent", "main", 1),
        ("e5-pending", T - d(1), "pending", "main", 1),
        ("e5-unknown", T - d(1), "unknown", "main", 1),
        ("e5-failed", T - d(1), "failed", "main", 1),
        ("e5-dry-run", T - d(1), "dry_run", "main", 1),
        ("e5-skipped", T - d(1), "skipped", "main", 1),
        ("e5-other-campaign", T - d(1), "sent", "multi_touch", 3),
    ]
    for cid, decided, status, camp, step in e5:
        w.customer(cid)
        w.message(camp, step, cid, f"{cid}-older-cart", f"{cid}-older-v1", decided, status=status)
        w.cart(f"{cid}-e1", cid, T - h(5), cid)

    # E6: this cart version already got step 1 of `main` from an earlier run (an hourly rerun)
    w.customer("e6-sent")
    w.cart("e6-sent-v1", "e6-sent", T - h(5), "e6-sent")
    w.message("main", 1, "e6-sent", "e6-sent", "e6-sent-v1", T - h(2))
    w.customer("e6-new-version")
    w.cart("e6-new-version-v1", "e6-new-version", T - h(22), "e6-new-version")
    w.message("main", 1, "e6-new-version", "e6-new-version", "e6-new-version-v1", T - h(20))
    w.cart("e6-new-version-v2", "e6-new-version", T - h(4), "e6-new-version", [("A", 1, 20.0), ("B", 1, 20.0)])
    w.customer("e6-dry-run")
    w.cart("e6-dry-run-v1", "e6-dry-run", T - h(5), "e6-dry-run")
    w.message("main", 1, "e6-dry-run", "e6-dry-run", "e6-dry-run-v1", T - h(2), status="dry_run")

    # E7
    w.customer("e7-tester")
    w.test_group("e7-tester")
    w.cart("e7-tester-e1", "e7-tester", T - h(5), "e7-tester")
    w.customer("e7-tester-no-consent", consent=False)
    w.test_group("e7-tester-no-consent")
    w.cart("e7-tester-no-consent-e1", "e7-tester-no-consent", T - h(5), "e7-tester-no-consent")

    # E8
    for cid in E8_CUSTOMERS:
        w.customer(cid)
        w.cart(f"{cid}-e1", cid, T - h(5), cid)

    # E9: several reasons at once; the first in the documented order wins
    w.customer("e9-inst-nocons-supp", customer_type="institution", institution_kind="university", consent=False)
    w.unsubscribe("e9-inst-nocons-supp", T - d(1))
    w.cart("e9-inst-nocons-supp-e1", "e9-inst-nocons-supp", T - h(5), "e9-inst-nocons-supp")
    w.customer("e9-invalid-nocons", email="nope", consent=False)
    w.cart("e9-invalid-nocons-e1", "e9-invalid-nocons", T - h(5), "e9-invalid-nocons")
    w.customer("e9-nocons-supp", consent=False)
    w.unsubscribe("e9-nocons-supp", T - d(1))
    w.cart("e9-nocons-supp-e1", "e9-nocons-supp", T - h(5), "e9-nocons-supp")
    w.customer("e9-supp-capped")
    w.unsubscribe("e9-supp-capped", T - d(1))
    w.message("main", 1, "e9-supp-capped", "e9-older", "e9-older-v1", T - d(2))
    w.cart("e9-supp-capped-e1", "e9-supp-capped", T - h(5), "e9-supp-capped")
    w.customer("e9-superseded-invalid", email="broken")
    w.cart("e9-superseded-invalid-old-e1", "e9-superseded-invalid-old", T - h(8), "e9-superseded-invalid")
    w.cart("e9-superseded-invalid-new-e1", "e9-superseded-invalid-new", T - h(3), "e9-superseded-invalid")


def _write_later_data(w: World, at_t: dict[str, Any]) -> None:
    """What happens after T: the sender's outbox rows for T's decisions, then new data (O2)."""
    for (camp, _), row in at_t["eligible"].items():
        w.message(camp, 1, row["customer_id"], row["cart_id"], row["cart_version"], T, channel=row["channel"])
    for (camp, _), row in at_t["excluded"].items():
        if row["reason"] == "holdout":  # E8: the sender records holdouts as skipped
            w.message(camp, 1, row["customer_id"], row["cart_id"], row["cart_version"], T, status="skipped")
    w.cart("d1-late-after-t", "d1-late", T + h(2), "d1-late", [("A", 1, 20.0), ("B", 1, 20.0), ("C", 1, 20.0)])
    w.cart("d5-new-e2", "d5-new", T + h(3), "d5", event_type="cart_deleted")
    w.order("e8-00-o", "e8-00", T + h(4), ["sku-1"])
    w.order("d3-cancelled-late-o", "d3-cancelled", T + h(4), ["A"])
    w.consent("e2-trimmed", status="withdrawn", recorded_at=T + h(1))
    w.consent("e3-none", recorded_at=T + h(1))
    w.provider_event("unsubscribe", "e3-express-1000@example.org", T + h(1))
    w.unsubscribe("e3-regranted", T + h(1))
    w.customer(
        "e3-null-basis", customer_type="institution", institution_kind="other", updated_at=T + h(1), consent=False
    )
    w.customer("e1-library", customer_type="consumer", updated_at=T + h(1), consent=False)
    w.message("hourly_other", 1, "e4-soft-bounce", "e4-elsewhere", "e4-elsewhere-v1", T + h(12))
    w.cart("new-after-t-e1", "new-after-t", T + h(2), None)


@pytest.fixture(scope="module")
def rules(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Snapshots of the decisions at T, at T + 1 day, and at T replayed after the later data."""
    with fresh_warehouse(admin_url, tmp_path_factory.mktemp("dbt-rules"), EVERYTHING) as wh:
        with psycopg.connect(wh.url, autocommit=True) as conn:
            w = World(conn)
            _write_rules_world(w)
            wh.build(T, RULES_CAMPAIGNS)
            at_t = snapshot(conn)
            _write_later_data(w, at_t)
            wh.build(T2, RULES_CAMPAIGNS)
            at_t2 = snapshot(conn)
            wh.build(T, RULES_CAMPAIGNS)
            replayed = snapshot(conn)
        yield {"t": at_t, "t2": at_t2, "replayed": replayed}


def main_outcome(rules: dict[str, Any], cart_id: str, run: str = "t") -> str | None:
    return outcome(rules[run], "main", cart_id)


# ---- D ---------------------------------------------------------------------------------------------
def test_d1_latest_event_wins_late_and_duplicated_events(rules):
    abandoned = rules["t"]["abandoned"]
    late = abandoned[("main", "d1-late")]
    assert late["cart_version"] == "d1-late-new"
    assert late["item_count"] == 2, "the duplicated newer event counts once, the late older one loses"
    assert late["cart_value"] == Decimal("40.00")
    assert late["last_activity_at"] == T - h(3)
    tie = abandoned[("main", "d1-tie")]
    assert (tie["cart_version"], tie["item_count"]) == ("d1-tie-b", 3), "same instant: the greater event id wins"


def test_d1_deleted_cart_ends(rules):
    abandoned = rules["t"]["abandoned"]
    for camp in ("main", "weekly"):
        assert (camp, "d1-del") not in abandoned
        assert (camp, "d1-del-late") not in abandoned, "a deletion that arrived before the update still ends it"
    readded = abandoned[("main", "d1-readd")]
    assert (readded["cart_version"], readded["item_count"]) == ("d1-readd-v3", 1), "an update after a deletion"
    assert main_outcome(rules, "d1-del-after-t") == "eligible", "a deletion after T is not seen at T"
    assert ("weekly", "d1-del-after-t") not in rules["t2"]["abandoned"], "...and ends the cart at the next run"


def test_d2_window_edges(rules):
    at_t, at_t2 = rules["t"]["abandoned"], rules["t2"]["abandoned"]
    # window at T: (T - 25 h, T - 1 h]; at T2 = T + 1 day: (T - 1 h, T + 23 h]
    assert ("main", _d2_cart(-h(25))) not in at_t, "exactly at the window start: the previous run's"
    assert ("main", _d2_cart(-h(25) + SECOND)) in at_t
    assert ("main", _d2_cart(-h(1))) in at_t, "exactly at the window end: included"
    assert ("main", _d2_cart(-h(1) + SECOND)) not in at_t, "idle for less than abandon_after"
    assert ("main", _d2_cart(-h(1))) not in at_t2
    assert ("main", _d2_cart(-h(1) + SECOND)) in at_t2
    assert ("main", _d2_cart(h(23))) in at_t2
    assert ("main", _d2_cart(h(23) + SECOND)) not in at_t2
    # consecutive daily runs meet: every instant of (T - 25 h, T + 23 h] is in exactly one window
    for offset in D2_OFFSETS:
        cart = _d2_cart(offset)
        runs = [run for run, abandoned in (("T", at_t), ("T2", at_t2)) if ("main", cart) in abandoned]
        expected = 1 if -h(25) < offset <= h(23) else 0
        assert len(runs) == expected, (offset, runs)
    row = at_t[("main", _d2_cart(-h(1)))]
    assert (row["is_targetable"], row["customer_id"], row["evaluated_at"]) == (False, None, T)


def test_d3_order_after_last_activity_converts(rules):
    abandoned = rules["t"]["abandoned"]
    assert ("main", "d3-conv") not in abandoned, "the customer ordered after the cart's last activity"
    assert ("main", "d3-conv-by-cart") not in abandoned, "an order for the cart itself converts it"
    assert ("main", "d3-order-after-t") in abandoned, "an order after T is not seen at T"
    assert ("main", "d3-order-before") in abandoned, "an order before the last activity does not convert"


def test_d3_order_before_last_update_removes_only_bought_items(rules):
    abandoned = rules["t"]["abandoned"]
    partial = abandoned[("main", "d3-partial")]
    assert partial["item_count"] == 2, "A was bought after it was added; C was added after it was bought"
    assert partial["cart_value"] == Decimal("27.50")
    assert main_outcome(rules, "d3-partial") == "eligible"
    assert ("main", "d3-all-bought") not in abandoned, "nothing left: converted"


def test_d3_cancelled_order_does_not_convert(rules):
    abandoned = rules["t"]["abandoned"]
    assert ("main", "d3-cancelled") in abandoned
    assert ("main", "d3-completed-then-cancelled") in abandoned, "the order's latest status is cancelled"
    assert abandoned[("main", "d3-cancelled-item")]["item_count"] == 1, "a cancelled purchase removes nothing"


def test_d4_anonymous_counted_not_targeted(rules):
    at_t = rules["t"]
    for cart in ("d4-anon", "d4-unknown", "d4-no-email"):
        assert at_t["abandoned"][("main", cart)]["is_targetable"] is False, cart
        assert ("main", cart) not in at_t["eligible"], cart
    assert main_outcome(rules, "d4-anon") == "anonymous"
    assert main_outcome(rules, "d4-unknown") == "anonymous", "a customer id the customer file does not know"
    assert main_outcome(rules, "d4-no-email") == "no_email"
    assert at_t["abandoned"][("main", "e1-consumer")]["is_targetable"] is True
    anonymous = sorted(k for k, row in at_t["excluded"].items() if k[0] == "main" and row["reason"] == "anonymous")
    no_customer = sorted(
        k for k in at_t["abandoned"] if k[0] == "main" and k[1].startswith(("d2-", "d4-anon", "d4-unknown"))
    )
    assert anonymous == no_customer, "every cart without a known customer is counted, as anonymous"


def test_d5_newest_cart_only(rules):
    assert main_outcome(rules, "d5-new") == "eligible"
    assert main_outcome(rules, "d5-mid") == "superseded_by_newer_cart"
    assert main_outcome(rules, "d5-old") == "superseded_by_newer_cart"
    assert main_outcome(rules, "d5-deleted-old") == "eligible", "the newest abandoned cart, not the newest cart"
    assert main_outcome(rules, "d5-tie-b") == "eligible", "same last activity: the greater cart id"
    assert main_outcome(rules, "d5-tie-a") == "superseded_by_newer_cart"
    for decisions in (rules["t"], rules["t2"]):
        per_customer: dict[tuple[str, str], int] = {}
        for (camp, _), row in decisions["eligible"].items():
            per_customer[(camp, row["customer_id"])] = per_customer.get((camp, row["customer_id"]), 0) + 1
        assert max(per_customer.values()) == 1


# ---- E ---------------------------------------------------------------------------------------------
def test_e1_institutions_excluded(rules):
    assert main_outcome(rules, "e1-library") == "institutional"
    assert main_outcome(rules, "e1-school-no-email") == "institutional", "institutional comes before no_email"
    assert main_outcome(rules, "e1-consumer") == "eligible"
    eligible_customers = {row["customer_id"] for row in rules["t"]["eligible"].values()}
    assert not eligible_customers & {"e1-library", "e1-school-no-email"}


def test_e2_invalid_email(rules):
    for cart in ("e2-no-at", "e2-no-dot", "e2-space", "e2-two-ats"):
        assert main_outcome(rules, cart) == "invalid_email", cart
    assert main_outcome(rules, "e2-blank") == "no_email"
    assert main_outcome(rules, "e2-trimmed") == "eligible", "trimmed and lower-cased, the address is valid"


def test_e3_implied_consent_730_days_plus_minus_one(rules):
    assert main_outcome(rules, "e3-implied-729") == "eligible"
    assert main_outcome(rules, "e3-implied-730") == "consent_expired", "expires 730 days after it was recorded"
    assert main_outcome(rules, "e3-implied-731") == "consent_expired"
    assert main_outcome(rules, "e3-express-1000") == "eligible", "express consent does not expire"
    assert main_outcome(rules, "e3-null-basis") == "eligible", "no basis: express"
    assert main_outcome(rules, "e3-implied-renewed") == "eligible", "a newer express consent replaces it"


def test_e3_latest_consent_wins_withdrawn(rules):
    assert main_outcome(rules, "e3-withdrawn") == "no_consent"
    assert main_outcome(rules, "e3-regranted") == "eligible"
    assert main_outcome(rules, "e3-withdrawn-after-t") == "eligible", "a withdrawal after T is not seen at T"
    assert main_outcome(rules, "e3-granted-after-t") == "no_consent", "a consent after T is not seen at T"
    assert main_outcome(rules, "e3-none") == "no_consent"
    assert main_outcome(rules, "e3-sms-only") == "no_consent", "consent is per channel"


def test_e4_suppressed_by_bounce_spam_unsubscribe_and_own_table(rules):
    for cart in ("e4-bounce", "e4-spam", "e4-unsub", "e4-group-unsub", "e4-dropped-bounce", "e4-own", "e4-case"):
        assert main_outcome(rules, cart) == "suppressed", cart
    assert main_outcome(rules, "e4-soft-bounce") == "eligible", "a soft bounce (blocked) does not suppress"
    assert main_outcome(rules, "e4-own-sms") == "eligible", "an SMS unsubscribe leaves email alone"
    assert main_outcome(rules, "e4-after-t") == "eligible", "an unsubscribe after T counts from the next run"
    assert outcome(rules["t2"], "weekly", "e4-after-t") == "suppressed"


def test_e5_frequency_cap(rules):
    for cart in ("e5-3d", "e5-7d-inside", "e5-pending", "e5-unknown", "e5-other-campaign"):
        assert main_outcome(rules, cart) == "frequency_capped", cart
    for cart in ("e5-7d-outside", "e5-failed", "e5-dry-run", "e5-skipped"):
        assert main_outcome(rules, cart) == "eligible", cart


def test_e6_already_sent_on_rerun(rules):
    assert main_outcome(rules, "e6-sent") == "already_sent", "already_sent comes before frequency_capped"
    assert main_outcome(rules, "e6-new-version") == "frequency_capped", "a new cart version is not already sent"
    assert main_outcome(rules, "e6-dry-run") == "eligible", "a dry run sent nothing"
    # the weekly window still holds T's carts at T + 1 day: the versions messaged at T are not sent again —
    # already_sent, unless a reason that comes before it in the E9 order now applies (consent, suppression)
    before_already_sent = set(E9_ORDER[: E9_ORDER.index("already_sent")])
    again = [
        key
        for key, row in rules["t"]["eligible"].items()
        if key[0] == "weekly" and rules["t2"]["abandoned"].get(key, {}).get("cart_version") == row["cart_version"]
    ]
    assert len(again) > 20
    reasons = {rules["t2"]["excluded"][key]["reason"] for key in again}
    assert "already_sent" in reasons
    assert reasons <= before_already_sent | {"already_sent"}, reasons
    # ...and a cart updated after T (new version) is capped, not already sent
    assert outcome(rules["t2"], "main", "d1-late") == "frequency_capped"
    assert rules["t2"]["abandoned"][("main", "d1-late")]["cart_version"] == "d1-late-after-t"
    # rerunning T after its messages went out decides as the first run did (O2): its own outbox rows (decided
    # at T) are not its input; the outbox's keys make sure nothing goes twice (E6)
    assert rules["replayed"]["eligible"].keys() == rules["t"]["eligible"].keys()


def test_e7_test_group_audience(rules):
    assert outcome(rules["t"], "test_mode", "e7-tester") == "eligible"
    assert outcome(rules["t"], "test_mode", "e1-consumer") == "not_in_test_group"
    assert outcome(rules["t"], "test_mode", "e7-tester-no-consent") == "no_consent", "the group is no consent"
    eligible = {row["customer_id"] for (camp, _), row in rules["t"]["eligible"].items() if camp == "test_mode"}
    assert eligible == {"e7-tester"}
    assert main_outcome(rules, "e7-tester") == "eligible"


def _held_out(customer_id: str, campaign_name: str, percent: int) -> bool:
    digest = hashlib.md5(f"{customer_id}:{campaign_name}".encode()).hexdigest()
    return int(digest[:8], 16) % 100 < percent


def test_e8_holdout_deterministic(rules):
    held = {c for c in E8_CUSTOMERS if outcome(rules["t"], "holdout_half", c) == "holdout"}
    sent = {c for c in E8_CUSTOMERS if outcome(rules["t"], "holdout_half", c) == "eligible"}
    assert held | sent == set(E8_CUSTOMERS)
    assert held == {c for c in E8_CUSTOMERS if _held_out(c, "holdout_half", 50)}, "hash of customer and campaign"
    assert held, "with 20 customers, some are held out"
    assert sent, "...and some are not"
    assert all(main_outcome(rules, c) == "eligible" for c in E8_CUSTOMERS), "no holdout in a 0 % campaign"
    replayed = {c for c in E8_CUSTOMERS if outcome(rules["replayed"], "holdout_half", c) == "holdout"}
    assert replayed == held


def test_e9_one_reason_each(rules):
    for decisions in (rules["t"], rules["t2"], rules["replayed"]):
        eligible, excluded = set(decisions["eligible"]), set(decisions["excluded"])
        assert not eligible & excluded, "a cart with a reason is not messaged"
        assert eligible | excluded == set(decisions["abandoned"]), "every abandoned cart has an outcome"
    assert main_outcome(rules, "e9-inst-nocons-supp") == "institutional"
    assert main_outcome(rules, "e9-invalid-nocons") == "invalid_email"
    assert main_outcome(rules, "e9-nocons-supp") == "no_consent"
    assert main_outcome(rules, "e9-supp-capped") == "suppressed"
    assert main_outcome(rules, "e9-superseded-invalid-old") == "superseded_by_newer_cart"
    assert main_outcome(rules, "e9-superseded-invalid-new") == "invalid_email"
    reasons = {row["reason"] for row in rules["t"]["excluded"].values()}
    assert reasons <= set(E9_ORDER)
    # one-step email campaigns: neither the SMS and push reasons nor the sequences' (tests/dbt/test_followups.py)
    sequences = {"exited_order_placed", "exited_cart_deleted", "exited_cart_changed", "previous_step_not_sent"}
    others = {"no_phone", "invalid_phone", "no_push_subscription", "no_allowed_channel", "engaged"}
    assert set(E9_ORDER) - reasons == sequences | others


# ---- O ---------------------------------------------------------------------------------------------
def test_o2_replaying_a_past_t_reproduces_its_decisions(rules):
    at_t, replayed = rules["t"], rules["replayed"]
    assert replayed["abandoned"] == at_t["abandoned"], "later events, orders and deletions are not seen"
    # the same decisions, row for row, although T's messages went out in between (O2)
    assert replayed["excluded"] == at_t["excluded"]
    assert replayed["eligible"] == at_t["eligible"]
    # and the later data did change the next run
    assert outcome(rules["t2"], "weekly", "e3-regranted") == "suppressed"
    assert outcome(rules["t2"], "weekly", "e3-null-basis") == "institutional"


# ---------------------------------------------------------------------------------------------------
# the coupons world
# ---------------------------------------------------------------------------------------------------
TIERED = campaign("tiered", coupon_tiers="value_tiers")
BY_SMS = campaign("by_sms", coupon_tiers="value_tiers", steps=[{"channels": ["sms"]}])
VALUES = {"c-4999": "49.99", "c-5000": "50.00", "c-10000": "100.00", "c-10001": "100.01"}


@pytest.fixture(scope="module")
def coupons(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from cart_recovery.coupons import assign_coupons

    with fresh_warehouse(admin_url, tmp_path_factory.mktemp("dbt-coupons"), EVERYTHING) as wh:
        with psycopg.connect(wh.url, autocommit=True) as conn:
            w = World(conn, file_name="coupons_world")
            for cid, value in VALUES.items():
                w.customer(cid)
                w.cart(f"{cid}-e1", cid, T - h(5), cid, [("BOOK", 1, float(value))])
            w.customer("c-sms", phone="+15145550101", consent=False)
            w.consent("c-sms", channel="sms")
            w.cart("c-sms-e1", "c-sms", T - h(5), "c-sms", [("BOOK", 1, 150.0)])
            w.coupon_codes("value_10", ["V10-1", "V10-2"])
            w.coupon_codes("value_15", ["V15-1", "V15-2", "V15-3"])
            w.coupon_codes("value_20", ["V20-1"])
            w.coupon_codes("sms_5", ["S5-1", "S5-2"])
            # V15-1 and V20-1 went to other customers in an earlier run: never again (C2)
            for code, pool in (("V15-1", "value_15"), ("V20-1", "value_20")):
                conn.execute(
                    "insert into ops.coupon_allocations (code, pool, campaign, step, customer_id, cart_id, "
                    "cart_version, decided_at) values (%s, %s, 'tiered', 1, 'someone', 'old-cart', %s, %s)",
                    (code, pool, f"old-{code}", T - d(30)),
                )
            wh.build(T, [TIERED, BY_SMS])

            # two runs allocate at once (C2)
            barrier = threading.Barrier(2)
            results: list[Any] = [None, None]

            def allocate(i: int) -> None:
                with psycopg.connect(wh.url) as own:
                    barrier.wait()
                    try:
                        results[i] = assign_coupons(own, T)
                    except Exception as exc:  # reported by the test, not swallowed
                        results[i] = exc

            threads = [threading.Thread(target=allocate, args=(i,)) for i in range(2)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(timeout=60)
            first = rows(conn, "select * from marts.eligible_recipients order by campaign, cart_id")
            allocations = rows(conn, "select * from ops.coupon_allocations order by code")
            alerts = rows(
                conn, "select * from ops.alerts where kind = 'coupon_pool_exhausted' and decided_at = %s", (T,)
            )

            # a rerun of the same date: build and allocate again
            wh.build(T, [TIERED, BY_SMS])
            rerun_counts = assign_coupons(conn, T)
            rerun = rows(conn, "select * from marts.eligible_recipients order by campaign, cart_id")
            allocations_after_rerun = rows(conn, "select * from ops.coupon_allocations order by code")
            assignments = rows(conn, "select * from marts.coupon_assignments order by campaign, cart_id")
        yield {
            "concurrent": results,
            "first": first,
            "allocations": allocations,
            "alerts": alerts,
            "rerun_counts": rerun_counts,
            "rerun": rerun,
            "allocations_after_rerun": allocations_after_rerun,
            "assignments": assignments,
        }


def _by_cart(rows: list[dict[str, Any]], campaign_name: str) -> dict[str, dict[str, Any]]:
    return {row["cart_id"]: row for row in rows if row["campaign"] == campaign_name}


def test_c1_tier_boundaries(coupons):
    tiers = {
        cart: (row["coupon_tier"], row["coupon_percent"]) for cart, row in _by_cart(coupons["first"], "tiered").items()
    }
    assert tiers == {
        "c-4999": ("under_50", 10),
        "c-5000": ("50_to_100", 15),
        "c-10000": ("50_to_100", 15),
        "c-10001": ("over_100", 20),
    }
    sms = _by_cart(coupons["first"], "by_sms")
    assert {cart: (row["channel"], row["coupon_percent"]) for cart, row in sms.items()} == {"c-sms": ("sms", 5)}
    assert len(coupons["assignments"]) == 5


def test_c2_code_once_ever_and_stable_across_reruns(coupons):
    tiered = _by_cart(coupons["first"], "tiered")
    assert tiered["c-4999"]["coupon_code"] in {"V10-1", "V10-2"}
    assert {tiered["c-5000"]["coupon_code"], tiered["c-10000"]["coupon_code"]} == {"V15-2", "V15-3"}, (
        "V15-1 went to another customer in an earlier run"
    )
    assert _by_cart(coupons["first"], "by_sms")["c-sms"]["coupon_code"] in {"S5-1", "S5-2"}
    codes = [a["code"] for a in coupons["allocations"]]
    assert len(codes) == len(set(codes))
    assert coupons["rerun"] == coupons["first"], "the same cart version keeps its code"
    assert coupons["allocations_after_rerun"] == coupons["allocations"]
    assert all(c["allocated"] == 0 for c in coupons["rerun_counts"].values())


def test_c2_concurrent_runs_never_share_a_code(coupons):
    results = coupons["concurrent"]
    assert not [r for r in results if isinstance(r, Exception) or r is None], results
    allocated = sum(c["allocated"] for r in results for c in r.values())
    this_run = [a for a in coupons["allocations"] if a["decided_at"] == T]
    assert allocated == len(this_run) == 4, "each cart version with a pool code got exactly one, once"
    keys = [(a["campaign"], a["step"], a["cart_id"], a["cart_version"]) for a in this_run]
    assert len(keys) == len(set(keys))


def test_c3_exhausted_pool_falls_back_and_alerts(coupons):
    over_100 = _by_cart(coupons["first"], "tiered")["c-10001"]
    assert over_100["coupon_code"] == "PROMO20", "the tier's static code, never a reused pool code"
    assert "V20-1" not in {row["coupon_code"] for row in coupons["first"]}
    assert not [a for a in coupons["allocations"] if a["pool"] == "value_20" and a["decided_at"] == T]
    assert coupons["alerts"], "an operator sees the exhausted pool"
    assert {a["detail"]["pool"] for a in coupons["alerts"]} == {"value_20"}
