"""Fault injection (S2, E6): provider errors, slow answers, timeouts, a crash between the API call and the
outbox update, two runs at once. Real PostgreSQL, the real `sendgrid` client, the local stand-in. Each scenario
ends with exactly one accepted message per eligible recipient — or `unknown` where that is the documented
outcome, and then never a second send."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from cart_recovery import CAMPAIGNS_DIR
from cart_recovery.campaigns import load_campaigns
from cart_recovery.devtools import sender_fixtures as fx
from cart_recovery.devtools.sendgrid_standin import SendGridStandin
from cart_recovery.sending import FAULT_EXIT_ENV, SendIncomplete, send_messages

T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
FAST = {"backoff_base_s": 0.01, "backoff_max_s": 2.0}


def use_standin(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps({"conn_type": "sendgrid", "host": url, "password": "SG.test"})
    )


@pytest.fixture
def campaigns() -> list:
    return [c for c in load_campaigns(CAMPAIGNS_DIR) if c.name == "bookstore_daily"]


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SendGridStandin]:
    monkeypatch.setenv("CR_UNSUBSCRIBE_SECRET", "test-secret")
    with SendGridStandin(keep_bodies=False) as sg:
        use_standin(monkeypatch, sg.url)
        yield sg


@pytest.fixture
def marts(db: psycopg.Connection) -> psycopg.Connection:
    fx.create_stub_marts(db)
    return db


def recipients(db: psycopg.Connection, n: int) -> list[str]:
    names = [f"cust{i:03d}" for i in range(n)]
    fx.add_recipients(db, [fx.recipient_rows(c, T) for c in names])
    return names


def accepted_once_each(sg: SendGridStandin, names: list[str]) -> bool:
    got = Counter(a.to[0] for a in sg.accepted)
    return got == Counter(f"{c}@mail.example" for c in names)


def statuses(db: psycopg.Connection) -> Counter[str]:
    return Counter(s for (s,) in db.execute("select status from ops.messages").fetchall())


def test_s2_500_503_429_are_retried_in_the_same_run(marts, standin, campaigns) -> None:
    names = recipients(marts, 5)
    standin.add_faults(500, 503, 429)
    result = send_messages(T, "run-1", campaigns, concurrency=4, **FAST)
    assert result["this_run"]["sent"] == 5
    assert {k: v for k, v in result["this_run"].items() if k.startswith("retried")} == {
        "retried_500": 1,
        "retried_503": 1,
        "retried_429": 1,
    }
    assert accepted_once_each(standin, names)
    assert statuses(marts) == {"sent": 5}
    assert marts.execute("select sum(attempts) from ops.messages").fetchone()[0] == 8


def test_s2_429_retry_after_is_honoured(marts, standin, campaigns) -> None:
    recipients(marts, 1)
    standin.add_faults(429)  # Retry-After: 1
    started = time.monotonic()
    send_messages(T, "run-1", campaigns, concurrency=1, **FAST)
    assert time.monotonic() - started >= 1.0
    assert statuses(marts) == {"sent": 1}


def test_s2_retries_spent_leave_the_row_pending_for_a_rerun(marts, standin, campaigns) -> None:
    names = recipients(marts, 1)
    standin.add_faults(500, 502, 503)
    with pytest.raises(SendIncomplete) as err:
        send_messages(T, "run-1", campaigns, concurrency=1, max_attempts=3, **FAST)
    assert err.value.counts["this_run"]["pending"] == 1
    row = marts.execute("select status, claimed_at, attempts, last_error from ops.messages").fetchone()
    assert row[:3] == ("pending", None, 3)
    assert "HTTP 503" in row[3]
    assert standin.accepted == []
    send_messages(T, "run-2", campaigns, concurrency=1, **FAST)  # the task retry
    assert accepted_once_each(standin, names)
    assert statuses(marts) == {"sent": 1}


def test_s2_a_message_failing_too_often_becomes_failed(marts, standin, campaigns) -> None:
    recipients(marts, 1)
    standin.add_faults(500, 500, 500, 500)
    with pytest.raises(SendIncomplete):
        send_messages(T, "run-1", campaigns, concurrency=1, max_attempts=2, max_total_attempts=4, **FAST)
    result = send_messages(T, "run-2", campaigns, concurrency=1, max_attempts=2, max_total_attempts=4, **FAST)
    assert result["this_run"]["failed"] == 1
    assert statuses(marts) == {"failed": 1}
    send_messages(T, "run-3", campaigns, concurrency=1, **FAST)
    assert standin.accepted == []  # failed is final


def test_s2_4xx_fails_without_retry_and_is_not_resent(marts, standin, campaigns) -> None:
    recipients(marts, 2)
    standin.add_faults(400)
    send_messages(T, "run-1", campaigns, concurrency=1, **FAST)
    assert statuses(marts) == {"failed": 1, "sent": 1}
    assert standin.requests == 2
    send_messages(T, "run-2", campaigns, concurrency=1, **FAST)
    assert standin.requests == 2


def test_s2_slow_answers_within_the_timeout_are_sent(marts, standin, campaigns) -> None:
    names = recipients(marts, 4)
    standin.latency_ms = 300
    send_messages(T, "run-1", campaigns, concurrency=4, request_timeout_s=5, **FAST)
    assert accepted_once_each(standin, names)
    assert statuses(marts) == {"sent": 4}


def test_s2_timeout_after_the_request_left_is_unknown_and_never_resent(marts, standin, campaigns) -> None:
    names = recipients(marts, 3)
    standin.slow_ms = 1500
    standin.add_faults("slow")  # the first message is accepted, its answer comes after the client gave up
    result = send_messages(T, "run-1", campaigns, concurrency=1, request_timeout_s=0.5, **FAST)
    assert result["this_run"] == {"sent": 2, "unknown": 1}
    (err,) = marts.execute("select last_error from ops.messages where status = 'unknown'").fetchone()
    assert "no answer after sending" in err
    time.sleep(1.2)  # the stand-in finishes accepting it
    send_messages(T, "run-2", campaigns, concurrency=1, **FAST)
    assert accepted_once_each(standin, names)  # it did arrive, once, and was not sent again


def test_s2_dropped_connection_after_send_is_unknown(marts, standin, campaigns) -> None:
    names = recipients(marts, 2)
    standin.add_faults("drop")
    result = send_messages(T, "run-1", campaigns, concurrency=1, **FAST)
    assert result["this_run"] == {"sent": 1, "unknown": 1}
    send_messages(T, "run-2", campaigns, concurrency=1, **FAST)
    assert accepted_once_each(standin, names)


def test_s2_connection_refused_is_retried_and_sent_later(marts, standin, campaigns, monkeypatch) -> None:
    names = recipients(marts, 2)
    with socket.socket() as s:  # a port nobody listens on: the request never leaves
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    use_standin(monkeypatch, dead)
    with pytest.raises(SendIncomplete):
        send_messages(T, "run-1", campaigns, concurrency=2, max_attempts=2, **FAST)
    assert statuses(marts) == {"pending": 2}
    assert "not sent" in marts.execute("select last_error from ops.messages limit 1").fetchone()[0]
    use_standin(monkeypatch, standin.url)
    send_messages(T, "run-2", campaigns, concurrency=2, **FAST)
    assert accepted_once_each(standin, names)
    assert statuses(marts) == {"sent": 2}


CRASHING_RUN = """
import sys
from datetime import datetime
from cart_recovery.campaigns import load_campaigns
from cart_recovery.sending import send_messages
campaigns = [c for c in load_campaigns() if c.name == "bookstore_daily"]
t, batch = datetime.fromisoformat(sys.argv[1]), int(sys.argv[2])
send_messages(t, "crashing-run", campaigns, concurrency=1, claim_batch=batch)
"""


def crash_after_first_send(claim_batch: int) -> None:
    env = {**os.environ, FAULT_EXIT_ENV: "1"}  # test-only hook: os._exit after the first 202
    res = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, T.isoformat(), str(claim_batch)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 70, res.stderr[-2000:]


def test_e6_crash_between_the_api_call_and_the_outbox_update(marts, standin, campaigns) -> None:
    names = recipients(marts, 4)
    crash_after_first_send(claim_batch=1)  # one claim per message: only the message in flight is left
    assert len(standin.accepted) == 1  # sent, but the outbox never heard
    assert statuses(marts) == {"pending": 4}
    assert marts.execute("select count(*) from ops.messages where claimed_at is not null").fetchone()[0] == 1

    # the next run: its stale threshold passed (0 here), the claim becomes unknown; the others are sent
    result = send_messages(T, "run-2", campaigns, concurrency=2, stale_after=timedelta(0), **FAST)
    assert result["stale_claims_resolved"] == 1
    assert result["this_run"] == {"sent": 3}
    assert statuses(marts) == {"sent": 3, "unknown": 1}
    assert accepted_once_each(standin, names)
    send_messages(T, "run-3", campaigns, stale_after=timedelta(0), **FAST)
    assert accepted_once_each(standin, names)


def test_e6_crash_mid_batch_leaves_the_batch_unknown_and_sends_nothing_twice(marts, standin, campaigns) -> None:
    recipients(marts, 6)
    crash_after_first_send(claim_batch=4)  # the batch of 4 is claimed, its first message sent, then the crash
    assert len(standin.accepted) == 1
    assert marts.execute("select count(*) from ops.messages where claimed_at is not null").fetchone()[0] == 4

    # the whole claimed batch becomes unknown (one sent, three never tried: none may be sent blindly);
    # the two rows outside the batch are sent
    result = send_messages(T, "run-2", campaigns, concurrency=2, stale_after=timedelta(0), **FAST)
    assert result["stale_claims_resolved"] == 4
    assert result["this_run"] == {"sent": 2}
    assert statuses(marts) == {"sent": 2, "unknown": 4}
    send_messages(T, "run-3", campaigns, stale_after=timedelta(0), **FAST)
    got = Counter(a.to[0] for a in standin.accepted)
    assert len(got) == 3  # three addresses reached…
    assert set(got.values()) == {1}  # …each exactly once
    unknown = {c for (c,) in marts.execute("select customer_id from ops.messages where status = 'unknown'")}
    sent_first = standin.accepted[0].to[0].split("@")[0]
    assert sent_first in unknown  # the one the crash hid is unknown, not sent a second time


def test_e6_an_error_mid_batch_unclaims_the_untried_rows(marts, standin, campaigns, monkeypatch) -> None:
    from cart_recovery.channels.email import EmailChannel

    recipients(marts, 4)
    real_send = EmailChannel.send
    calls = []

    def send_then_fail(self, body):  # a bug in the sender on its second message, before any request
        calls.append(body)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real_send(self, body)

    monkeypatch.setattr(EmailChannel, "send", send_then_fail)
    with pytest.raises(SendIncomplete):
        send_messages(T, "run-1", campaigns, concurrency=1, claim_batch=4, **FAST)
    rows = marts.execute(
        "select status, claimed_at is not null, attempts from ops.messages order by status, claimed_at nulls last"
    ).fetchall()
    # the sent one is recorded; the one that raised keeps its claim (unknown later: it may have left);
    # the two never tried are pending and unclaimed again, their attempt not counted
    assert rows == [("pending", True, 1), ("pending", False, 0), ("pending", False, 0), ("sent", True, 1)]
    monkeypatch.setattr(EmailChannel, "send", real_send)
    result = send_messages(T, "run-2", campaigns, concurrency=1, stale_after=timedelta(0), **FAST)
    assert result["stale_claims_resolved"] == 1
    assert result["this_run"] == {"sent": 2}
    assert statuses(marts) == {"sent": 3, "unknown": 1}
    assert len(standin.accepted) == 3
    assert len({a.to[0] for a in standin.accepted}) == 3


def test_e6_two_runs_at_once_send_each_message_once(marts, standin, campaigns) -> None:
    names = recipients(marts, 60)
    standin.latency_ms = 20
    results: list[dict] = []
    errors: list[BaseException] = []

    def run(run_id: str) -> None:
        try:
            results.append(send_messages(T, run_id, campaigns, concurrency=8, **FAST))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(r["this_run"].get("sent", 0) for r in results) == 60, results
    assert accepted_once_each(standin, names)
    assert statuses(marts) == {"sent": 60}
