"""A run split over processes (sending.shard_count, cart_recovery.subprocess_jobs): the child processes send
through the real `sendgrid` client to the local stand-in, from the real outbox (S2, E6)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from cart_recovery import CAMPAIGNS_DIR
from cart_recovery.campaigns import load_campaigns
from cart_recovery.devtools import sender_fixtures as fx
from cart_recovery.devtools.sendgrid_standin import SendGridStandin
from cart_recovery.sending import FAULT_EXIT_ENV, SendIncomplete, send_messages, shard_count

T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
FAST = {"backoff_base_s": 0.01, "backoff_max_s": 2.0}
SPLIT = {"processes": 2, "min_per_process": 1, "concurrency": 4}


@pytest.fixture
def campaigns() -> list:
    return [c for c in load_campaigns(CAMPAIGNS_DIR) if c.name == "bookstore_daily"]


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CR_UNSUBSCRIBE_SECRET", "test-secret")
    with SendGridStandin(keep_bodies=False) as sg:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SENDGRID_DEFAULT",
            json.dumps({"conn_type": "sendgrid", "host": sg.url, "password": "SG.test"}),
        )
        yield sg


def recipients(db: psycopg.Connection, n: int) -> list[str]:
    fx.create_stub_marts(db)
    names = [f"cust{i:03d}" for i in range(n)]
    fx.add_recipients(db, [fx.recipient_rows(c, T) for c in names])
    return names


def test_shard_count_keeps_small_runs_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CR_SEND_PROCESSES", raising=False)
    assert shard_count(1999, 2, 1000) == 1
    assert shard_count(4000, 2, 2000) == 2
    assert shard_count(100_000, 4, 2000) == 4
    assert shard_count(0, 2, 2000) == 1
    monkeypatch.setenv("CR_SEND_PROCESSES", "1")
    assert shard_count(100_000, None, 2000) == 1  # an operator can turn it off


def test_s2_a_run_split_over_processes_sends_each_message_once(db, standin, campaigns, caplog) -> None:
    names = recipients(db, 120)
    with caplog.at_level(logging.INFO):
        result = send_messages(T, "run-1", campaigns, **SPLIT, **FAST)
    assert result["this_run"] == {"sent": 120}  # the child's counts merged into the run's
    assert Counter(a.to[0] for a in standin.accepted) == Counter(f"{c}@mail.example" for c in names)
    by_worker = dict(
        db.execute("select claimed_by, count(*) from ops.messages where status = 'sent' group by 1").fetchall()
    )
    assert len(by_worker) == 2, by_worker  # two processes shared the run…
    assert all(n > 20 for n in by_worker.values()), by_worker  # …each a real share
    assert any("[send shard 1/2]" in r.getMessage() for r in caplog.records)  # the child's log lines reach ours
    assert not any("@mail.example" in r.getMessage() for r in caplog.records)  # O5, the child's included
    send_messages(T, "run-2", campaigns, **SPLIT, **FAST)  # a rerun of the date sends nothing again
    assert len(standin.accepted) == 120


def test_e6_a_child_that_crashes_fails_the_run_and_sends_nothing_twice(db, standin, campaigns, monkeypatch) -> None:
    names = recipients(db, 120)
    monkeypatch.setenv(FAULT_EXIT_ENV, "shard")  # test-only hook: the child exits after its first 202
    one_thread_each = {**SPLIT, "concurrency": 2}  # one batch in flight in the child when it dies
    with pytest.raises(SendIncomplete) as err:
        send_messages(T, "run-1", campaigns, claim_batch=4, **one_thread_each, **FAST)
    assert err.value.counts["this_run"]["error"] == 1
    parent_sent = err.value.counts["this_run"]["sent"]
    assert 20 < parent_sent < 120
    assert len(standin.accepted) == parent_sent + 1  # the child's one message left, its outcome never written
    claimed = db.execute("select count(*) from ops.messages where status = 'pending' and claimed_at is not null")
    assert claimed.fetchone()[0] == 4  # the child's claimed batch
    monkeypatch.delenv(FAULT_EXIT_ENV)

    result = send_messages(T, "run-2", campaigns, stale_after=timedelta(0), **SPLIT, **FAST)  # the task retry
    assert result["stale_claims_resolved"] == 4
    statuses = Counter(s for (s,) in db.execute("select status from ops.messages").fetchall())
    assert statuses == {"sent": 116, "unknown": 4}
    got = Counter(a.to[0] for a in standin.accepted)
    assert set(got.values()) == {1}  # nobody twice
    assert len(got) == 117  # all but the three the crash claimed and never tried
    assert set(got) <= {f"{c}@mail.example" for c in names}
