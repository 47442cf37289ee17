"""F5 retargeting candidates are incremental (issue 3 item 8: a day costs the day's decisions, not the
message history): a run re-checks the moments of the last `retargeting_recheck_hours` and the latest moment
it holds, and keeps the earlier ones as they were settled (macros/retargeting.sql).

One world, builds at T and T + 3 days, then a full rebuild at T + 3 days to compare with.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dbt.world import T, World, campaign, d, h, rows

CAMPAIGNS = [campaign()]
T3 = T + d(3)
MODELS = "int_retargeting_candidates int_retargeting_memberships retargeting_audience"


def snapshot(conn) -> dict[str, Any]:
    return {
        "candidates": sorted(
            (r["customer_id"], r["candidate_at"])
            for r in rows(conn, "select * from intermediate.int_retargeting_candidates")
        ),
        "memberships": {
            (r["customer_id"], r["joined_at"]): (r["leaves_at"], r["leave_reason"])
            for r in rows(conn, "select * from intermediate.int_retargeting_memberships")
        },
        "audience": {r["customer_id"] for r in rows(conn, "select * from marts.retargeting_audience")},
    }


@pytest.fixture(scope="module")
def runs(warehouse) -> dict[str, Any]:
    with warehouse.connect() as conn:
        w = World(conn)
        w.store("s1")
        # an earlier run messaged `settled` 5 days before T: a member at T
        w.customer("settled")
        w.message("bookstore_daily", 1, "settled", "settled-cart", "v1", T - d(5))
        # a member since 5 days before T who buys after T: the purchase still ends the membership
        w.customer("buyer")
        w.message("bookstore_daily", 1, "buyer", "buyer-cart", "v1", T - d(5))
        # eligible at T: candidates at T, from this run's decisions
        for customer in ("dry", "sent"):
            w.customer(customer)
            w.cart(f"{customer}-e1", f"{customer}-cart", T - h(3), customer)

        warehouse.build(T, CAMPAIGNS)
        day1 = snapshot(conn)

        # the run at T was a dry run for `dry` (S3) and a real send for `sent`: the next run re-checks T
        for r in rows(conn, "select * from marts.eligible_recipients"):
            status = "dry_run" if r["customer_id"] == "dry" else "sent"
            w.message(r["campaign"], r["step"], r["customer_id"], r["cart_id"], r["cart_version"], T, status)
        # a spam report made before `settled` joined, arriving only now: their moment (T - 5 days) is
        # settled, yet the opt-out is for good (E4)
        w.provider_event("spamreport", "settled@example.org", T - d(6))
        w.order("buyer-o1", "buyer", T + d(1), ["a"])

        warehouse.build(T3, CAMPAIGNS)
        day3 = snapshot(conn)
        warehouse.build(T3, CAMPAIGNS, args=["build", "--quiet", "--full-refresh", "--select", MODELS])
        rebuilt = snapshot(conn)
    return {"day1": day1, "day3": day3, "rebuilt": rebuilt}


def test_f5_this_runs_decisions_are_candidates(runs):
    assert ("dry", T) in runs["day1"]["candidates"]
    assert runs["day1"]["audience"] == {"settled", "buyer", "dry", "sent"}


def test_f5_the_latest_moment_is_rechecked_against_the_outbox(runs):
    # S3: the outbox says the run at T was a dry run for `dry`: no longer a candidate, never a member
    assert ("dry", T) not in runs["day3"]["candidates"]
    assert "dry" not in runs["day3"]["audience"]
    assert ("sent", T) in runs["day3"]["candidates"]
    assert "sent" in runs["day3"]["audience"]


def test_f5_settled_moments_are_kept_not_recomputed(runs):
    assert ("settled", T - d(5)) in runs["day3"]["candidates"]
    # a full rebuild re-checks every moment: the late spam report removes the candidate itself
    assert ("settled", T - d(5)) not in runs["rebuilt"]["candidates"]


def test_e4_a_late_opt_out_before_joining_ends_the_membership_at_once(runs):
    assert "settled" not in runs["day3"]["audience"]
    assert runs["day3"]["memberships"][("settled", T - d(5))] == (T - d(5), "opted_out")


def test_f5_incremental_build_agrees_with_a_full_rebuild(runs):
    # but for `settled` (above), the incremental build holds what a full rebuild computes
    day3, rebuilt = runs["day3"], runs["rebuilt"]
    assert [c for c in day3["candidates"] if c[0] != "settled"] == rebuilt["candidates"]
    assert {k: v for k, v in day3["memberships"].items() if k[0] != "settled"} == rebuilt["memberships"]
    assert day3["audience"] == rebuilt["audience"] == {"sent"}
    assert day3["memberships"][("buyer", T - d(5))] == (T + d(1), "purchased")
