"""The outbox, `ops.messages`: one row per message attempt key, written before any send (S2, E6).

Keys (docs/INTERFACES.md): the idempotency key and message id of every row come with the decision rows dbt
writes (`marts.decided_messages`), made by the warehouse's functions `ops.idempotency_key` and
`ops.message_id` (sql/schema.sql), the one definition. A dry run records under `dry_run:<key>`
(`ops.dry_run_key`, S3), so a later real run of the same date still sends.

Life of a row:
    pending --claim--> (claimed: claimed_by, claimed_at, attempts+1; committed before the API call; the
                        sender claims a few rows at once, see "batches" below)
        202                      -> sent (provider_message_id, sent_at)
        4xx other than 429       -> failed (last_error)
        timeout after sending    -> unknown (never re-sent automatically)
        429 / 5xx / not sent, retries exhausted in this run
                                 -> pending again, unclaimed (a rerun of the task retries it); `failed` once
                                    `attempts` reaches the total bound
    pending + a claim older than the stale threshold (the process died between the API call and the
    outbox update) -> unknown at the start of the next run, never re-sent.
Only the run holding the claim may record an outcome (`claimed_by` in every update).

Follow-ups (F2, F4):
    pending + send_after > T   -> not sent by the run deciding at T (quiet hours); a later run whose T has
                                  reached send_after sends it, with the decision kept in ops.deferred_sends
    pending --claim, exit re-check in the same transaction--> skipped (exited_order_placed /
                                  exited_cart_deleted / exited_cart_changed) when, up to T, the cart version has
                                  an exit (intermediate.int_cart_version_exits, the models' definition)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import tuple_row

log = logging.getLogger(__name__)

STALE_CLAIM_AFTER = timedelta(minutes=15)

_COLUMNS = (
    "message_id, idempotency_key, campaign, step, channel, customer_id, cart_id, cart_version, "
    "status, skip_reason, decided_at, coupon_code, last_error, send_after"
)


def _q(conn: psycopg.Connection, sql: str, params: Any = None) -> psycopg.Cursor[Any]:
    # tuple rows whatever the connection's row factory
    return conn.cursor(row_factory=tuple_row).execute(sql, params)


@dataclass(frozen=True)
class OutboxRow:
    message_id: uuid.UUID
    idempotency_key: str
    campaign: str
    step: int
    channel: str
    customer_id: str
    cart_id: str
    cart_version: str
    decided_at: datetime
    coupon_code: str | None = None
    status: str = "pending"
    skip_reason: str | None = None
    last_error: str | None = None
    send_after: datetime | None = None  # F4: quiet hours, not sent before (the next 08:00 local)


def record(conn: psycopg.Connection, rows: Iterable[OutboxRow]) -> int:
    """Insert rows, keeping any existing row of the same key (`on conflict do nothing`); commits.

    Returns how many were new. COPY into a temporary table, then one insert: 100k rows in about a second.
    """
    # one transaction, also on an autocommit connection (the temp table empties at commit)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "create temp table if not exists cr_outbox_in (like ops.messages including defaults) on commit delete rows"
        )
        with cur.copy(f"copy cr_outbox_in ({_COLUMNS}) from stdin") as copy:
            for r in rows:
                copy.write_row(
                    (
                        r.message_id,
                        r.idempotency_key,
                        r.campaign,
                        r.step,
                        r.channel,
                        r.customer_id,
                        r.cart_id,
                        r.cart_version,
                        r.status,
                        r.skip_reason,
                        r.decided_at,
                        r.coupon_code,
                        r.last_error,
                        r.send_after,
                    )
                )
        cur.execute(
            # no conflict target: message_id is derived from the key, and under two concurrent runs either
            # unique index may be the one that reports the duplicate
            f"insert into ops.messages ({_COLUMNS}) select {_COLUMNS} from cr_outbox_in on conflict do nothing"
        )
        inserted = cur.rowcount
    conn.commit()
    return inserted


def resolve_stale_claims(conn: psycopg.Connection, older_than: timedelta = STALE_CLAIM_AFTER) -> int:
    """Claims older than `older_than` on rows still pending -> unknown (may have been sent; never re-sent)."""
    cur = _q(
        conn,
        "update ops.messages set status = 'unknown', updated_at = now(), "
        "last_error = 'claim by ' || coalesce(claimed_by, '?') || ' at ' || claimed_at::text || "
        "' never resolved: the sender stopped between the API call and the outbox update; the message may have "
        "been sent, so it is not re-sent automatically' "
        "where status = 'pending' and claimed_at is not null and claimed_at < now() - %s "
        "returning message_id",
        (older_than,),
    )
    ids = cur.fetchall()
    conn.commit()
    if ids:
        log.warning(
            "%d stale claim(s) resolved to unknown (never re-sent): %s",
            len(ids),
            ", ".join(str(i[0]) for i in ids[:20]),
        )
    return len(ids)


def claim(conn: psycopg.Connection, message_id: uuid.UUID, worker: str) -> int | None:
    """Take a pending, unclaimed row for this worker (committed: autocommit connection). Returns attempts,
    or None when another run has it or it is no longer pending — then this run must not send it (E6)."""
    row = _q(
        conn,
        "update ops.messages set claimed_by = %s, claimed_at = now(), attempts = attempts + 1, updated_at = now() "
        "where message_id = %s and status = 'pending' and claimed_at is null returning attempts",
        (worker, message_id),
    ).fetchone()
    return row[0] if row else None


def touch(conn: psycopg.Connection, message_id: uuid.UUID, worker: str, error: str) -> None:
    """Another attempt on a row this worker holds (attempts+1, fresh claimed_at so it does not look stale)."""
    _q(
        conn,
        "update ops.messages set attempts = attempts + 1, claimed_at = now(), last_error = %s, updated_at = now() "
        "where message_id = %s and claimed_by = %s and status = 'pending'",
        (error, message_id, worker),
    )


def _finish(conn: psycopg.Connection, sql: str, params: tuple[Any, ...]) -> bool:
    # one autocommit statement: the outcome is durable before the next message is claimed
    return _q(conn, sql, params).rowcount == 1


def mark_sent(conn: psycopg.Connection, message_id: uuid.UUID, worker: str, provider_message_id: str | None) -> bool:
    # also from unknown: a slow answer that arrives after another run declared the claim stale is the truth
    return _finish(
        conn,
        "update ops.messages set status = 'sent', provider_message_id = %s, sent_at = now(), last_error = null, "
        "updated_at = now() where message_id = %s and claimed_by = %s and status in ('pending', 'unknown')",
        (provider_message_id, message_id, worker),
    )


def mark_failed(conn: psycopg.Connection, message_id: uuid.UUID, worker: str, error: str) -> bool:
    return _finish(
        conn,
        "update ops.messages set status = 'failed', last_error = %s, updated_at = now() "
        "where message_id = %s and claimed_by = %s and status = 'pending'",
        (error, message_id, worker),
    )


def mark_unknown(conn: psycopg.Connection, message_id: uuid.UUID, worker: str, error: str) -> bool:
    return _finish(
        conn,
        "update ops.messages set status = 'unknown', last_error = %s, updated_at = now() "
        "where message_id = %s and claimed_by = %s and status = 'pending'",
        (error, message_id, worker),
    )


def release(conn: psycopg.Connection, message_id: uuid.UUID, worker: str, error: str, max_total_attempts: int) -> str:
    """Nothing was accepted and this run's retries are spent: back to unclaimed pending (a rerun retries),
    or `failed` once `attempts` reached max_total_attempts. Returns the new status."""
    row = _q(
        conn,
        "update ops.messages set status = case when attempts >= %s then 'failed' else 'pending' end, "
        "claimed_by = null, claimed_at = null, last_error = %s, updated_at = now() "
        "where message_id = %s and claimed_by = %s and status = 'pending' returning status",
        (max_total_attempts, error, message_id, worker),
    ).fetchone()
    return row[0] if row else "lost_claim"


# ---------------------------------------------------------------- batches (the sender's hot path)
#
# The sender claims a worker's next few messages in one statement, sends them one by one, and records their
# outcomes in one statement. The claim is committed durably before the first API call of the batch, like a
# single claim. A crash mid-batch leaves the whole batch claimed: the stale-claim rule turns it into
# `unknown` — the message that may have been sent and the ones not yet tried alike — so nothing is sent
# twice, and at most one batch per worker is left for an operator to look at. Outcomes may be committed
# with `synchronous_commit = off` (see `finish_many`): losing one leaves a claimed row, which also ends as
# `unknown`, never re-sent.


def claim_many(conn: psycopg.Connection, message_ids: list[uuid.UUID], worker: str) -> dict[uuid.UUID, int]:
    """Claim pending, unclaimed rows for this worker in one durable commit; returns {message_id: attempts}
    of the rows won (the others are another run's, or finished: this run must not send them, E6).

    `synchronous_commit` is forced on for this transaction whatever the session's setting: the claim must
    survive a crash of the database before the API call is made (S2)."""
    if not message_ids:
        return {}
    with conn.transaction():
        _q(conn, "set local synchronous_commit = on")
        rows = _q(
            conn,
            "update ops.messages set claimed_by = %s, claimed_at = now(), attempts = attempts + 1, "
            "updated_at = now() "
            "where message_id = any(%s) and status = 'pending' and claimed_at is null "
            "returning message_id, attempts",
            (worker, message_ids),
        ).fetchall()
    return dict(rows)


# F2: the exit conditions, re-checked in the transaction that claims a batch, from the one definition the
# models use (intermediate.int_cart_version_exits: an order whose latest status is completed, a delete, a
# newer version), up to T (%(t)s), the run's data-interval end, never the wall clock; the first reason in
# the exclusion_reasons seed's order wins, as in int_recipient_decisions.
_EXIT_RECHECK_SQL = """
with batch as (
    select m.message_id, m.cart_id, m.cart_version
    from ops.messages as m
    where m.message_id = any(%(ids)s) and m.status = 'pending' and m.claimed_at is null
    for update
),

exits as (
    select
        b.message_id,
        (
            select x.exit_reason
            from intermediate.int_cart_version_exits as x
            inner join marts.exclusion_reasons as r on r.reason = x.exit_reason
            where x.cart_id = b.cart_id and x.cart_version = b.cart_version and x.exited_at <= %(t)s
            order by r.priority
            limit 1
        ) as reason
    from batch as b
)

update ops.messages as m
set status = 'skipped', skip_reason = x.reason, updated_at = now()
from exits as x
where m.message_id = x.message_id and x.reason is not null
returning m.message_id, m.skip_reason
"""


def claim_many_rechecked(
    conn: psycopg.Connection, message_ids: list[uuid.UUID], worker: str, t: datetime
) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, str]]:
    """`claim_many` with the F2 exit re-check in the same transaction: rows whose cart had an order placed, a
    delete or a newer version up to T become `skipped` with that reason and are not claimed. Returns
    ({message_id: attempts} won, {message_id: exit reason} skipped). The row locks of the re-check hold the
    batch until the claim commits, so no other run claims a row this one has just judged."""
    if not message_ids:
        return {}, {}
    with conn.transaction():
        _q(conn, "set local synchronous_commit = on")
        exited = dict(_q(conn, _EXIT_RECHECK_SQL, {"ids": message_ids, "t": t}).fetchall())
        rest = [m for m in message_ids if m not in exited]
        rows = _q(
            conn,
            "update ops.messages set claimed_by = %s, claimed_at = now(), attempts = attempts + 1, "
            "updated_at = now() "
            "where message_id = any(%s) and status = 'pending' and claimed_at is null "
            "returning message_id, attempts",
            (worker, rest),
        ).fetchall()
        if exited:
            _q(conn, "delete from ops.deferred_sends where message_id = any(%s)", (list(exited),))
    return dict(rows), exited


def forget_deferred(conn: psycopg.Connection, message_ids: list[uuid.UUID]) -> None:
    """The kept decision rows (personal data) of messages that are no longer pending: deleted."""
    if message_ids:
        _q(
            conn,
            "delete from ops.deferred_sends as d using ops.messages as m "
            "where d.message_id = m.message_id and d.message_id = any(%s) and m.status <> 'pending'",
            (message_ids,),
        )


def finish_many(
    conn: psycopg.Connection, worker: str, outcomes: list[tuple[uuid.UUID, str, str | None, str | None]]
) -> int:
    """Record `(message_id, status, provider_message_id, error)` outcomes (`sent`, `failed`, `unknown`) of rows
    this worker holds, in one statement; returns how many rows it updated.

    Meant for a session with `synchronous_commit = off`: losing this commit in a crash leaves the rows
    claimed and pending, which the next run resolves to `unknown` — never a second send. As in `mark_sent`,
    `sent` also overrides `unknown` (an answer that arrived after another run declared the claim stale)."""
    if not outcomes:
        return 0
    ids, statuses, provider_ids, errors = (list(col) for col in zip(*outcomes, strict=True))
    return _q(
        conn,
        "update ops.messages as m set status = o.status, "
        "provider_message_id = case when o.status = 'sent' then o.provider_message_id else m.provider_message_id end, "
        "sent_at = case when o.status = 'sent' then now() else m.sent_at end, "
        "last_error = o.error, updated_at = now() "
        "from unnest(%s::uuid[], %s::text[], %s::text[], %s::text[]) "
        "as o(message_id, status, provider_message_id, error) "
        "where m.message_id = o.message_id and m.claimed_by = %s "
        "and (m.status = 'pending' or (o.status = 'sent' and m.status = 'unknown'))",
        (ids, statuses, provider_ids, errors, worker),
    ).rowcount


def refresh_claims(conn: psycopg.Connection, message_ids: list[uuid.UUID], worker: str) -> None:
    """A fresh `claimed_at` on rows this worker still holds: a batch waiting behind a backoff must not look
    stale to another run."""
    if message_ids:
        _q(
            conn,
            "update ops.messages set claimed_at = now() "
            "where message_id = any(%s) and claimed_by = %s and status = 'pending'",
            (message_ids, worker),
        )


def unclaim_untried(conn: psycopg.Connection, message_ids: list[uuid.UUID], worker: str) -> int:
    """Rows of a batch that this worker claimed but never sent (it stopped early on an error): back to
    unclaimed `pending`, their attempt not counted, so a rerun sends them."""
    if not message_ids:
        return 0
    return _q(
        conn,
        "update ops.messages set claimed_by = null, claimed_at = null, attempts = greatest(attempts - 1, 0), "
        "updated_at = now() where message_id = any(%s) and claimed_by = %s and status = 'pending'",
        (message_ids, worker),
    ).rowcount


def counts_by_status(
    conn: psycopg.Connection, decided_at: datetime, campaigns: list[str] | None = None, dry_run: bool | None = None
) -> dict[str, int]:
    """Outbox rows of the run deciding at `decided_at`, by status (dry-run rows apart unless asked)."""
    sql = "select status, count(*) from ops.messages where decided_at = %s"
    params: list[Any] = [decided_at]
    if campaigns is not None:
        sql += " and campaign = any(%s)"
        params.append(campaigns)
    if dry_run is not None:
        sql += " and (idempotency_key like 'dry\\_run:%%') = %s"
        params.append(dry_run)
    return dict(_q(conn, sql + " group by status order by status", params).fetchall())


def run_summary(conn: psycopg.Connection, decided_at: datetime) -> dict[str, Any]:
    """Counts for the DAG's summary task: messages by campaign and status, exclusions by reason. Ids and
    numbers only (O5)."""
    messages: dict[str, dict[str, int]] = {}
    for campaign, status, dry, n in _q(
        conn,
        "select campaign, status, idempotency_key like 'dry\\_run:%%', count(*) from ops.messages "
        "where decided_at = %s group by 1, 2, 3 order by 1, 2",
        (decided_at,),
    ).fetchall():
        messages.setdefault(campaign + (" (dry run)" if dry else ""), {})[status] = n
    skips = dict(
        _q(
            conn,
            "select coalesce(skip_reason, '?'), count(*) from ops.messages "
            "where decided_at = %s and status = 'skipped' group by 1",
            (decided_at,),
        ).fetchall()
    )
    reasons: dict[str, int] = {}
    if _q(conn, "select to_regclass('marts.decision_history')").fetchone()[0]:
        reasons = dict(
            _q(
                conn,
                "select reason, count(*) from marts.decision_history "
                "where decided_at = %s and reason is not null group by 1 order by 2 desc",
                (decided_at,),
            ).fetchall()
        )
    conn.commit()
    return {
        "decided_at": decided_at.isoformat(),
        "messages": messages,
        "skipped_by_reason": skips,
        "exclusions_by_reason": reasons,
    }
