"""Render and send one run's messages exactly once (S1–S3, E6, E8) — the `send_messages` task body.

1. Stale claims of earlier runs (claimed longer ago than `stale_after`, still pending) become `unknown`.
2. This run's decisions — its partition (T, scope) of `marts.decided_messages`, the outbox rows dbt decided
   (pending, or skipped with their reason: holdouts, E8, and skips that hand a sequence on, F3; keys and
   message ids included), joined with the run's `restricted.message_contents` — are written to
   `ops.messages` as they are (`on conflict do nothing`) and committed before any API call: the sender
   decides nothing. An SMS decided in the recipient's quiet hours (21:00–08:00, F4) gets `send_after` = the
   next 08:00 there, and its decision row is kept in `ops.deferred_sends` (the contents are dropped after a
   retention); every run sends the pending rows of its campaigns whose `send_after` has come (<= its T),
   earlier runs' included.
3. A pool of `concurrency` threads, each with its own DB connection and SendGrid client (one kept-alive
   connection per thread), takes the pending rows in batches of `claim_batch`: render the batch -> claim it
   in one statement, committed durably, after re-checking the exit conditions in the same transaction (F2:
   an order placed, the cart deleted or changed up to T -> `skipped` with `exited_*`) -> one request per
   message (email: Mail Send; SMS: Twilio; push: one per subscription of the customer, `sent` if any was
   accepted) -> the batch's outcomes in one
   statement (`synchronous_commit = off`: losing it leaves claimed rows, resolved to `unknown`, never
   re-sent). Two overlapping runs never both send a message: the claim is an
   `update … where status = 'pending' and claimed_at is null`. The trade-off of batches: a crash (kill -9,
   power) mid-batch leaves the whole batch `unknown` — at most `concurrency × claim_batch` messages an
   operator must look at, none sent twice; `claim_batch=1` claims each message alone (measured: 16 per
   batch cut the database's share of a message by about two thirds).
   A large run (`shard_count`: by default 2 processes on 2+ cores, from 2,000 messages each) is split by a
   hash of the idempotency key over child processes (`cart_recovery.subprocess_jobs`), the threads shared
   among them: rendering and the HTTP client are CPU-bound, one process holds one core (measured at 100k:
   1.1 ms of CPU per message in the sender). Each child builds its own worklist and sends exactly as above;
   a child that crashes fails the run (its claims become `unknown`, its untried rows stay pending), and one
   whose parent died takes no new batch.
4. 429, 5xx and "never left" errors are retried in the same run, `max_attempts` times per message, with
   exponential backoff and jitter, honouring `Retry-After` / `X-RateLimit-Reset` (a 429 pauses every
   worker of its process). When they are spent the row goes back to unclaimed `pending` and the task fails, so Airflow's
   task retry (or a rerun of the date) sends it later; after `max_total_attempts` it becomes `failed`.
   A timeout after the request left is `unknown` and is never re-sent automatically.

A `gone` answer (web push 404/410, FCM UNREGISTERED, Twilio 21610 STOP) fails the message and records the
dead address: `ops.push_revocations` for a push subscription, an `ops.unsubscribes` row (channel sms) for
the customer (E4), both at the run's T.

A dry run (S3) renders every message and records `dry_run` rows under the `dry_run:` key namespace; it
sends nothing and does not block a later real run.

Test-only hook: `CR_FAULT_EXIT_AFTER_SEND=1` makes the process `os._exit(70)` right after the first
accepted send, before its outcome is written — the crash the stale-claim rule exists for; `=shard` does it in
the child sending processes only (below). Never set it elsewhere.

Logs carry ids and counts only; addresses are masked (O5).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from cart_recovery import TEMPLATES_DIR, outbox
from cart_recovery.channels import SUPPORTED_CHANNELS, SendResult, mask_email, mask_phone, scrub
from cart_recovery.outbox import OutboxRow

if TYPE_CHECKING:
    from pathlib import Path

    from cart_recovery.campaigns import Campaign
    from cart_recovery.rendering import EmailRenderer, RenderedEmail, SenderIdentity

log = logging.getLogger(__name__)

FAULT_EXIT_ENV = "CR_FAULT_EXIT_AFTER_SEND"


class SendIncomplete(RuntimeError):
    """Some messages are still pending after this run's retries; a rerun (task retry) will send them."""

    def __init__(self, message: str, counts: dict[str, Any]) -> None:
        super().__init__(message)
        self.counts = counts


# The outbox rows dbt decided for a run, with the columns the templates need (docs/INTERFACES.md); a skipped
# row has no contents. Callers add the where clause (_RUN_WHERE).
SELECT_DECISIONS_SQL = """
select
    e.campaign, e.step, e.channel, e.customer_id, e.cart_id, e.cart_version::text as cart_version, e.decided_at,
    e.scope, e.outbox_status, e.reason, e.coupon_tier, e.coupon_percent, e.coupon_code, e.idempotency_key,
    e.message_id, e.dry_run_key, e.dry_run_message_id,
    c.email, c.phone, c.first_name, c.locale, c.store_id, c.store_name, c.store_email, c.store_phone, c.store_address,
    c.store_city, c.store_region, c.store_time_zone, c.store_url, c.cart_url, c.cart_value, c.currency, c.item_count,
    c.more_items_count, c.items
from marts.decided_messages as e
left join restricted.message_contents as c
    on c.decided_at = e.decided_at and c.scope = e.scope
    and c.campaign = e.campaign and c.step = e.step and c.cart_id = e.cart_id
    and c.cart_version::text = e.cart_version::text
"""
# Columns of restricted.message_contents the sender reads when the model has them (push, omnichannel:
# docs/INTERFACES.md); a warehouse built before they existed reads nulls.
OPTIONAL_CONTENT_COLUMNS = {"push_subscriptions": "jsonb", "device": "text"}


def decisions_sql(conn: psycopg.Connection) -> str:
    """SELECT_DECISIONS_SQL with the optional content columns (real or null) added."""
    have = {
        r[0]
        for r in conn.cursor(row_factory=tuple_row)
        .execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'restricted' and table_name = 'message_contents'"
        )
        .fetchall()
    }
    extra = ", ".join(
        f"c.{name}" if name in have else f"null::{kind} as {name}" for name, kind in OPTIONAL_CONTENT_COLUMNS.items()
    )
    return SELECT_DECISIONS_SQL.replace("\nfrom marts.decided_messages", f", {extra}\nfrom marts.decided_messages", 1)


_RUN_WHERE = " where e.decided_at = %(t)s and e.scope = %(scope)s and e.campaign = any(%(campaigns)s)"


def _create_run_table(conn: psycopg.Connection, t: datetime, scope: str, campaigns: list[str]) -> None:
    """cr_run: the run's outbox rows (T, scope) of `campaigns`, in this session (the sender and each of its
    child processes)."""
    conn.execute("drop table if exists cr_run")
    run_sql = "create temp table cr_run on commit preserve rows as " + decisions_sql(conn) + _RUN_WHERE
    conn.execute(run_sql, {"t": t, "scope": scope, "campaigns": campaigns})
    conn.execute("analyze cr_run")  # temp tables get no statistics otherwise: the worklist join needs them


@dataclass
class _Run:
    """What the workers share during one call of send_messages."""

    decided_at: datetime
    dry_run: bool
    worker_id: str
    conninfo: str
    campaigns: dict[str, Campaign]
    renderer: EmailRenderer
    sender: SenderIdentity
    secret: bytes
    channels: dict[str, Any]  # channel name -> its sender (EmailChannel, SmsChannel, PushChannel); empty when dry
    max_attempts: int
    max_total_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    fault_exit: bool
    templates_dir: Path = TEMPLATES_DIR
    counts: Counter[str] = field(default_factory=Counter)
    dry_rows: list[OutboxRow] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    not_before: float = 0.0  # monotonic time before which no worker calls the API (after a 429)
    local: threading.local = field(default_factory=threading.local)
    conns: list[psycopg.Connection] = field(default_factory=list)

    def conn(self) -> psycopg.Connection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = psycopg.connect(self.conninfo, autocommit=True)
            # every write of a worker but the claim may be lost in a crash without harm (it leaves a claimed
            # row: unknown, never re-sent); the claim turns synchronous_commit back on (outbox.claim_many)
            c.execute("set synchronous_commit = off")
            self.local.conn = c
            with self.lock:
                self.conns.append(c)
        return c

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n


def render_message(
    row: dict[str, Any],
    campaign: Campaign,
    decided_at: datetime,
    *,
    renderer: EmailRenderer,
    sender: SenderIdentity,
    secret: bytes,
    message_id: uuid.UUID | None = None,
) -> tuple[RenderedEmail, str]:
    """Render one decision row (SELECT_DECISIONS_SQL) -> (subject/html/text, unsubscribe URL). Used by the
    sender and by `cart-recovery preview` (M7), so a preview is exactly what would be sent."""
    from cart_recovery.rendering import build_email_context
    from cart_recovery.unsubscribe import make_token, unsubscribe_url

    message_id = message_id or row["message_id"]
    step = campaign.step_for(int(row["step"]))
    # issued at T: the same date renders the same link (O2); valid 90 days from T
    token = make_token(row["customer_id"], row["channel"], campaign.name, decided_at, secret)
    url = unsubscribe_url(token, sender.public_base_url)
    ctx = build_email_context(
        row, campaign, message_id=str(message_id), unsubscribe_url=url, sender=sender, channel=row["channel"]
    )
    return renderer.render(step.template, ctx), url


def _compose(run: _Run, row: dict[str, Any], message_id: uuid.UUID) -> list[tuple[dict[str, Any], str | None]]:
    """Render the message for its channel -> the request bodies to send, each with the push subscription it
    goes to (None for email and SMS): one body, or one per active push subscription of the customer."""
    channel = row.get("channel") or "email"
    if channel == "sms":
        return [(_compose_sms(run, row, message_id), None)]
    if channel == "push":
        return _compose_push(run, row, message_id)
    return [(_compose_email(run, row, message_id), None)]


def _compose_email(run: _Run, row: dict[str, Any], message_id: uuid.UUID) -> dict[str, Any]:
    """Render the email and build its Mail Send body (contract §5)."""
    from cart_recovery.channels.email import build_mail
    from cart_recovery.unsubscribe import list_unsubscribe_headers

    if not row.get("email"):
        raise ValueError("no email address in restricted.message_contents")
    campaign = run.campaigns[row["campaign"]]
    rendered, url = render_message(
        row,
        campaign,
        run.decided_at,
        renderer=run.renderer,
        sender=run.sender,
        secret=run.secret,
        message_id=message_id,
    )
    return build_mail(
        to_email=row["email"],
        from_email=run.sender.email,
        from_name=run.sender.name,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        headers=list_unsubscribe_headers(url),  # M6: one-click unsubscribe (RFC 8058)
        custom_args={"message_id": str(message_id), "campaign": campaign.name, "step": str(row["step"])},
    )


def _cart_link(row: dict[str, Any], message_id: uuid.UUID) -> str:
    from cart_recovery.rendering.formatting import tracked_url

    # M3: UTM parameters and the message id, as in the email
    return tracked_url(
        str(row.get("cart_url") or ""),
        campaign=row["campaign"],
        step=int(row["step"]),
        channel=row["channel"],
        message_id=str(message_id),
    )


def _compose_sms(run: _Run, row: dict[str, Any], message_id: uuid.UUID) -> dict[str, Any]:
    """F4: the short text (first item, coupon, cart link, STOP) to the customer's E.164 phone."""
    from cart_recovery.channels.sms import build_sms, is_e164, render_sms

    phone = row.get("phone")
    if not is_e164(phone):  # E2: the model only decides valid numbers; never hand Twilio a wrong one
        raise ValueError("no valid E.164 phone in restricted.message_contents")
    campaign = run.campaigns[row["campaign"]]
    rendered = render_sms(
        row,
        cart_link=_cart_link(row, message_id),
        sender=run.sender.name,  # CASL: the sender is named
        default_locale=campaign.default_locale,
        template=campaign.step_for(int(row["step"])).template,
        templates_dir=run.templates_dir,
    )
    return build_sms(to=str(phone), text=rendered.text)


def _subscriptions(row: dict[str, Any]) -> list[dict[str, Any]]:
    subs = row.get("push_subscriptions") or []
    if isinstance(subs, str):
        subs = json.loads(subs)
    return [s for s in subs if isinstance(s, dict)]


def _compose_push(run: _Run, row: dict[str, Any], message_id: uuid.UUID) -> list[tuple[dict[str, Any], str]]:
    """F4: one notification, sent to every active subscription the model chose for the customer (web push
    with VAPID, or FCM for a device token)."""
    from cart_recovery.channels.push import build_fcm_message, build_web_push, render_push

    campaign = run.campaigns[row["campaign"]]
    subs = _subscriptions(row)
    if not subs:
        raise ValueError("no active push subscription in restricted.message_contents")
    # a later notification about the same cart replaces this one on the device
    tag = "cart-" + re.sub(r"[^A-Za-z0-9_-]", "_", str(row["cart_id"]))
    payload = render_push(
        row,
        cart_link=_cart_link(row, message_id),
        default_locale=campaign.default_locale,
        tag=tag,
        template=campaign.step_for(int(row["step"])).template,
        templates_dir=run.templates_dir,
    )
    out: list[tuple[dict[str, Any], str]] = []
    for sub in subs:
        kind = str(sub.get("kind") or sub.get("subscription_kind") or "web")
        if kind == "web":
            endpoint = str(sub.get("endpoint") or "")
            body = build_web_push(
                endpoint=endpoint,
                p256dh=str(sub.get("p256dh") or ""),
                auth=str(sub.get("auth") or ""),
                payload=payload,
                topic=tag[:32],
            )
        else:  # ios / android (contract §2) or 'fcm': the endpoint is the device token
            endpoint = str(sub.get("token") or sub.get("endpoint") or "")
            body = build_fcm_message(
                token=endpoint,
                payload=payload,
                kind=kind if kind in ("ios", "android") else "android",
                data={"message_id": str(message_id), "campaign": campaign.name},  # ids only, never PII
            )
        out.append((body, endpoint))
    return out


def _address(row: dict[str, Any]) -> str:
    """The recipient, masked for a log line (O5)."""
    if row.get("channel") == "sms":
        return mask_phone(row.get("phone"))
    if row.get("channel") == "push":
        return f"{len(_subscriptions(row))} push subscription(s) of {row['customer_id']}"
    return mask_email(row.get("email"))


def _backoff(run: _Run, attempt: int, retry_after_s: float | None) -> float:
    delay = min(run.backoff_max_s, run.backoff_base_s * 2 ** (attempt - 1))
    delay *= 0.5 + random.random() / 2  # jitter: concurrent workers do not retry in step
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, run.backoff_max_s))
    return delay


def _wait_gate(run: _Run) -> None:
    while True:
        wait = run.not_before - time.monotonic()
        if wait <= 0:
            return
        time.sleep(min(wait, 1.0))


def _process_dry(run: _Run, row: dict[str, Any]) -> None:
    status, error = "dry_run", None
    try:
        _compose(run, row, row["message_id"])  # rendered exactly as it would be sent
    except Exception as exc:  # a template or data problem: recorded, the dry run goes on
        status, error = "failed", f"render: {type(exc).__name__}: {scrub(str(exc))[:500]}"
    with run.lock:
        run.dry_rows.append(_outbox_row(row, run.decided_at, status, dry_run=True, last_error=error))
        run.counts[status] += 1


def _render_error(exc: Exception) -> str:
    return f"render: {type(exc).__name__}: {scrub(str(exc))[:500]}"


def _process_batch(run: _Run, rows: list[dict[str, Any]]) -> None:
    """A worker's batch (`claim_batch` messages): render them all, claim them in one durable commit (after the
    F2 exit re-check, in the same transaction), send them one by one with retries, record their outcomes in
    one commit. A crash mid-batch leaves the batch claimed, hence `unknown` after the stale threshold — never
    sent twice (outbox.py, "batches")."""
    conn = run.conn()
    # 1. render ahead: nothing is claimed or sent yet, and the claim-to-send window stays short
    bodies: dict[uuid.UUID, list[tuple[dict[str, Any], str | None]]] = {}
    render_errors: dict[uuid.UUID, str] = {}
    for row in rows:
        mid = row["message_id"]
        try:
            bodies[mid] = _compose(run, row, mid)
        except Exception as exc:  # nothing will be sent: a definitive failure of this message only
            render_errors[mid] = _render_error(exc)
            log.error(
                "message %s (campaign %s, customer %s) failed to render: %s",
                mid,
                row["campaign"],
                row["customer_id"],
                scrub(str(exc))[:200],
            )
    # 2. F2 exit re-check + claim, one transaction (S2: committed with synchronous_commit on, before any API
    # call of the batch)
    won, exited = outbox.claim_many_rechecked(conn, [r["message_id"] for r in rows], run.worker_id, run.decided_at)
    for reason in exited.values():
        run.count(reason)
    if len(won) + len(exited) < len(rows):
        # another run has them or finished them (E6)
        run.count("claimed_elsewhere", len(rows) - len(won) - len(exited))
    untried = [r for r in rows if r["message_id"] in won]
    untried.reverse()  # popped from the end, in worklist order
    outcomes: list[outbox.Outcome] = []

    def flush() -> None:
        outbox.finish_many(conn, run.worker_id, outcomes)
        outbox.forget_deferred(conn, [o[0] for o in outcomes])
        outcomes.clear()

    try:
        while untried:
            row = untried.pop()
            mid = row["message_id"]
            if mid in render_errors:
                outcomes.append((mid, "failed", None, render_errors[mid]))
                run.count("failed")
                continue
            outcome = _deliver(run, conn, row, bodies.pop(mid), untried, flush)
            if outcome is not None:
                outcomes.append(outcome)
    finally:
        # the outcomes first: a crash in between leaves them claimed (unknown later), never re-sent
        flush()
        if untried:  # stopped early on an error: the untried rows go back to pending for a rerun
            outbox.unclaim_untried(conn, [r["message_id"] for r in untried], run.worker_id)


def _send_with_retries(
    run: _Run,
    conn: psycopg.Connection,
    row: dict[str, Any],
    body: dict[str, Any],
    waiting: list[dict[str, Any]],
    flush: Callable[[], None],
) -> tuple[SendResult, int]:
    """One request of a claimed message, retried in this run on 429, 5xx and "never left" (S2). Returns the
    final result — a `retry` one when this run's attempts are spent — and the attempts made."""
    channel = run.channels[row["channel"]]
    mid: uuid.UUID = row["message_id"]
    attempt = 1
    while True:
        _wait_gate(run)
        result: SendResult = channel.send(body)
        if result.outcome != "retry" or attempt >= run.max_attempts:
            return result, attempt
        delay = _backoff(run, attempt, result.retry_after_s)
        if result.status_code == 429:
            with run.lock:  # rate limited: every worker waits, not only this one
                run.not_before = max(run.not_before, time.monotonic() + delay)
        run.count(f"retried_{result.status_code or 'not_sent'}")
        flush()  # what this batch already knows is recorded before the wait
        time.sleep(delay)
        attempt += 1
        outbox.touch(conn, mid, run.worker_id, result.error or "retry")
        # the rest of the batch must not look stale to another run while this one waits
        outbox.refresh_claims(conn, [r["message_id"] for r in waiting], run.worker_id)


def _record_gone(run: _Run, conn: psycopg.Connection, row: dict[str, Any], endpoint: str | None) -> None:
    """The address is dead for good (docs/CHANNELS.md): a push subscription is revoked (E2: only active ones
    are chosen), a number that replied STOP is suppressed for SMS (E4) — from the run's T on, so a replay of
    an earlier date decides as it did."""
    if row["channel"] == "push" and endpoint:
        conn.execute(
            "insert into ops.push_revocations (endpoint, customer_id, revoked_at, reason) values (%s, %s, %s, %s) "
            "on conflict (endpoint) do nothing",
            (endpoint, row["customer_id"], run.decided_at, "gone"),
        )
        run.count("push_revoked")
    elif row["channel"] == "sms":
        conn.execute(
            "insert into ops.unsubscribes (customer_id, channel, recorded_at, source) values (%s, 'sms', %s, %s) "
            "on conflict do nothing",
            (row["customer_id"], run.decided_at, "twilio_stop"),
        )
        run.count("sms_suppressed")


def _deliver(
    run: _Run,
    conn: psycopg.Connection,
    row: dict[str, Any],
    deliveries: list[tuple[dict[str, Any], str | None]],
    waiting: list[dict[str, Any]],
    flush: Callable[[], None],
) -> outbox.Outcome | None:
    """Send a claimed message: its one request, or one per push subscription. Returns its outcome for
    `finish_many`, or None when it was released back to pending (retries spent in this run, none accepted).

    Several push subscriptions make one message: `sent` when any accepted it (never re-sent: the others may
    have shown it), else `unknown` when any answer is missing, else back to pending when any is to be
    retried, else `failed`."""
    mid: uuid.UUID = row["message_id"]
    accepted: list[str] = []
    errors: list[str] = []
    unknown = retry = False
    for body, endpoint in deliveries:
        result, attempts = _send_with_retries(run, conn, row, body, waiting, flush)
        if result.outcome == "accepted":
            if run.fault_exit:
                os._exit(70)  # test-only: die between the API call and the outbox update
            accepted.append(result.provider_message_id or "")
            continue
        errors.append(result.error or result.outcome)
        if result.outcome == "gone":
            log.warning("message %s: %s is gone: %s", mid, _address(row), result.error)
            _record_gone(run, conn, row, endpoint)
        elif result.outcome == "rejected":
            log.warning("message %s rejected to %s: %s", mid, _address(row), result.error)
        elif result.outcome == "unknown":
            log.warning("message %s outcome unknown (not re-sent): %s", mid, result.error)
            unknown = True
        else:
            log.warning("message %s: %d attempts in this run, last %s", mid, attempts, result.error)
            retry = True
    if accepted:
        run.count("sent")
        return (mid, "sent", ",".join(a for a in accepted if a) or None, "; ".join(errors)[:1000] or None)
    if unknown:
        run.count("unknown")
        return (mid, "unknown", None, "; ".join(errors)[:1000] or "no answer")
    if retry:
        status = outbox.release(conn, mid, run.worker_id, "; ".join(errors)[:1000], run.max_total_attempts)
        run.count("pending" if status == "pending" else status)
        return None
    run.count("failed")
    return (mid, "failed", None, "; ".join(errors)[:1000] or "rejected")


def _outbox_row(
    row: dict[str, Any],
    decided_at: datetime,
    status: str,
    *,
    dry_run: bool = False,
    skip_reason: str | None = None,
    last_error: str | None = None,
    send_after: datetime | None = None,
) -> OutboxRow:
    """The outbox row of a decision row, under its key (or its dry run's) as dbt made it."""
    return OutboxRow(
        message_id=row["dry_run_message_id"] if dry_run else row["message_id"],
        idempotency_key=row["dry_run_key"] if dry_run else row["idempotency_key"],
        campaign=row["campaign"],
        step=int(row["step"]),
        channel=row.get("channel") or "email",
        customer_id=row["customer_id"],
        cart_id=row["cart_id"],
        cart_version=str(row["cart_version"]),
        decided_at=decided_at,
        coupon_code=row.get("coupon_code"),
        status=status,
        skip_reason=skip_reason,
        last_error=last_error,
        send_after=send_after,
    )


def quiet_hours_send_after(row: dict[str, Any], t: datetime) -> datetime | None:
    """F4: for an SMS decided at T in the recipient's quiet hours (21:00–08:00 in the phone's zone, else the
    store's region's), the next 08:00 there; else None (send now)."""
    if row.get("channel") != "sms":
        return None
    from cart_recovery.channels.sms import quiet_hours_deferral

    # the store's zone comes with the contents (the region_time_zones seed)
    return quiet_hours_deferral(t, row.get("phone"), row.get("store_time_zone"))


def _decision_rows(
    conn: psycopg.Connection, decided_at: datetime, dry_run: bool
) -> tuple[list[OutboxRow], int, int, int]:
    """The run's outbox rows as dbt decided them: pending (nothing for a dry run, which records after
    rendering), or skipped with their reason (holdouts, E8; skips that hand a sequence on, F3)."""
    rows: list[OutboxRow] = []
    decisions = unsupported = holdouts = 0
    for r in conn.execute(
        "select campaign, step, channel, customer_id, cart_id, cart_version, coupon_code, idempotency_key, "
        "message_id, dry_run_key, dry_run_message_id, outbox_status, reason, phone, store_time_zone from cr_run"
    ).fetchall():
        if r["outbox_status"] == "skipped":
            holdouts += r["reason"] == "holdout"
            rows.append(_outbox_row(r, decided_at, "skipped", dry_run=dry_run, skip_reason=r["reason"]))
            continue
        decisions += 1
        if r["channel"] not in SUPPORTED_CHANNELS:
            unsupported += 1
            rows.append(_outbox_row(r, decided_at, "skipped", dry_run=dry_run, skip_reason="channel_not_supported"))
        elif not dry_run:
            rows.append(_outbox_row(r, decided_at, "pending", send_after=quiet_hours_send_after(r, decided_at)))
    return rows, decisions, unsupported, holdouts


def _worklist(
    conn: psycopg.Connection, total: int, channels: list[str], workers: int, claim_batch: int, fetch: int = 2000
) -> Iterable[list[dict[str, Any]]]:
    """Rows to send (pending, unclaimed, `send_after` null or come by T) or, in a dry run, every row of a
    supported channel, in batches for the workers; streamed with a server-side cursor. A small run is cut
    finer, so every worker gets a share. Besides this run's decisions, earlier runs' deferred rows (F4) of
    the same campaigns, with the decision row they kept.

    The join is materialised first (`_materialise_work`): a cursor's fast-start plan chose a nested loop over
    the two tables, quadratic in the run's size (measured: 4 s per 500 rows at 10k messages).
    """
    size = max(1, min(claim_batch, -(-total // workers)))
    with conn.cursor(name="cr_worklist", row_factory=dict_row) as cur:
        cur.execute("select * from cr_work where channel = any(%s)", (channels,))
        while True:
            chunk = cur.fetchmany(fetch)
            if not chunk:
                break
            for i in range(0, len(chunk), size):
                yield chunk[i : i + size]
    conn.execute("drop table if exists cr_work")


# A process's share of the work when the run is split over processes: its rows by a hash of their key.
_SHARD_SQL = " and (hashtext(m.idempotency_key) & 2147483647) %% %(shards)s = %(shard)s "


def _materialise_work(
    conn: psycopg.Connection,
    t: datetime,
    campaigns: list[str],
    dry_run: bool,
    shard: tuple[int, int] | None = None,
) -> dict[str, int]:
    """cr_work: what this run may send (see `_worklist`), or only shard `k` of `n` of it (`shard=(k, n)`);
    returns its row count by channel."""
    conn.execute("drop table if exists cr_work")
    params: dict[str, Any] = {"t": t, "campaigns": campaigns, "channels": list(SUPPORTED_CHANNELS)}
    part = ""
    if shard is not None:
        part = _SHARD_SQL
        params.update(shard=shard[0], shards=shard[1])
    if dry_run:
        conn.execute(
            "create temp table cr_work as select r.* from cr_run as r "
            "where r.outbox_status = 'pending' and r.channel = any(%(channels)s)",
            params,
        )
    else:
        conn.execute(
            "create temp table cr_work as select r.* from cr_run as r "
            "inner join ops.messages as m using (message_id) "
            "where r.channel = any(%(channels)s) and m.status = 'pending' and m.claimed_at is null "
            "and (m.send_after is null or m.send_after <= %(t)s) " + part +
            # F4: earlier runs' rows deferred to quiet hours' end, when that has come by T
            "union all "
            "select (jsonb_populate_record(null::cr_run, d.decision || jsonb_build_object('message_id', m.message_id)))"
            ".* "
            "from ops.messages as m inner join ops.deferred_sends as d using (message_id) "
            "where m.status = 'pending' and m.claimed_at is null and m.send_after <= %(t)s "
            "and m.decided_at <> %(t)s and m.campaign = any(%(campaigns)s) and m.channel = any(%(channels)s)" + part,
            params,
        )
    return {
        r["channel"]: r["n"] for r in conn.execute("select channel, count(*) as n from cr_work group by 1").fetchall()
    }


def _send_pool(run: _Run, conn: psycopg.Connection, total: int, sendable: list[str], workers: int, batch: int) -> None:
    """This process's share of the worklist through `workers` threads (a dry run renders instead)."""
    from cart_recovery.subprocess_jobs import PARENT_GONE

    in_flight = threading.BoundedSemaphore(workers * 2)  # bounded memory for 100k messages

    def task(rows: list[dict[str, Any]]) -> None:
        try:
            if run.dry_run:
                for r in rows:
                    _process_dry(run, r)
            else:
                _process_batch(run, rows)
        except Exception:
            # never lose a worker silently; a row it may have sent keeps its claim (unknown after
            # stale_after), its untried rows went back to pending
            log.exception("batch of %d from message %s: unexpected error", len(rows), rows[0].get("message_id"))
            run.count("error")
        finally:
            in_flight.release()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="send") as pool:
        for rows in _worklist(conn, total, sendable, workers, batch):
            if PARENT_GONE.is_set():  # a shard whose parent died: no new claims (the rest stays pending)
                log.warning("parent process gone: no further batches taken")
                break
            in_flight.acquire()
            pool.submit(task, rows)


def shard_count(total: int, processes: int | None, min_per_process: int) -> int:
    """How many processes share a run's sending: `processes` (default: `CR_SEND_PROCESSES`, else up to 2 by
    the machine's cores), fewer when each would get under `min_per_process` messages — a process costs about
    a second to start, and rendering is CPU-bound, so threads alone leave a second core idle."""
    if processes is None:
        env = os.environ.get("CR_SEND_PROCESSES")
        processes = int(env) if env else min(os.cpu_count() or 1, 2)
    return max(1, min(processes, total // max(min_per_process, 1)))


@dataclass(frozen=True)
class ShardJob:
    """What a sending child process needs (picklable; it reads no Airflow connection itself)."""

    shard: int
    shards: int
    decided_at: datetime
    scope: str
    worker_id: str
    conninfo: str = field(repr=False)  # holds the password
    campaigns: list[Campaign]
    sender: SenderIdentity
    secret: bytes = field(repr=False)
    channels: dict[str, tuple[Any, ...]] = field(repr=False)  # channel -> its settings (`_channel_recipe`)
    sendable: list[str]
    workers: int
    claim_batch: int
    max_attempts: int
    max_total_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    templates_dir: Path


def _channel_recipe(channels: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """The settings each channel's sender was built from, so a child builds its own (clients, sessions and
    keep-alive connections are per process and per thread)."""
    out: dict[str, tuple[Any, ...]] = {}
    for name, ch in channels.items():
        if name == "push":
            web, fcm = ch.web, ch.fcm
            out[name] = (web and web.settings, fcm and fcm.settings, (web or fcm).timeout_s)
        else:
            out[name] = (ch.settings, ch.timeout_s)
    return out


def _channels_from_recipe(recipe: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, args in recipe.items():
        if name == "email":
            from cart_recovery.channels.email import EmailChannel

            out[name] = EmailChannel(*args)
        elif name == "sms":
            from cart_recovery.channels.sms import SmsChannel

            out[name] = SmsChannel(*args)
        elif name == "push":
            from cart_recovery.channels.push import FcmChannel, PushChannel, WebPushChannel

            web, fcm, timeout_s = args
            out[name] = PushChannel(
                WebPushChannel(web, timeout_s) if web else None, FcmChannel(fcm, timeout_s) if fcm else None
            )
    return out


def run_shard(job: ShardJob) -> dict[str, int]:
    """A child process's body (`cart_recovery.subprocess_jobs`): shard `job.shard` of the run's worklist,
    sent exactly as the parent sends its own; returns its counts."""
    from cart_recovery.rendering import EmailRenderer

    run = _Run(
        decided_at=job.decided_at,
        dry_run=False,
        worker_id=job.worker_id,
        conninfo=job.conninfo,
        campaigns={c.name: c for c in job.campaigns},
        renderer=EmailRenderer(job.templates_dir),
        sender=job.sender,
        secret=job.secret,
        channels=_channels_from_recipe(job.channels),
        max_attempts=job.max_attempts,
        max_total_attempts=job.max_total_attempts,
        backoff_base_s=job.backoff_base_s,
        backoff_max_s=job.backoff_max_s,
        fault_exit=os.environ.get(FAULT_EXIT_ENV) in ("1", "shard"),
        templates_dir=job.templates_dir,
    )
    with psycopg.connect(job.conninfo, row_factory=dict_row) as conn:
        # the run's decisions, as the parent read them (its temp tables are its own)
        _create_run_table(conn, job.decided_at, job.scope, list(run.campaigns))
        by_channel = _materialise_work(conn, job.decided_at, list(run.campaigns), False, (job.shard, job.shards))
        total = sum(by_channel.get(c, 0) for c in job.sendable)
        try:
            _send_pool(run, conn, total, job.sendable, job.workers, job.claim_batch)
        finally:
            for c in run.conns:
                c.close()
    log.info("%d messages in this process's share: %s", total, dict(sorted(run.counts.items())))
    return dict(run.counts)


def _start_shards(
    run: _Run, scope: str, shards: int, sendable: list[str], workers: int, claim_batch: int, campaigns: list[str]
) -> list[Any]:
    from cart_recovery.subprocess_jobs import start

    jobs = []
    for k in range(1, shards):
        job = ShardJob(
            shard=k,
            shards=shards,
            decided_at=run.decided_at,
            scope=scope,
            worker_id=f"{run.worker_id}/{k}",
            conninfo=run.conninfo,
            campaigns=[run.campaigns[c] for c in campaigns],
            sender=run.sender,
            secret=run.secret,
            channels=_channel_recipe(run.channels),
            sendable=sendable,
            workers=workers,
            claim_batch=max(claim_batch, 1),
            max_attempts=run.max_attempts,
            max_total_attempts=run.max_total_attempts,
            backoff_base_s=run.backoff_base_s,
            backoff_max_s=run.backoff_max_s,
            templates_dir=run.templates_dir,
        )
        jobs.append(start(f"send shard {k}/{shards}", "cart_recovery.sending:run_shard", job))
    return jobs


def _collect_shard(run: _Run, child: Any) -> None:
    """A child's counts, merged into the run's; a child that crashed or raised is an `error` (the task fails:
    its claimed rows become unknown after `stale_after`, its untried ones stay pending for the retry)."""
    ok, result = child.wait()
    if ok:
        with run.lock:
            run.counts.update(result)
        return
    log.error("%s: %s; its unsent messages are left for a rerun", child.name, result)
    run.count("error")


def _channel_senders(
    needed: list[str], sendgrid_conn_id: str, timeout_s: float | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A sender per channel with messages to send, from its connections (contract §1). A channel that is not
    configured is reported, not fatal: its messages stay pending (the run then fails, a retry sends them)."""
    senders: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for name in needed:
        try:
            if name == "email":
                from cart_recovery.channels.email import EmailChannel, sendgrid_settings

                senders[name] = EmailChannel(sendgrid_settings(sendgrid_conn_id), timeout_s=timeout_s)
            elif name == "sms":
                from cart_recovery.channels.sms import SmsChannel, twilio_settings

                senders[name] = SmsChannel(twilio_settings(), timeout_s=timeout_s)
            elif name == "push":
                from cart_recovery.channels.push import PushChannel

                push = PushChannel.from_connections(timeout_s=timeout_s)
                if push.web is None and push.fcm is None:
                    raise RuntimeError("neither webpush_default nor fcm_default is configured")
                senders[name] = push
        except Exception as exc:
            missing[name] = scrub(str(exc))[:300]
    return senders, missing


def send_messages(
    decided_at: datetime,
    run_id: str,
    campaigns: list[Campaign],
    dry_run: bool = False,
    conn_id: str = "cart_recovery_db",
    scope: str = "daily",
    sendgrid_conn_id: str = "sendgrid_default",
    concurrency: int = 32,
    *,
    claim_batch: int = 16,
    request_timeout_s: float | None = None,
    max_attempts: int = 5,
    max_total_attempts: int = 15,
    stale_after: timedelta = outbox.STALE_CLAIM_AFTER,
    backoff_base_s: float = 0.5,
    backoff_max_s: float = 60.0,
    templates_dir: Path = TEMPLATES_DIR,
    processes: int | None = None,
    min_per_process: int = 2000,
) -> dict[str, Any]:
    """Send (or, dry, render and record) every message the run (`decided_at`, `scope`) decided for `campaigns`.

    `concurrency` threads in all, over `processes` processes (`shard_count`: a large run uses a second core).

    Returns PII-free counts for XCom. Raises SendIncomplete when rows are left pending for a rerun.
    """
    from cart_recovery.db import conninfo, ensure_schema
    from cart_recovery.rendering import EmailRenderer, sender_identity
    from cart_recovery.unsubscribe import unsubscribe_secret

    started = time.monotonic()
    by_name = {c.name: c for c in campaigns}
    info = conninfo(conn_id)
    run = _Run(
        decided_at=decided_at,
        dry_run=dry_run,
        worker_id=f"{run_id}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        conninfo=info,
        campaigns=by_name,
        renderer=EmailRenderer(templates_dir),
        sender=sender_identity(),
        secret=unsubscribe_secret(),
        channels={},
        max_attempts=max_attempts,
        max_total_attempts=max_total_attempts,
        backoff_base_s=backoff_base_s,
        backoff_max_s=backoff_max_s,
        fault_exit=os.environ.get(FAULT_EXIT_ENV) == "1",
        templates_dir=templates_dir,
    )
    not_configured: dict[str, int] = {}
    with psycopg.connect(info, row_factory=dict_row) as conn:
        ensure_schema(conn)
        stale = outbox.resolve_stale_claims(conn, stale_after)
        if not by_name:
            log.info("no campaigns to send for %s", decided_at.isoformat())
            return {"decided_at": decided_at.isoformat(), "dry_run": dry_run, "decisions": 0, "outcomes": {}}
        _create_run_table(conn, decided_at, scope, list(by_name))
        rows, decisions, unsupported, holdouts = _decision_rows(conn, decided_at, dry_run)
        new = outbox.record(conn, rows)  # committed before any API call (S2)
        deferred = 0
        if not dry_run:
            # F4: what a deferred message needs when its hour comes, kept with its key (the marts move on)
            deferred = conn.execute(
                "insert into ops.deferred_sends (message_id, decision) "
                "select m.message_id, to_jsonb(r) from cr_run as r "
                "inner join ops.messages as m using (idempotency_key) "
                "where m.status = 'pending' and m.send_after > %s on conflict (message_id) do nothing",
                (decided_at,),
            ).rowcount
            conn.commit()
        if unsupported:
            log.info("%d message(s) on channels not supported: recorded skipped", unsupported)
        log.info(
            "run %s, T=%s: %d decisions, %d holdouts, %d new outbox rows, %d deferred to quiet hours' end%s",
            run_id,
            decided_at.isoformat(),
            decisions,
            holdouts,
            new,
            deferred,
            " (dry run)" if dry_run else "",
        )

        by_channel = _materialise_work(conn, decided_at, list(by_name), dry_run)
        sendable = sorted(by_channel)
        if not dry_run:
            run.channels, missing = _channel_senders(sendable, sendgrid_conn_id, request_timeout_s)
            for name, why in missing.items():
                # left pending, unclaimed: the task fails and its retry (or a rerun) sends them once configured
                log.error("%d %s message(s) not sent: channel not configured: %s", by_channel[name], name, why)
                not_configured[name] = by_channel[name]
                run.count("pending", by_channel[name])
            sendable = sorted(run.channels)
        total = sum(by_channel.get(c, 0) for c in sendable)
        shards = 1 if dry_run else shard_count(total, processes, min_per_process)
        workers = max(concurrency // shards, 1)
        children = []
        if shards > 1:
            # the other processes' shares leave this one's worklist; each child builds its own (S2: every
            # claim is still the conditional update, so shares that overlapped could not send twice)
            conn.execute("delete from cr_work as m where not (true" + _SHARD_SQL + ")", {"shard": 0, "shards": shards})
            children = _start_shards(run, scope, shards, sendable, workers, claim_batch, list(by_name))
            mine = conn.execute("select count(*) as n from cr_work where channel = any(%s)", (sendable,)).fetchone()
            total = mine["n"] if mine else 0
            log.info("sending over %d processes of %d workers each", shards, workers)
        try:
            _send_pool(run, conn, total, sendable, workers, max(claim_batch, 1))
        finally:
            for child in children:
                _collect_shard(run, child)
        conn.commit()
        for c in run.conns:
            c.close()
        if dry_run:
            outbox.record(conn, run.dry_rows)
        conn.execute("drop table if exists cr_run")
        conn.commit()
        outbox_counts = outbox.counts_by_status(conn, decided_at, list(by_name), dry_run=dry_run)
    elapsed = time.monotonic() - started
    result = {
        "decided_at": decided_at.isoformat(),
        "dry_run": dry_run,
        "decisions": decisions,
        "holdouts": holdouts,
        "stale_claims_resolved": stale,
        "deferred": deferred,
        "channels_not_configured": not_configured,
        "this_run": dict(sorted(run.counts.items())),
        "outbox": outbox_counts,
        "seconds": round(elapsed, 2),
    }
    log.info("send_messages: %s", result)
    left = run.counts.get("pending", 0) + run.counts.get("error", 0)
    if left and not dry_run:
        raise SendIncomplete(f"{left} message(s) left pending after retries; a rerun will send them", result)
    return result
