"""The outbox and the sender on a real PostgreSQL and the real `sendgrid` client against the local stand-in
(S1–S3, E6, E8, contract §4–§5). The marts are stand-in tables (devtools/sender_fixtures.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from cart_recovery import CAMPAIGNS_DIR, outbox
from cart_recovery.campaigns import load_campaigns
from cart_recovery.devtools import sender_fixtures as fx
from cart_recovery.devtools.sendgrid_standin import SendGridStandin
from cart_recovery.outbox import OutboxRow, run_summary
from cart_recovery.sending import SendIncomplete, send_messages
from cart_recovery.unsubscribe import verify

T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


@pytest.fixture
def campaigns() -> list:
    return [c for c in load_campaigns(CAMPAIGNS_DIR) if c.name == "bookstore_daily"]


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SendGridStandin]:
    with SendGridStandin() as sg:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SENDGRID_DEFAULT",
            json.dumps({"conn_type": "sendgrid", "host": sg.url, "password": "SG.test"}),
        )
        monkeypatch.setenv("CR_UNSUBSCRIBE_SECRET", "test-secret")
        monkeypatch.setenv("CR_PUBLIC_BASE_URL", "https://shop.example")
        yield sg


@pytest.fixture
def marts(db: psycopg.Connection) -> psycopg.Connection:
    fx.create_stub_marts(db)
    return db


def statuses(db: psycopg.Connection) -> dict[str, str]:
    rows = db.execute(
        "select customer_id, status from ops.messages where idempotency_key not like 'dry\\_run:%%'"
    ).fetchall()
    return dict(rows)


def keyed(db: psycopg.Connection, campaign: str, step: int, cart_id: str, version: str) -> tuple[str, uuid.UUID]:
    """(idempotency key, message id) from the warehouse's functions, the one definition dbt uses too."""
    return db.execute(
        "select ops.idempotency_key(%s, %s, %s, %s) as k, ops.message_id(ops.idempotency_key(%s, %s, %s, %s))",
        (campaign, step, cart_id, version) * 2,
    ).fetchone()


def row(db: psycopg.Connection, customer: str, cart_id: str) -> OutboxRow:
    key, mid = keyed(db, "c", 1, cart_id, "v1")
    return OutboxRow(mid, key, "c", 1, "email", customer, cart_id, "v1", T)


def test_idempotency_key_and_message_id_follow_the_interface(db: psycopg.Connection) -> None:
    key, mid = keyed(db, "bookstore_daily", 1, "cart-1", "v3")
    assert key == "bookstore_daily:1:cart-1:v3"
    # a UUID v5 in the namespace fixed forever (past message ids are recomputed from their keys, O2)
    assert mid == uuid.uuid5(uuid.UUID("0b6f3c1e-2f4d-5a8b-9c7e-6a1d2e3f4b5c"), key)
    assert db.execute("select ops.dry_run_key(%s)", (key,)).fetchone()[0] == "dry_run:" + key


def test_e6_record_keeps_the_first_row_and_claim_is_exclusive(db: psycopg.Connection) -> None:
    one = row(db, "alice", "cart")
    assert outbox.record(db, [one]) == 1
    assert outbox.record(db, [one]) == 0
    assert outbox.claim(db, one.message_id, "run-a") == 1
    assert outbox.claim(db, one.message_id, "run-b") is None  # a second run never gets it
    assert outbox.mark_sent(db, one.message_id, "run-b", "x") is False  # nor records an outcome for it
    assert outbox.mark_sent(db, one.message_id, "run-a", "sg-1") is True
    assert db.execute("select status, provider_message_id, attempts from ops.messages").fetchone() == (
        "sent",
        "sg-1",
        1,
    )


def test_stale_claims_become_unknown_and_fresh_ones_stay(db: psycopg.Connection) -> None:
    rows = [row(db, f"c{i}", f"cart{i}") for i in range(3)]
    outbox.record(db, rows)
    outbox.claim(db, rows[0].message_id, "dead-run")
    outbox.claim(db, rows[1].message_id, "live-run")
    db.execute("update ops.messages set claimed_at = now() - interval '1 hour' where claimed_by = 'dead-run'")
    assert outbox.resolve_stale_claims(db, timedelta(minutes=15)) == 1
    got = dict(db.execute("select customer_id, status from ops.messages").fetchall())
    assert got == {"c0": "unknown", "c1": "pending", "c2": "pending"}
    assert (
        "may have been sent" in db.execute("select last_error from ops.messages where customer_id = 'c0'").fetchone()[0]
    )


def test_e6_batch_claims_are_exclusive_and_outcomes_need_the_claim(db: psycopg.Connection) -> None:
    rows = [row(db, f"c{i}", f"cart{i}") for i in range(4)]
    outbox.record(db, rows)
    ids = [r.message_id for r in rows]
    db.execute("set synchronous_commit = off")  # the sender's session setting; the claim turns it on itself
    assert outbox.claim_many(db, ids[:3], "run-a") == dict.fromkeys(ids[:3], 1)
    assert outbox.claim_many(db, ids, "run-b") == {ids[3]: 1}  # only what nobody holds
    # outcomes are recorded only for rows the worker holds
    assert outbox.finish_many(db, "run-b", [(ids[0], "sent", "sg-x", None)]) == 0
    assert (
        outbox.finish_many(
            db, "run-a", [(ids[0], "sent", "sg-0", None), (ids[1], "unknown", None, "no answer after sending")]
        )
        == 2
    )
    # untried rows go back to pending, unclaimed, their attempt not counted
    assert outbox.unclaim_untried(db, [ids[2]], "run-a") == 1
    got = {
        r[0]: r[1:]
        for r in db.execute(
            "select message_id, status, provider_message_id, sent_at is not null, attempts, claimed_at is null "
            "from ops.messages"
        ).fetchall()
    }
    assert got[ids[0]] == ("sent", "sg-0", True, 1, False)
    assert got[ids[1]] == ("unknown", None, False, 1, False)
    assert got[ids[2]] == ("pending", None, False, 0, True)
    assert got[ids[3]] == ("pending", None, False, 1, False)
    # a late answer for a row another run declared unknown is the truth; a failure does not overwrite unknown
    assert outbox.finish_many(db, "run-a", [(ids[1], "failed", None, "late")]) == 0
    assert outbox.finish_many(db, "run-a", [(ids[1], "sent", "sg-1", None)]) == 1
    assert db.execute("select status from ops.messages where message_id = %s", (ids[1],)).fetchone() == ("sent",)


def test_stale_batch_claims_are_refreshed_while_the_worker_waits(db: psycopg.Connection) -> None:
    rows = [row(db, f"c{i}", f"cart{i}") for i in range(2)]
    outbox.record(db, rows)
    ids = [r.message_id for r in rows]
    outbox.claim_many(db, ids, "live-run")
    db.execute("update ops.messages set claimed_at = now() - interval '1 hour'")
    outbox.refresh_claims(db, ids[:1], "live-run")
    assert outbox.resolve_stale_claims(db, timedelta(minutes=15)) == 1
    assert dict(db.execute("select customer_id, status from ops.messages").fetchall()) == {
        "c0": "pending",
        "c1": "unknown",
    }


def test_s1_one_mail_send_request_per_message_with_the_contract_shape(marts, standin, campaigns) -> None:
    fx.add_recipient(marts, "alice", T, n_items=1, first_name="Alice")
    fx.add_recipient(marts, "bob", T, n_items=6, first_name="Bob", locale="en")
    result = send_messages(T, "run-1", campaigns)
    assert result["this_run"] == {"sent": 2}
    assert sorted(a.to[0] for a in standin.accepted) == ["alice@mail.example", "bob@mail.example"]

    (alice,) = standin.accepted_for("alice@mail.example")
    _, mid = keyed(marts, "bookstore_daily", 1, "cart-alice", "v1")
    assert alice.custom_args == {"message_id": str(mid), "campaign": "bookstore_daily", "step": "1"}
    assert "@" not in json.dumps(alice.custom_args)  # ids only, never an address (O5)
    body = alice.body or {}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["personalizations"][0]["to"] == [{"email": "alice@mail.example"}]
    assert alice.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = alice.headers["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://shop.example/cart-recovery/unsubscribe?token=")
    assert verify(url.split("token=")[1], b"test-secret", now=T).customer_id == "alice"  # M6: a working link

    row = marts.execute(
        "select status, provider_message_id, decided_at, sent_at is not null, attempts, channel, cart_version "
        "from ops.messages where customer_id = 'alice'"
    ).fetchone()
    assert row == ("sent", alice.provider_message_id, T, True, 1, "email", "v1")


def test_e6_rerunning_the_same_date_sends_nothing_twice(marts, standin, campaigns) -> None:
    for c in ("alice", "bob", "carol"):
        fx.add_recipient(marts, c, T)
    send_messages(T, "run-1", campaigns)
    again = send_messages(T, "run-2", campaigns)
    assert again["this_run"] == {}
    assert again["outbox"] == {"sent": 3}
    assert len(standin.accepted) == 3


def test_only_this_runs_decisions_are_sent(marts, standin, campaigns) -> None:
    fx.add_recipient(marts, "today", T)
    fx.add_recipient(marts, "yesterday", T - timedelta(days=1), cart_id="cart-old")
    send_messages(T, "run-1", campaigns)
    assert [a.to[0] for a in standin.accepted] == ["today@mail.example"]


def test_e8_holdouts_are_recorded_skipped_and_never_sent(marts, standin, campaigns) -> None:
    fx.add_recipient(marts, "alice", T)
    fx.add_exclusion(marts, "held", "holdout", T, recorded=True)
    fx.add_exclusion(marts, "biblio", "institutional", T)  # other reasons stay in the ledger only
    result = send_messages(T, "run-1", campaigns)
    assert result["holdouts"] == 1
    rows = marts.execute("select customer_id, status, skip_reason from ops.messages order by 1").fetchall()
    assert rows == [("alice", "sent", None), ("held", "skipped", "holdout")]
    assert [a.to[0] for a in standin.accepted] == ["alice@mail.example"]


def test_an_sms_without_its_connection_stays_pending_and_email_still_goes(marts, standin, campaigns) -> None:
    """F4: SMS is wired in; with no twilio_default connection its message is neither sent nor lost — left
    pending for the task's retry — while the run's emails go out."""
    fx.add_recipient(marts, "texter", T, channel="sms")
    fx.add_recipient(marts, "alice", T)
    with pytest.raises(SendIncomplete) as info:
        send_messages(T, "run-1", campaigns)
    assert info.value.counts["channels_not_configured"] == {"sms": 1}
    got = marts.execute("select customer_id, status, claimed_at from ops.messages order by 1").fetchall()
    assert [(c, s) for c, s, _ in got] == [("alice", "sent"), ("texter", "pending")]
    assert got[1][2] is None, "never claimed"


def test_s3_dry_run_renders_and_records_without_sending_then_a_real_run_sends(marts, standin, campaigns) -> None:
    fx.add_recipient(marts, "alice", T)
    fx.add_recipient(marts, "bob", T)
    dry = send_messages(T, "dry-1", campaigns, dry_run=True)
    assert dry["this_run"] == {"dry_run": 2}
    assert standin.requests == 0
    keys = [k for (k,) in marts.execute("select idempotency_key from ops.messages order by 1").fetchall()]
    assert keys == ["dry_run:bookstore_daily:1:cart-alice:v1", "dry_run:bookstore_daily:1:cart-bob:v1"]
    real = send_messages(T, "run-1", campaigns)
    assert real["this_run"] == {"sent": 2}
    assert len(standin.accepted) == 2


def test_s3_dry_run_records_a_render_failure(marts, standin, campaigns) -> None:
    fx.add_recipient(marts, "alice", T, email="")  # no address: the message cannot be built
    dry = send_messages(T, "dry-1", campaigns, dry_run=True)
    assert dry["this_run"] == {"failed": 1}
    assert "no email address" in marts.execute("select last_error from ops.messages").fetchone()[0]


def test_o5_logs_never_carry_an_address(marts, standin, campaigns, caplog, capsys) -> None:
    standin.add_faults(400)
    fx.add_recipient(marts, "alice", T)
    fx.add_recipient(marts, "bob", T)
    with caplog.at_level("DEBUG", logger="cart_recovery"):
        send_messages(T, "run-1", campaigns)
    logs = caplog.text + capsys.readouterr().out
    assert "rejected" in logs
    assert "@mail.example" not in logs


def test_run_summary_counts_outcomes_and_exclusion_reasons(marts, standin, campaigns) -> None:
    fx.add_recipient(marts, "alice", T)
    fx.add_exclusion(marts, "held", "holdout", T, recorded=True)
    fx.add_exclusion(marts, "nocons", "no_consent", T)
    send_messages(T, "run-1", campaigns)
    summary = run_summary(marts, T)
    assert summary["messages"] == {"bookstore_daily": {"sent": 1, "skipped": 1}}
    assert summary["skipped_by_reason"] == {"holdout": 1}
    assert summary["exclusions_by_reason"] == {"holdout": 1, "no_consent": 1}
