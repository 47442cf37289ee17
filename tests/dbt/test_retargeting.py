"""F5 retargeting audience: who joins (eligible at a run's T, email consent E3, valid email E2, no opt-out E4),
at most once per 14 days (a greedy walk over the decision history), who leaves (14 days, first completed
order, opt-out), and a replayed T that decides as it did (O2). One world, builds at T, T + 3 days and T again.

History is written as the sender writes it: ops.messages rows by `decided_at` (earlier runs); this run's
decisions come from marts.eligible_recipients.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.dbt.world import T, World, campaign, d, h, rows

SMS_FIRST = campaign("sms_first", steps=[{"channels": ["sms", "email"]}])
CAMPAIGNS = [campaign(), SMS_FIRST]
T3 = T + d(3)
MODELS = "int_retargeting_candidates int_retargeting_memberships retargeting_audience"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def snapshot(conn) -> dict[str, Any]:
    return {
        "audience": {r["customer_id"]: r for r in rows(conn, "select * from marts.retargeting_audience")},
        "memberships": sorted(
            (r["customer_id"], r["joined_at"], r["leaves_at"], r["leave_reason"])
            for r in rows(conn, "select * from intermediate.int_retargeting_memberships")
        ),
        "eligible": {(r["campaign"], r["customer_id"]) for r in rows(conn, "select * from marts.eligible_recipients")},
    }


def memberships(built: dict[str, Any], customer: str) -> list[tuple[Any, ...]]:
    return [(j, leaves, why) for c, j, leaves, why in built["memberships"] if c == customer]


@pytest.fixture(scope="module")
def runs(warehouse) -> dict[str, Any]:
    with warehouse.connect() as conn:
        w = World(conn)
        w.store("s1")

        def earlier_run(customer: str, decided_at, status: str = "sent", skip_reason: str | None = None) -> None:
            """A message an earlier run decided for the customer (one cart per decision)."""
            cart = f"{customer}-{int(decided_at.timestamp())}"
            w.message("bookstore_daily", 1, customer, cart, "v1", decided_at, status, skip_reason=skip_reason)

        # this run decides to message `fresh`: joins at T
        w.customer("fresh", email="  Fresh.Person@Example.ORG ")
        w.cart("fresh-e1", "fresh-cart", T - h(3), "fresh")
        # joined 10 days ago, eligible again now: no re-join within 14 days
        w.customer("recent")
        earlier_run("recent", T - d(10))
        w.cart("recent-e1", "recent-cart", T - h(3), "recent")
        # joined 20 days ago (expired), eligible now: joins again
        w.customer("rejoin")
        earlier_run("rejoin", T - d(20))
        w.cart("rejoin-e1", "rejoin-cart", T - h(3), "rejoin")
        # greedy: joins at T-27d; T-15d is 12 days later (no); T-12d is 15 days after the join (yes)
        w.customer("greedy")
        for days in (27, 15, 12):
            earlier_run("greedy", T - d(days))
        # joined exactly 14 days ago: left at T
        w.customer("expired")
        earlier_run("expired", T - d(14))
        # joined 5 days ago and bought 2 days ago: left on purchase
        w.customer("bought")
        earlier_run("bought", T - d(5))
        w.order("bought-o1", "bought", T - d(2), ["a"])
        # joined 5 days ago; the order 2 days ago was cancelled (its latest event): still a member
        w.customer("cancelled")
        earlier_run("cancelled", T - d(5))
        w.order("cancelled-o1", "cancelled", T - d(2), ["a"])
        w.order("cancelled-o1", "cancelled", T - d(2), ["a"], status="cancelled", file_name="zz-later.jsonl")
        # an order placed before joining does not end the membership
        w.customer("ordered-before")
        w.order("ordered-before-o1", "ordered-before", T - d(6), ["a"])
        earlier_run("ordered-before", T - d(5))
        # an order placed after T (known only to a later run) ends the membership only from then on
        w.customer("buys-after-t")
        earlier_run("buys-after-t", T - d(5))
        # E3: no email consent when decided (SMS consent only, messaged by SMS now): never joins
        w.customer("sms-only", phone="+15145550101", consent=False)
        w.consent("sms-only", channel="sms")
        w.cart("sms-only-e1", "sms-only-cart", T - h(3), "sms-only")
        # E3: email consent granted after the earlier run that decided the message: not joined then
        w.customer("consent-late", consent=False)
        earlier_run("consent-late", T - d(3))
        w.consent("consent-late", recorded_at=T - d(1))
        # E3: implied consent expired (730 days) when decided
        w.customer("implied-old", consent=False)
        w.consent("implied-old", basis="implied", recorded_at=T - d(735))
        earlier_run("implied-old", T - d(3))
        # E2: invalid address
        w.customer("bad-email", email="not-an-address")
        earlier_run("bad-email", T - d(3))
        # E8 holdout and S3 dry run are not decisions to message
        w.customer("held-out")
        earlier_run("held-out", T - d(3), status="skipped", skip_reason="holdout")
        w.customer("dry")
        earlier_run("dry", T - d(3), status="dry_run")
        # opt-outs after joining end the membership
        w.customer("withdrew")
        earlier_run("withdrew", T - d(5))
        w.consent("withdrew", status="withdrawn", recorded_at=T - d(1))
        w.customer("unsubscribed")
        earlier_run("unsubscribed", T - d(5))
        w.unsubscribe("unsubscribed", T - d(2))
        w.customer("spam-report")
        earlier_run("spam-report", T - d(5))
        w.provider_event("spamreport", "spam-report@example.org", T - d(2))
        # an unsubscribe before the decision: never joins
        w.customer("unsubscribed-before")
        w.unsubscribe("unsubscribed-before", T - d(9))
        earlier_run("unsubscribed-before", T - d(3))
        # a message decided by a later run (T + 1 day) is not history at T (O2)
        w.customer("later")
        earlier_run("later", T + d(1))

        warehouse.build(T, CAMPAIGNS)
        day1 = snapshot(conn)
        warehouse.build(T, CAMPAIGNS, args=["test", "--quiet", "--select", MODELS])  # the models' data tests

        # what the sender does with this run's decisions, then what arrives after T
        for r in rows(conn, "select * from marts.eligible_recipients"):
            w.message(r["campaign"], r["step"], r["customer_id"], r["cart_id"], r["cart_version"], r["decided_at"])
        w.order("buys-after-t-o1", "buys-after-t", T + d(1), ["a"])
        w.consent("recent", status="withdrawn", recorded_at=T + d(2))
        w.customer("newcomer")
        earlier_run("newcomer", T + d(2))

        warehouse.build(T3, CAMPAIGNS)
        day3 = snapshot(conn)
        warehouse.build(T, CAMPAIGNS)  # replay of T
        replay = snapshot(conn)
    return {"day1": day1, "day3": day3, "replay": replay}


def test_f5_eligible_customer_with_email_consent_joins_at_t(runs):
    fresh = runs["day1"]["audience"]["fresh"]
    assert fresh["joined_at"] == T
    assert fresh["leaves_at"] == T + d(14)


def test_f5_hash_is_sha256_of_trimmed_lower_case_email(runs):
    assert runs["day1"]["audience"]["fresh"]["email_sha256"] == sha("fresh.person@example.org")
    # a known digest, computed independently of the code under test
    assert sha("fresh.person@example.org") == hashlib.sha256(b"fresh.person@example.org").hexdigest()
    assert runs["day1"]["audience"]["recent"]["email_sha256"] == sha("recent@example.org")


def test_f5_no_rejoin_within_14_days(runs):
    assert runs["day1"]["audience"]["recent"]["joined_at"] == T - d(10)
    assert memberships(runs["day1"], "recent") == [(T - d(10), T + d(4), None)]


def test_f5_rejoin_after_14_days(runs):
    assert runs["day1"]["audience"]["rejoin"]["joined_at"] == T
    assert memberships(runs["day1"], "rejoin") == [(T - d(20), T - d(6), "expired"), (T, T + d(14), None)]


def test_f5_join_at_most_once_per_14_days_is_greedy(runs):
    assert memberships(runs["day1"], "greedy") == [(T - d(27), T - d(13), "expired"), (T - d(12), T + d(2), None)]
    assert runs["day1"]["audience"]["greedy"]["joined_at"] == T - d(12)


def test_f5_leaves_after_14_days(runs):
    assert "expired" not in runs["day1"]["audience"]
    assert memberships(runs["day1"], "expired") == [(T - d(14), T, "expired")]


def test_f5_leaves_on_first_completed_order(runs):
    assert "bought" not in runs["day1"]["audience"]
    assert memberships(runs["day1"], "bought") == [(T - d(5), T - d(2), "purchased")]


def test_f5_cancelled_order_does_not_remove(runs):
    assert runs["day1"]["audience"]["cancelled"]["leaves_at"] == T + d(9)


def test_f5_order_before_joining_does_not_remove(runs):
    assert "ordered-before" in runs["day1"]["audience"]


def test_f5_order_after_t_ends_membership_only_from_then(runs):
    assert "buys-after-t" in runs["day1"]["audience"]
    assert "buys-after-t" not in runs["day3"]["audience"]
    assert memberships(runs["day3"], "buys-after-t") == [(T - d(5), T + d(1), "purchased")]


@pytest.mark.parametrize(
    "customer", ["sms-only", "consent-late", "implied-old", "bad-email", "held-out", "dry", "unsubscribed-before"]
)
def test_f5_e3_e2_e4_e8_no_consent_address_or_decision_no_join(runs, customer):
    assert memberships(runs["day1"], customer) == []
    assert memberships(runs["day3"], customer) == []


def test_f5_sms_only_customer_was_messaged_but_not_joined(runs):
    # the SMS campaign decided to message her (she is eligible), yet without email consent she stays out
    assert ("sms_first", "sms-only") in runs["day1"]["eligible"]
    assert memberships(runs["day1"], "sms-only") == []
    assert "sms-only" not in runs["day1"]["audience"]


@pytest.mark.parametrize(
    ("customer", "left_at"), [("withdrew", T - d(1)), ("unsubscribed", T - d(2)), ("spam-report", T - d(2))]
)
def test_f5_email_opt_out_ends_membership(runs, customer, left_at):
    assert customer not in runs["day1"]["audience"]
    assert memberships(runs["day1"], customer) == [(T - d(5), left_at, "opted_out")]


def test_o2_later_decisions_are_not_history_at_t(runs):
    assert memberships(runs["day1"], "later") == []
    assert memberships(runs["day3"], "later") == [(T + d(1), T + d(15), None)]


def test_f5_this_runs_decisions_are_history_for_the_next_run(runs):
    assert runs["day3"]["audience"]["fresh"]["joined_at"] == T
    assert runs["day3"]["audience"]["newcomer"]["joined_at"] == T + d(2)
    # a withdrawal after T ends `recent`'s membership at the next run
    assert memberships(runs["day3"], "recent") == [(T - d(10), T + d(2), "opted_out")]


def test_o2_replaying_t_gives_the_same_audience(runs):
    # the replay decides as the first run did (O2: its own outbox rows are not its input), and the same
    # customers are in the audience, each once
    assert runs["replay"]["eligible"] == runs["day1"]["eligible"]
    assert runs["replay"]["audience"] == runs["day1"]["audience"]
    assert runs["replay"]["memberships"] == runs["day1"]["memberships"]
    assert set(runs["day1"]["audience"]) == {
        "fresh",
        "recent",
        "rejoin",
        "greedy",
        "cancelled",
        "ordered-before",
        "buys-after-t",
    }
