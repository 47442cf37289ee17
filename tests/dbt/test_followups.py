"""Follow-up sequences (F1–F4, E5, C1) against the real dbt project, var decision_scope = followups.

One world, built at T in the followups scope (every data test included: the build raises on a failed one),
then in the daily scope. Every scenario has its own customer and cart (ids start with the rule id); the
outbox rows of earlier steps are written directly (status, decided_at), as the sender would have.

Campaigns: `mt` (multi_touch: push +1 h, SMS with the 5 % tier +3 h, email with value tiers +20 h),
`omni` (omnichannel: [push, sms, email] at once, again after 1 h and email after 1 day if not engaged),
both hourly, and `daily2` (daily: email, then an email follow-up 1 day later).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.dbt.conftest import EVERYTHING, fresh_warehouse
from tests.dbt.world import T, World, campaign, d, h, rows

SECOND = timedelta(seconds=1)

MT = campaign(
    "mt",
    cadence="hourly",
    steps=[
        {"channels": ["push"], "delay_minutes": 60},
        {"channels": ["sms"], "delay_minutes": 180, "coupon_tiers": "value_tiers"},
        {"channels": ["email"], "delay_minutes": 1200, "coupon_tiers": "value_tiers"},
    ],
)
OMNI = campaign(
    "omni",
    cadence="hourly",
    steps=[
        {"channels": ["push", "sms", "email"], "delay_minutes": 0},
        {"channels": ["push", "sms", "email"], "delay_minutes": 60, "only_if_not_engaged": True},
        {"channels": ["email"], "delay_minutes": 1440, "only_if_not_engaged": True},
    ],
)
DAILY2 = campaign("daily2", steps=[{"channels": ["email"]}, {"channels": ["email"], "delay_minutes": 1440}])
CAMPAIGNS = [MT, OMNI, DAILY2]

Key = tuple[str, int, str]


def _customer(w: World, cid: str, *, phone: str | None = None, push: bool = False, sms: bool = False) -> str:
    """A customer with email consent, and push / SMS consent when asked."""
    w.customer(cid, phone=phone)
    if push:
        w.consent(cid, channel="push")
    if sms:
        w.consent(cid, channel="sms")
    return cid


def _sequence(
    w: World,
    cid: str,
    camp: str,
    last_activity: Any,
    history: list[tuple[int, Any, str]],
    *,
    value: float = 20.0,
    device: str = "desktop",
) -> str:
    """A cart (id = customer id, version `<cid>-v1`) and the outbox rows of its earlier steps:
    (step, decided_at, status). Returns the version."""
    version = f"{cid}-v1"
    w.cart(version, cid, last_activity, cid, [("sku-1", 1, value)], device=device)
    for step, decided_at, status in history:
        w.message(camp, step, cid, cid, version, decided_at, status)
    return version


def _write_world(w: World) -> None:
    w.store("s1")
    w.product("sku-1")

    # F1: step 1 of mt is due at last activity + 60 min (abandon_after) + 60 min (delay)
    _customer(w, "f1-s1-due", push=True)
    w.push_subscription("f1-s1-due")
    w.cart("f1-s1-due-v1", "f1-s1-due", T - h(2), "f1-s1-due")
    _customer(w, "f1-s1-not-due", push=True)
    w.push_subscription("f1-s1-not-due")
    w.cart("f1-s1-not-due-v1", "f1-s1-not-due", T - h(2) + SECOND, "f1-s1-not-due")
    # F1: step 2 of mt is due 180 min after step 1's decided_at, while the step 1 row is sent
    for cid, decided, status in (
        ("f1-s2-due", T - h(3), "sent"),
        ("f1-s2-not-due", T - h(3) + SECOND, "sent"),
        ("f1-s2-pending", T - h(4), "pending"),
        ("f1-s2-too-late", T - h(3) - d(1), "sent"),
    ):
        _customer(w, cid, phone="+15145550100", sms=True)
        _sequence(w, cid, "mt", decided - h(2), [(1, decided, status)])
    # F1, C1: step 3 (email, value tiers) 1 200 min after step 2; cart value 60 -> 15 %
    _customer(w, "f1-s3-due", phone="+15145550101", sms=True)
    _sequence(w, "f1-s3-due", "mt", T - h(26), [(1, T - h(24), "sent"), (2, T - h(20), "sent")], value=60.0)

    # F2: exits between steps (mt step 2 due: step 1 sent at T - 4 h, cart idle since T - 6 h)
    for cid in ("f2-order", "f2-deleted", "f2-changed", "f2-order-after-t", "f2-order-before"):
        _customer(w, cid, phone="+15145550102", sms=True, push=True)
        w.push_subscription(cid)
        _sequence(w, cid, "mt", T - h(6), [(1, T - h(4), "sent")])
    w.order("f2-order-o", "f2-order", T - h(1), ["other"])
    w.cart("f2-deleted-del", "f2-deleted", T - h(1), "f2-deleted", event_type="cart_deleted")
    # new items at T - 2 h: a new version, abandoned and due for mt's step 1 exactly at T (F2 restart)
    w.cart("f2-changed-v2", "f2-changed", T - h(2), "f2-changed", [("sku-1", 2, 20.0)])
    w.order("f2-order-after-t-o", "f2-order-after-t", T + h(1), ["other"])
    w.order("f2-order-before-o", "f2-order-before", T - h(7), ["other"])
    # F2 re-entry: a later cart after an exit enters again, subject to E5 (7 days, any step, any campaign)
    for cid, days_ago in (("f2-reentry-capped", 3), ("f2-reentry-ok", 8)):
        _customer(w, cid, push=True)
        w.push_subscription(cid)
        w.cart(f"{cid}-old-v1", f"{cid}-old", T - d(days_ago) - h(3), cid)
        w.message("mt", 1, cid, f"{cid}-old", f"{cid}-old-v1", T - d(days_ago), "sent", channel="push")
        w.order(f"{cid}-o", cid, T - d(days_ago) + h(1), ["sku-1"])
        w.cart(f"{cid}-v1", cid, T - h(2), cid)

    # previous step not sent: failed, unknown, skipped (e.g. held out, or exited at send time)
    for status in ("failed", "unknown", "skipped"):
        cid = f"prev-{status}"
        _customer(w, cid, phone="+15145550103", sms=True)
        _sequence(w, cid, "mt", T - h(6), [(1, T - h(4), status)])

    # F3: a step skipped for want of an allowed channel, or as engaged, hands the sequence on
    for reason in ("no_allowed_channel", "engaged", "no_push_subscription", "holdout"):
        cid = f"prev-skipped-{reason}"
        _customer(w, cid, phone="+15145550103", sms=True)
        version = _sequence(w, cid, "mt", T - h(6), [])
        w.message("mt", 1, cid, cid, version, T - h(4), "skipped", "push", skip_reason=reason)
    # E5: a sequence not entered yet (step 1 skipped for its channel) is capped at step 2 like a first step
    cid = "prev-skipped-capped"
    _customer(w, cid, phone="+15145550103", sms=True)
    version = _sequence(w, cid, "mt", T - h(6), [])
    w.message("mt", 1, cid, cid, version, T - h(4), "skipped", "push", skip_reason="no_push_subscription")
    w.message("bookstore_daily", 1, cid, f"{cid}-old", "old-v1", T - d(2), "sent")
    # engaged counts any earlier message of the sequence: omni step 3 after a step 2 skipped as engaged
    for cid, event in (("eng-s3-opened-s1", "open"), ("eng-s3-none", None)):
        _customer(w, cid)
        version = _sequence(w, cid, "omni", T - d(2), [])
        mid = w.message("omni", 1, cid, cid, version, T - d(2) + h(1), "sent")
        w.message("omni", 2, cid, cid, version, T - d(1) - h(1), "skipped", skip_reason="engaged")
        if event:
            w.provider_event(event, f"{cid}@example.org", T - d(2) + h(2), message_id=mid)

    # engaged: omni step 2 (only_if_not_engaged) 60 min after step 1, skipped when step 1 was opened/clicked
    for cid, event, at in (
        ("eng-open", "open", T - h(0.5)),
        ("eng-click", "click", T - h(0.5)),
        ("eng-open-after-t", "open", T + h(0.5)),
        ("eng-none", None, None),
    ):
        _customer(w, cid)
        _sequence(w, cid, "omni", T - h(3), [])
        mid = w.message("omni", 1, cid, cid, f"{cid}-v1", T - h(1), "sent")
        if event:
            w.provider_event(event, f"{cid}@example.org", at, message_id=mid)

    # F3: omni's step 1 ([push, sms, email]) falls back along the preference; cart idle since T - 2 h
    _customer(w, "f3-push", phone="+15145550104", push=True, sms=True)
    w.push_subscription("f3-push")
    _customer(w, "f3-sms", phone="+15145550105", push=True, sms=True)  # no subscription
    _customer(w, "f3-email-revoked", push=True)
    w.push_revocation(w.push_subscription("f3-email-revoked"), "f3-email-revoked", T - h(5))
    _customer(w, "f3-push-revoked-after-t", push=True)
    w.push_revocation(w.push_subscription("f3-push-revoked-after-t"), "f3-push-revoked-after-t", T + h(1))
    _customer(w, "f3-email-sub-revoked", push=True)
    w.push_subscription("f3-email-sub-revoked", "revoked", T - d(1))
    w.customer("f3-none", phone="+15145550106", consent=False)  # an email, but no consent on any channel
    for cid in (
        "f3-push",
        "f3-sms",
        "f3-email-revoked",
        "f3-push-revoked-after-t",
        "f3-email-sub-revoked",
        "f3-none",
    ):
        _sequence(w, cid, "omni", T - h(2), [])
    # a one-channel step keeps its channel's own reason: mt's push step without a subscription
    _customer(w, "f3-one-channel", push=True)
    w.cart("f3-one-channel-v1", "f3-one-channel", T - h(2), "f3-one-channel")

    # device first (omni, push chosen): the app's subscription for a mobile cart, the browser's for a desktop
    for cid, device, kinds in (
        ("dev-mobile", "mobile", ("web", "android")),
        ("dev-desktop", "desktop", ("web", "ios")),
        ("dev-mobile-web-only", "mobile", ("web",)),
        ("dev-tablet", "tablet", ("web", "android")),
    ):
        _customer(w, cid, push=True)
        for kind in kinds:
            w.push_subscription(cid, kind=kind)
        _sequence(w, cid, "omni", T - h(2), [], device=device)

    # E4, F4: an SMS STOP suppresses SMS (omni falls back to email): by our message id, by the replying
    # number, by the customer it names; a STOP after T does not count yet
    for cid in ("stop-message", "stop-phone", "stop-customer", "stop-after-t"):
        _customer(w, cid, phone="+15145550199" if cid == "stop-phone" else "+15145550107", sms=True)
        _sequence(w, cid, "omni", T - h(2), [])
    old = w.message("bookstore_daily", 1, "stop-message", "stop-message-old", "old-v1", T - d(30), "sent", "sms")
    w.provider_event("sms_stop", None, T - d(1), message_id=old)
    w.provider_event("sms_stop", None, T - d(1), extra={"phone": "+1 (514) 555-0199"})
    w.provider_event("sms_stop", None, T - d(1), extra={"customer_id": "stop-customer"})
    w.provider_event("sms_stop", None, T + h(1), extra={"customer_id": "stop-after-t"})

    # daily campaigns: step 1 in the daily scope only, step 2 in the followups scope
    _customer(w, "daily2-s2")
    _sequence(w, "daily2-s2", "daily2", T - d(1) - h(5), [(1, T - d(1), "sent")])
    _customer(w, "daily2-new")
    w.cart("daily2-new-v1", "daily2-new", T - h(3), "daily2-new")


def _decisions(conn) -> dict[str, dict[Key, dict[str, Any]]]:
    marts = {"eligible": "marts.eligible_recipients", "excluded": "marts.recipient_exclusions"}
    return {
        name: {(r["campaign"], r["step"], r["cart_id"]): r for r in rows(conn, f"select * from {table}")}
        for name, table in marts.items()
    }


@pytest.fixture(scope="module")
def built(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with fresh_warehouse(admin_url, tmp_path_factory.mktemp("dbt-followups"), EVERYTHING) as wh, wh.connect() as conn:
        _write_world(World(conn))
        wh.build(T, CAMPAIGNS, scope="followups")
        followups = _decisions(conn)
        contents = {
            (r["campaign"], r["step"], r["cart_id"]): r for r in rows(conn, "select * from restricted.message_contents")
        }
        wh.build(T, CAMPAIGNS, scope="daily")
        yield {"followups": followups, "contents": contents, "daily": _decisions(conn)}


def outcome(built: dict[str, Any], campaign_name: str, step: int, cart_id: str, scope: str = "followups") -> str | None:
    """`eligible`, the exclusion reason, or None when the step has no row (not due, not decided)."""
    decisions = built[scope]
    key = (campaign_name, step, cart_id)
    if key in decisions["eligible"]:
        return "eligible"
    if key in decisions["excluded"]:
        return decisions["excluded"][key]["reason"]
    return None


def channel(built: dict[str, Any], campaign_name: str, step: int, cart_id: str) -> str:
    return built["followups"]["eligible"][(campaign_name, step, cart_id)]["channel"]


def test_f1_first_step_due_after_abandon_plus_delay(built):
    assert outcome(built, "mt", 1, "f1-s1-due") == "eligible"
    assert channel(built, "mt", 1, "f1-s1-due") == "push"
    assert outcome(built, "mt", 1, "f1-s1-not-due") is None, "not due yet: no row at all, not an exclusion"


def test_f1_later_step_due_after_previous_decided_at_plus_delay(built):
    assert outcome(built, "mt", 2, "f1-s2-due") == "eligible"
    assert channel(built, "mt", 2, "f1-s2-due") == "sms"
    assert outcome(built, "mt", 2, "f1-s2-not-due") is None
    assert outcome(built, "mt", 2, "f1-s2-pending") is None, "a pending previous step is not sent yet"
    assert outcome(built, "mt", 2, "f1-s2-too-late") is None, "due for max_cart_age after its due time only"
    assert outcome(built, "mt", 3, "f1-s3-due") == "eligible"
    assert channel(built, "mt", 3, "f1-s3-due") == "email"
    # a sent step does not repeat: step 1 of these carts is not decided again, nor step 3 before step 2
    assert outcome(built, "mt", 3, "f1-s2-due") is None


def test_c1_sms_step_gets_the_sms_tier_and_email_step_the_value_tier(built):
    sms = built["followups"]["eligible"][("mt", 2, "f1-s2-due")]
    assert (sms["coupon_tier"], sms["coupon_percent"]) == ("sms", 5)
    email = built["followups"]["eligible"][("mt", 3, "f1-s3-due")]
    assert (email["coupon_tier"], email["coupon_percent"]) == ("50_to_100", 15)
    assert built["followups"]["eligible"][("mt", 1, "f1-s1-due")]["coupon_percent"] is None


def test_f2_exits_between_steps(built):
    assert outcome(built, "mt", 2, "f2-order") == "exited_order_placed"
    assert outcome(built, "mt", 2, "f2-deleted") == "exited_cart_deleted"
    assert outcome(built, "mt", 2, "f2-changed") == "exited_cart_changed"
    assert outcome(built, "mt", 2, "f2-order-after-t") == "eligible", "an order after T is not known at T"
    assert outcome(built, "mt", 2, "f2-order-before") == "eligible", "an order before the version's activity"


def test_f2_new_version_restarts_at_step_1_uncapped(built):
    row = built["followups"]["eligible"][("mt", 1, "f2-changed")]
    assert row["cart_version"] == "f2-changed-v2"
    assert row["channel"] == "push"


def test_f2_reentry_with_a_later_cart_is_subject_to_e5(built):
    assert outcome(built, "mt", 1, "f2-reentry-capped") == "frequency_capped"
    assert outcome(built, "mt", 1, "f2-reentry-ok") == "eligible"


def test_f1_previous_step_not_sent(built):
    for status in ("failed", "unknown", "skipped"):
        assert outcome(built, "mt", 2, f"prev-{status}") == "previous_step_not_sent", status


def test_f3_step_skipped_for_no_channel_or_engaged_hands_the_sequence_on(built):
    assert outcome(built, "mt", 2, "prev-skipped-no_allowed_channel") == "eligible"
    assert outcome(built, "mt", 2, "prev-skipped-engaged") == "eligible"
    assert outcome(built, "mt", 2, "prev-skipped-no_push_subscription") == "eligible"
    assert outcome(built, "mt", 2, "prev-skipped-holdout") == "previous_step_not_sent"
    assert outcome(built, "mt", 2, "prev-skipped-capped") == "frequency_capped", "E5 until the sequence is entered"


def test_f1_engaged_looks_at_every_earlier_message_of_the_sequence(built):
    assert outcome(built, "omni", 3, "eng-s3-opened-s1") == "engaged"
    assert outcome(built, "omni", 3, "eng-s3-none") == "eligible"


def test_f1_engaged_skips_only_if_not_engaged_steps(built):
    assert outcome(built, "omni", 2, "eng-open") == "engaged"
    assert outcome(built, "omni", 2, "eng-click") == "engaged"
    assert outcome(built, "omni", 2, "eng-open-after-t") == "eligible", "an open after T is not known at T"
    assert outcome(built, "omni", 2, "eng-none") == "eligible"


def test_f3_channel_fallback_push_sms_email(built):
    assert channel(built, "omni", 1, "f3-push") == "push"
    assert channel(built, "omni", 1, "f3-sms") == "sms"
    assert channel(built, "omni", 1, "f3-email-sub-revoked") == "email", "the latest subscription record wins"
    assert outcome(built, "omni", 1, "f3-none") == "no_allowed_channel"
    assert outcome(built, "mt", 1, "f3-one-channel") == "no_push_subscription", "one channel: its own reason"


def test_e2_revoked_push_subscription_from_revoked_at_on(built):
    assert channel(built, "omni", 1, "f3-email-revoked") == "email"
    assert channel(built, "omni", 1, "f3-push-revoked-after-t") == "push"
    subs = built["contents"][("omni", 1, "f3-push-revoked-after-t")]["push_subscriptions"]
    assert [s["endpoint"] for s in subs] == ["https://push.example.org/f3-push-revoked-after-t"]


def test_f3_device_first_push_subscriptions(built):
    def kinds(cid: str) -> list[str]:
        assert channel(built, "omni", 1, cid) == "push"
        return sorted(s["kind"] for s in built["contents"][("omni", 1, cid)]["push_subscriptions"])

    assert kinds("dev-mobile") == ["android"]
    assert kinds("dev-desktop") == ["web"]
    assert kinds("dev-mobile-web-only") == ["web"]
    assert kinds("dev-tablet") == ["android", "web"]
    android = built["contents"][("omni", 1, "dev-mobile")]["push_subscriptions"][0]
    assert android == {"kind": "android", "endpoint": "token-android-dev-mobile", "token": "token-android-dev-mobile"}
    web = built["contents"][("omni", 1, "dev-desktop")]["push_subscriptions"][0]
    assert web == {"kind": "web", "endpoint": "https://push.example.org/dev-desktop", "p256dh": "key", "auth": "auth"}
    assert built["contents"][("omni", 1, "dev-mobile")]["device"] == "mobile"


def test_message_contents_phone_and_no_subscriptions_off_push(built):
    sms = built["contents"][("mt", 2, "f1-s2-due")]
    assert sms["phone"] == "+15145550100"
    assert sms["push_subscriptions"] == []
    assert sms["device"] == "desktop"


def test_e4_sms_stop_suppresses_sms(built):
    assert channel(built, "omni", 1, "stop-message") == "email"
    assert channel(built, "omni", 1, "stop-phone") == "email"
    assert channel(built, "omni", 1, "stop-customer") == "email"
    assert channel(built, "omni", 1, "stop-after-t") == "sms"


def test_decision_scope_daily_and_followups(built):
    # followups: every step of the hourly campaigns, steps >= 2 of the daily ones
    assert outcome(built, "daily2", 2, "daily2-s2") == "eligible"
    assert outcome(built, "daily2", 1, "daily2-new") is None
    # daily: step 1 of the daily campaigns only (today's behaviour)
    assert outcome(built, "daily2", 1, "daily2-new", "daily") == "eligible"
    assert outcome(built, "daily2", 2, "daily2-s2", "daily") is None
    daily = built["daily"]
    assert {k[0] for part in daily.values() for k in part} == {"daily2"}
    assert {k[1] for part in daily.values() for k in part} == {1}
