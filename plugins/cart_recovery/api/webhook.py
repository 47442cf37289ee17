"""SendGrid's signed Event Webhook (A1): `POST /cart-recovery/sendgrid/events`.

SendGrid signs `timestamp header + raw body` with ECDSA P-256 / SHA-256 and sends the base64 DER
signature in `X-Twilio-Email-Event-Webhook-Signature`, the Unix timestamp in
`X-Twilio-Email-Event-Webhook-Timestamp`. The verification key (base64 DER SubjectPublicKeyInfo, as
SendGrid's settings page shows it; PEM is accepted too) is the password, or `extra.public_key`, of the
Airflow connection `sendgrid_webhook`, read at request time and cached for `KEY_CACHE_SECONDS`.

Answers: 401 without the two headers; 403 for a bad signature or a timestamp more than
`CR_WEBHOOK_TOLERANCE_SECONDS` (300) away from the wall clock; 409 for a request already received (an
exact replay); 400 for a body that is not a JSON list; 413 above `MAX_BODY_BYTES`; 503 when the key is not
configured or the warehouse is unreachable (SendGrid retries non-2xx answers). Otherwise 200 after one
transaction: a `raw.webhook_receipts` row, the valid events in `raw.provider_events` through the same
row check as the `provider_events` landing files (`cart_recovery.ingest.kinds`), so both paths store
identical rows, and each invalid event in `raw.quarantine` with its reason (O4). Duplicates (SendGrid
re-delivers, sometimes under a new `sg_event_id`) are stored as they come: `stg_shop__provider_events`
deduplicates by id and by content, and `int_suppressions` turns unsubscribes, bounces and spam reports into
suppressions on the next run (E4).

The staleness check uses the wall clock: this endpoint records what arrives, it decides nothing. Logs
carry counts and receipt ids only, never an address (O5).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cart_recovery.ingest.kinds import KINDS, BadRow

log = logging.getLogger(__name__)

CONN_ID = "sendgrid_webhook"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
DEFAULT_TOLERANCE_SECONDS = 300
KEY_CACHE_SECONDS = 60.0
MAX_BODY_BYTES = 8 * 1024 * 1024  # far above SendGrid's batches; bounds what an unsigned caller can send
KIND = KINDS["provider_events"]

router = APIRouter()


class Rejected(Exception):
    """A request the webhook refuses; `reason` is safe to send back and to log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --- the verification key -------------------------------------------------------------------------


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The key as SendGrid shows it (base64 DER SubjectPublicKeyInfo), or PEM; P-256 only."""
    text = text.strip()
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ValueError(f"connection {CONN_ID}: not a public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"connection {CONN_ID}: not a P-256 (ECDSA) public key")
    return key


_key_cache: tuple[float, ec.EllipticCurvePublicKey] | None = None
_key_lock = threading.Lock()


def public_key() -> ec.EllipticCurvePublicKey | None:
    """The verification key from the `sendgrid_webhook` connection (cached briefly, so a rotated key
    takes effect within a minute), or None when it is not configured."""
    global _key_cache
    now = time.monotonic()
    cached = _key_cache
    if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
        return cached[1]
    from cart_recovery.connections import connection_fields

    try:
        conn = connection_fields(CONN_ID)
    except Exception as exc:  # any lookup failure means "not configured here"
        log.error("webhook: connection %s is not configured (%s)", CONN_ID, type(exc).__name__)
        return None
    text = conn.password or conn.extra.get("public_key")
    if not text:
        log.error("webhook: connection %s has no password nor extra.public_key", CONN_ID)
        return None
    try:
        key = load_public_key(text)
    except ValueError as exc:
        log.error("webhook: %s", exc)
        return None
    with _key_lock:
        _key_cache = (now, key)
    return key


def clear_key_cache() -> None:
    global _key_cache
    with _key_lock:
        _key_cache = None


def tolerance_seconds() -> int:
    return int(os.environ.get("CR_WEBHOOK_TOLERANCE_SECONDS") or DEFAULT_TOLERANCE_SECONDS)


# --- checks (pure) ------------------------------------------------------------------------------------


def verify_signature(key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes) -> bytes:
    """The decoded signature, or Rejected(403). SendGrid signs the timestamp header's text + the raw body."""
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        key.verify(der, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise Rejected(403, "invalid signature") from None
    return der


def check_timestamp(timestamp: str, now: float, tolerance: int) -> datetime:
    """When the request was signed, or Rejected(403) when that is too far from `now` (either way)."""
    try:
        signed = int(timestamp.strip())
    except ValueError:
        raise Rejected(403, "invalid timestamp") from None
    if abs(now - signed) > tolerance:
        raise Rejected(403, "stale timestamp")
    return datetime.fromtimestamp(signed, UTC)


def parse_events(body: bytes) -> list[Any]:
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(400, "malformed JSON") from None
    if not isinstance(events, list):
        raise Rejected(400, "expected a JSON list of events")
    return events


def check_event(event: Any) -> tuple[tuple[Any, ...] | None, str | None]:
    """(row, None) for a valid event, (None, reason) otherwise — the landing file's checks and reasons."""
    if not isinstance(event, dict):
        return None, "not a JSON object"
    absent = [k for k in KIND.required_fields if k not in event]
    if absent:
        return None, f"missing key {absent[0]}"
    try:
        return KIND.check(event), None
    except BadRow as bad:
        return None, str(bad)


# --- storage ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    receipt_id: int
    stored: int
    quarantined: int

    @property
    def file_name(self) -> str:
        return f"webhook:{self.receipt_id}"


def store_events(
    conn: psycopg.Connection, events: list[Any], signature: bytes, timestamp: str, body: bytes, signed_at: datetime
) -> Receipt | None:
    """One transaction: the receipt, the valid events, the quarantined ones. None for a replay (nothing
    is written). Concurrent identical requests serialise on the receipt's unique keys."""
    rows: list[tuple[int, tuple[Any, ...]]] = []
    bad: list[tuple[int, str, str]] = []
    for line, event in enumerate(events, start=1):
        row, reason = check_event(event)
        if row is None:
            bad.append((line, reason or "rejected", json.dumps(event, ensure_ascii=False)))
        else:
            rows.append((line, row))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "insert into raw.webhook_receipts "
            "(signature_sha256, signed_sha256, signed_at, body_sha256, events_stored, events_quarantined) "
            "values (%s, %s, %s, %s, %s, %s) on conflict do nothing returning receipt_id",
            (
                hashlib.sha256(signature).hexdigest(),
                hashlib.sha256(timestamp.encode("utf-8") + body).hexdigest(),
                signed_at,
                hashlib.sha256(body).hexdigest(),
                len(rows),
                len(bad),
            ),
        )
        returned = cur.fetchone()
        if returned is None:
            return None
        receipt = Receipt(returned[0], len(rows), len(bad))
        if rows:
            cols = ", ".join((*KIND.columns, "_file_name", "_line_number"))
            with cur.copy(f"copy {KIND.table} ({cols}) from stdin") as copy:
                for line, row in rows:
                    copy.write_row((*row, receipt.file_name, line))
        if bad:
            with cur.copy("copy raw.quarantine (file_name, kind, line_number, reason, content) from stdin") as copy:
                for line, reason, content in bad:
                    copy.write_row((receipt.file_name, KIND.name, line, reason, content))
    return receipt


def _store(events: list[Any], signature: bytes, timestamp: str, body: bytes, signed_at: datetime) -> Receipt | None:
    from cart_recovery.api.app import warehouse

    with warehouse() as conn:
        return store_events(conn, events, signature, timestamp, body, signed_at)


# --- the route ----------------------------------------------------------------------------------------


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Rejected(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Rejected(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/sendgrid/events")
async def sendgrid_events(request: Request) -> JSONResponse:
    try:
        signature = request.headers.get(SIGNATURE_HEADER)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise Rejected(401, "missing signature headers")
        body = await _read_body(request)
        key = await run_in_threadpool(public_key)
        if key is None:
            raise Rejected(503, "webhook verification key not configured")
        der = verify_signature(key, signature, timestamp, body)
        signed_at = check_timestamp(timestamp, time.time(), tolerance_seconds())
        events = parse_events(body)
        try:
            receipt = await run_in_threadpool(_store, events, der, timestamp, body, signed_at)
        except psycopg.OperationalError as exc:
            log.error("webhook: warehouse unavailable (%s)", type(exc).__name__)
            raise Rejected(503, "storage unavailable") from None
        if receipt is None:
            raise Rejected(409, "replayed request")
    except Rejected as rejected:
        log.warning("webhook: rejected (%s, %s)", rejected.status, rejected.reason)
        return JSONResponse({"error": rejected.reason}, status_code=rejected.status)
    log.info(
        "webhook: receipt %s, %d events stored, %d quarantined", receipt.receipt_id, receipt.stored, receipt.quarantined
    )
    return JSONResponse(
        {"receipt_id": receipt.receipt_id, "stored": receipt.stored, "quarantined": receipt.quarantined}
    )
