"""SMS and push through the outbox (F1–F4, S2, E6): `send_messages` on stand-in marts, sending with the real
clients — Twilio's, pywebpush with VAPID, google-auth + FCM v1, sendgrid — to the local stand-ins. Quiet hours
defer an SMS to 08:00 and a later run sends it; `gone` revokes a push subscription or suppresses SMS; the exit
re-check at claim time skips carts bought, deleted or changed up to T; reruns send nothing twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from cart_recovery import CAMPAIGNS_DIR
from cart_recovery.campaigns import load_campaigns
from cart_recovery.devtools import sender_fixtures as fx
from cart_recovery.devtools.channel_standins import ChannelStandins, make_vapid_key
from cart_recovery.devtools.sendgrid_standin import SendGridStandin
from cart_recovery.sending import send_messages

T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # 09:00 in Montréal
MONTREAL = "+15145550123"  # America/Toronto by its area code
VANCOUVER = "+16045550123"  # America/Vancouver
SENDER_NUMBER = "+15145550000"


@pytest.fixture
def campaigns() -> list:
    # multi_touch: push (step 1), SMS with the 5 % tier (step 2), email (step 3); enabled or not, the sender
    # sends what it is given
    return [c for c in load_campaigns(CAMPAIGNS_DIR) if c.name == "multi_touch"]


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ChannelStandins, SendGridStandin]]:
    with ChannelStandins(twilio_auth_token="tw-token") as ch, SendGridStandin() as sg:
        private, _ = make_vapid_key()
        env = {
            "AIRFLOW_CONN_SENDGRID_DEFAULT": {"conn_type": "sendgrid", "host": sg.url, "password": "SG.test"},
            "AIRFLOW_CONN_TWILIO_DEFAULT": {
                "login": "ACtest",
                "password": "tw-token",
                "host": ch.url,
                "extra": {"from_number": SENDER_NUMBER},
            },
            "AIRFLOW_CONN_WEBPUSH_DEFAULT": {"password": private, "extra": {"subject": "mailto:rappels@l.example"}},
            "AIRFLOW_CONN_FCM_DEFAULT": {"host": ch.url, "password": json.dumps(ch.service_account_info())},
        }
        for key, value in env.items():
            monkeypatch.setenv(key, json.dumps(value))
        monkeypatch.setenv("CR_UNSUBSCRIBE_SECRET", "test-secret")
        monkeypatch.setenv("CR_PUBLIC_BASE_URL", "https://shop.example")
        monkeypatch.setenv("CR_SENDER_NAME", "Les libraires")
        yield ch, sg


@pytest.fixture
def marts(db: psycopg.Connection) -> psycopg.Connection:
    fx.create_stub_marts(db)
    # the columns H7's message_contents adds for push and omnichannel (docs/INTERFACES.md)
    db.execute("alter table restricted.message_contents add column push_subscriptions jsonb, add column device text")
    return db


def add(
    db: psycopg.Connection,
    customer: str,
    t: datetime,
    channel: str,
    step: int,
    *,
    phone: str | None = None,
    subs: list[dict[str, Any]] | None = None,
    **kw: Any,
) -> None:
    fx.add_recipient(db, customer, t, campaign="multi_touch", step=step, channel=channel, **kw)
    db.execute(
        "update restricted.message_contents set phone = %s, push_subscriptions = %s, device = 'mobile' "
        "where cart_id = %s and step = %s",
        (phone, json.dumps(subs) if subs is not None else None, kw.get("cart_id") or f"cart-{customer}", step),
    )


def rebuild(db: psycopg.Connection) -> None:
    """The later runs decide other things: the deferred message must not need the earlier run's rows (the
    contents expire, restricted.message_contents_retention_days), only what ops.deferred_sends kept."""
    db.execute("truncate marts.decision_history, restricted.message_contents")


def outbox(db: psycopg.Connection) -> dict[str, tuple[str, str, str | None]]:
    rows = db.execute(
        "select customer_id, channel, status, skip_reason from ops.messages "
        "where idempotency_key not like 'dry\\_run:%%' order by 1"
    ).fetchall()
    return {c: (ch, s, r) for c, ch, s, r in rows}


def web_sub(ch: ChannelStandins, endpoint_id: str | None = None) -> dict[str, Any]:
    return {"kind": "web", **ch.new_web_subscription(endpoint_id)}


def test_f4_push_sms_and_email_reach_their_providers_once(marts, providers, campaigns) -> None:
    ch, sg = providers
    add(marts, "pia", T, "push", 1, subs=[web_sub(ch), {"kind": "android", "endpoint": "fcm-token-pia"}])
    add(marts, "sam", T, "sms", 2, phone=MONTREAL, coupon_code="PROMO5", coupon_percent=5, locale="en")
    add(marts, "eve", T, "email", 3, coupon_code="PROMO15", coupon_percent=15)

    # S3: a dry run renders every channel and sends nothing
    dry = send_messages(T, "dry", campaigns, dry_run=True)
    assert dry["this_run"] == {"dry_run": 3}
    assert (ch.sms, ch.webpush, ch.fcm, sg.accepted) == ([], [], [], [])

    result = send_messages(T, "run-1", campaigns)
    assert result["this_run"] == {"sent": 3}
    assert outbox(marts) == {
        "eve": ("email", "sent", None),
        "pia": ("push", "sent", None),
        "sam": ("sms", "sent", None),
    }
    # push: one message row, one notification to each of the customer's subscriptions
    [web] = ch.webpush
    [fcm] = ch.fcm
    assert isinstance(web.payload, dict)
    assert web.payload["title"] == "Prénom, votre panier vous attend"
    assert "utm_medium=push" in web.payload["url"]
    assert "cr_message_id=" in web.payload["url"]
    assert web.headers["topic"] == "cart-cart-pia"
    assert fcm.token == "fcm-token-pia"
    assert fcm.message["data"]["url"] == web.payload["url"]
    assert set(fcm.message["data"]) == {"url", "message_id", "campaign"}, "ids only in FCM data (O5)"
    # SMS: the short text with the coupon, the tracked link and STOP, from the connection's number
    [sms] = ch.sms
    assert (sms.to, sms.from_) == (MONTREAL, SENDER_NUMBER)
    assert "PROMO5" in sms.body
    assert "5%" in sms.body
    assert "Reply STOP to opt out" in sms.body
    assert "utm_medium=sms" in sms.body
    assert sms.body.startswith("Les libraires")
    # email as before
    [mail] = sg.accepted
    assert mail.to == ["eve@mail.example"]
    ids = dict(marts.execute("select channel, provider_message_id from ops.messages where status = 'sent'").fetchall())
    assert ids["sms"] == sms.sid
    assert ids["push"] == f"{web.location},{fcm.name}"

    # E6: a rerun of the same T (a task retry) sends nothing more
    again = send_messages(T, "run-2", campaigns)
    assert again["this_run"] == {}
    assert (len(ch.sms), len(ch.webpush), len(ch.fcm), len(sg.accepted)) == (1, 1, 1, 1)


def test_e2_gone_push_subscriptions_are_revoked_and_the_message_sent_if_one_accepted(
    marts, providers, campaigns
) -> None:
    ch, _ = providers
    dead = web_sub(ch, "dead-endpoint")
    ch.mark_gone(dead["endpoint"])
    ch.unregistered_tokens.add("uninstalled-token")
    add(marts, "mixed", T, "push", 1, subs=[dead, web_sub(ch, "alive-endpoint")])
    add(marts, "allgone", T, "push", 1, subs=[{"kind": "ios", "endpoint": "uninstalled-token"}])
    result = send_messages(T, "run-1", campaigns)
    assert result["this_run"]["push_revoked"] == 2
    assert outbox(marts) == {"allgone": ("push", "failed", None), "mixed": ("push", "sent", None)}
    assert [w.endpoint_id for w in ch.webpush] == ["alive-endpoint"]
    revoked = marts.execute(
        "select endpoint, customer_id, revoked_at, reason from ops.push_revocations order by 2"
    ).fetchall()
    assert revoked == [("uninstalled-token", "allgone", T, "gone"), (dead["endpoint"], "mixed", T, "gone")]
    error = marts.execute("select last_error from ops.messages where customer_id = 'allgone'").fetchone()[0]
    assert "UNREGISTERED" in error


def test_e4_an_sms_to_a_number_that_replied_stop_fails_and_suppresses_sms(marts, providers, campaigns) -> None:
    ch, _ = providers
    ch.stopped_numbers.add(MONTREAL)
    add(marts, "stopper", T, "sms", 2, phone=MONTREAL)
    result = send_messages(T, "run-1", campaigns)
    assert result["this_run"] == {"failed": 1, "sms_suppressed": 1}
    assert outbox(marts) == {"stopper": ("sms", "failed", None)}
    assert marts.execute("select customer_id, channel, recorded_at, source from ops.unsubscribes").fetchall() == [
        ("stopper", "sms", T, "twilio_stop")
    ]


def test_f4_quiet_hours_defer_an_sms_to_0800_local_and_the_0800_run_sends_it(marts, providers, campaigns) -> None:
    ch, _ = providers
    night = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)  # 22:00 in Montréal, 19:00 in Vancouver
    add(marts, "mtl", night, "sms", 2, phone=MONTREAL)
    add(marts, "van", night, "sms", 2, phone=VANCOUVER)
    first = send_messages(night, "run-22h", campaigns)
    assert first["deferred"] == 1
    assert [s.to for s in ch.sms] == [VANCOUVER], "19:00 in Vancouver: outside its quiet hours"
    eight_mtl = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)  # 08:00 EST
    assert marts.execute("select send_after from ops.messages where customer_id = 'mtl'").fetchone()[0] == eight_mtl
    assert outbox(marts)["mtl"] == ("sms", "pending", None)

    # the hourly runs go on with new marts; 07:00 is still quiet, 08:00 sends the deferred SMS, once
    rebuild(marts)
    send_messages(eight_mtl - timedelta(hours=1), "run-07h", campaigns)
    assert len(ch.sms) == 1
    at_eight = send_messages(eight_mtl, "run-08h", campaigns)
    assert at_eight["this_run"] == {"sent": 1}
    assert [s.to for s in ch.sms] == [VANCOUVER, MONTREAL]
    assert "STOP pour vous désabonner" in ch.sms[1].body or "STOP pour vous desabonner" in ch.sms[1].body
    assert outbox(marts)["mtl"] == ("sms", "sent", None)
    decided = marts.execute("select decided_at from ops.messages where customer_id = 'mtl'").fetchone()[0]
    assert decided == night, "E5/F1 rules read decided_at: the deciding run's T, not the send's"
    assert marts.execute("select count(*) from ops.deferred_sends").fetchone()[0] == 0, "PII kept no longer"
    send_messages(eight_mtl, "run-08h-retry", campaigns)
    send_messages(eight_mtl + timedelta(hours=1), "run-09h", campaigns)
    assert len(ch.sms) == 2, "E6: never twice"


def raw_cart(db: psycopg.Connection, event_id: str, cart_id: str, customer: str, at: datetime, kind: str) -> None:
    db.execute(
        "insert into raw.cart_events (event_id, event_type, occurred_at, cart_id, customer_id, device, store_id, "
        "currency, cart_url, items, _file_name, _line_number) "
        "values (%s, %s, %s, %s, %s, 'mobile', 'S1', 'CAD', 'https://shop.example/c', '[]', 'test', 1)",
        (event_id, kind, at, cart_id, customer),
    )


def raw_order(
    db: psycopg.Connection, customer: str, cart_id: str | None, at: datetime, status: str = "completed", line: int = 1
) -> None:
    db.execute(
        "insert into raw.orders (event_id, order_id, customer_id, cart_id, placed_at, status, store_id, currency, "
        "total, items, _file_name, _line_number) "
        "values (%s, %s, %s, %s, %s, %s, 'S1', 'CAD', 20, '[]', %s, %s)",
        (f"oe-{customer}-{status}", f"o-{customer}", customer, cart_id, at, status, f"orders_{line}.jsonl", line),
    )


def build_exits(t: datetime) -> None:
    """The exit conditions' one definition (intermediate.int_cart_version_exits) over staging, built by dbt
    as a deciding run builds it; the claim re-checks it."""
    from cart_recovery.dbt import run_dbt, run_vars

    run_dbt(["run", "--select", "+int_cart_version_exits"], vars=run_vars(t, "followups", []))


def test_f2_exit_conditions_are_rechecked_when_the_message_is_claimed(marts, providers, campaigns) -> None:
    """Decided by the build, then, before the send claims them: an order, a delete, a newer cart version —
    all up to T (an order after T does not count: T, not the wall clock)."""
    ch, sg = providers
    version_at = T - timedelta(hours=5)
    for who in ("buyer", "deleter", "changer", "later"):
        raw_cart(marts, f"v-{who}", f"cart-{who}", who, version_at, "cart_updated")
        add(
            marts,
            who,
            T,
            "sms" if who == "changer" else "email",
            3 if who != "changer" else 2,
            phone=MONTREAL,
            cart_version=f"v-{who}",
        )
    raw_order(marts, "buyer", None, T - timedelta(hours=1))  # any order of the customer converts (D3)
    raw_cart(marts, "del-deleter", "cart-deleter", "deleter", T - timedelta(minutes=30), "cart_deleted")
    raw_cart(marts, "v2-changer", "cart-changer", "changer", T - timedelta(minutes=10), "cart_updated")
    raw_order(marts, "later", "cart-later", T + timedelta(hours=1))
    raw_cart(marts, "old-later", "cart-later", "later", version_at - timedelta(hours=1), "cart_updated")
    # F2, D3: an order completed, then cancelled (a later load) before the step: its latest status wins, as
    # in the models; it does not stop the step
    raw_cart(marts, "v-regretter", "cart-regretter", "regretter", version_at, "cart_updated")
    add(marts, "regretter", T, "email", 3, cart_version="v-regretter")
    raw_order(marts, "regretter", "cart-regretter", T - timedelta(hours=2), "completed", line=1)
    raw_order(marts, "regretter", "cart-regretter", T - timedelta(hours=2), "cancelled", line=2)
    build_exits(T)

    result = send_messages(T, "run-1", campaigns)
    assert outbox(marts) == {
        "buyer": ("email", "skipped", "exited_order_placed"),
        "changer": ("sms", "skipped", "exited_cart_changed"),
        "deleter": ("email", "skipped", "exited_cart_deleted"),
        "later": ("email", "sent", None),
        "regretter": ("email", "sent", None),
    }
    assert result["this_run"] == {
        "exited_cart_changed": 1,
        "exited_cart_deleted": 1,
        "exited_order_placed": 1,
        "sent": 2,
    }
    assert sorted(m.to[0] for m in sg.accepted) == ["later@mail.example", "regretter@mail.example"]
    assert ch.sms == []
    send_messages(T, "run-2", campaigns)  # a rerun neither sends nor un-skips them
    assert len(sg.accepted) == 2
    assert outbox(marts)["buyer"] == ("email", "skipped", "exited_order_placed")


def test_f4_every_channel_is_sent_once_from_a_run_split_over_processes(marts, providers, campaigns) -> None:
    """The child processes build their own Twilio, VAPID/FCM and SendGrid clients from the parent's settings
    (sending._channel_recipe): every channel works from either side of the split."""
    ch, sg = providers
    for i in range(8):
        add(marts, f"push{i}", T, "push", 1, subs=[web_sub(ch), {"kind": "android", "endpoint": f"tok-{i}"}])
        add(marts, f"sms{i}", T, "sms", 2, phone=MONTREAL, coupon_code="PROMO5", coupon_percent=5)
        add(marts, f"mail{i}", T, "email", 3)
    result = send_messages(T, "run-1", campaigns, processes=2, min_per_process=1, concurrency=4)
    assert result["this_run"] == {"sent": 24}
    assert (len(ch.webpush), len(ch.fcm), len(ch.sms), len(sg.accepted)) == (8, 8, 8, 8)
    assert sorted(m.to[0] for m in sg.accepted) == sorted(f"mail{i}@mail.example" for i in range(8))
    workers = marts.execute("select channel, count(distinct claimed_by) from ops.messages group by 1").fetchall()
    assert sum(n for _, n in workers) > 3, workers  # some channel's messages were sent from both processes
    assert send_messages(T, "run-2", campaigns, processes=2, min_per_process=1)["this_run"] == {}
