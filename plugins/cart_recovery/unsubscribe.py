"""Signed unsubscribe links and headers (M6, E4).

A token is `<payload>.<signature>`, both base64url without padding: the payload is the JSON list
`[customer_id, channel, campaign, issued_at]` (issued_at in Unix seconds), the signature its HMAC-SHA256.
Messages use the deciding run's T as issued_at, so re-rendering a date gives the same links (O2); a token
stays valid `max_age_days` (90 by default; never less than 60: a customer may open an old email).

The secret (run time only): env `CR_UNSUBSCRIBE_SECRET`, else the password of the Airflow connection
`cart_recovery_unsubscribe`, else a fixed local-only default with a warning — links signed with it are
forgeable, so a production deployment must set one of the first two.

The link is `{CR_PUBLIC_BASE_URL}/cart-recovery/unsubscribe?token=…`; the same URL answers the one-click
POST of `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058). `record_unsubscribe` writes
`ops.unsubscribes`, which the exclusions read on the next run (E4).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

CONN_ID = "cart_recovery_unsubscribe"
LOCAL_SECRET = "cart-recovery-local-only-unsubscribe-secret"  # never for production: see the docstring
DEFAULT_MAX_AGE_DAYS = 90
MIN_MAX_AGE_DAYS = 60
PATH = "/cart-recovery/unsubscribe"


class InvalidToken(ValueError):
    """The token is malformed, tampered with, or expired."""


@dataclass(frozen=True)
class UnsubscribeClaim:
    customer_id: str
    channel: str
    campaign: str
    issued_at: datetime


def unsubscribe_secret() -> bytes:
    """The signing secret, resolved at run time (never at DAG parse time)."""
    value = os.environ.get("CR_UNSUBSCRIBE_SECRET")
    if not value:
        try:
            from cart_recovery.connections import connection_fields

            value = connection_fields(CONN_ID).password
        except Exception as exc:  # any lookup failure means "not configured here"
            log.debug("no connection %s: %s", CONN_ID, type(exc).__name__)
            value = None
    if not value:
        log.warning(
            "unsubscribe links are signed with the LOCAL-ONLY default secret: set CR_UNSUBSCRIBE_SECRET or "
            "the password of connection %s in production",
            CONN_ID,
        )
        value = LOCAL_SECRET
    return value.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: str, secret: bytes) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def make_token(customer_id: str, channel: str, campaign: str, issued_at: datetime, secret: bytes | None = None) -> str:
    secret = secret if secret is not None else unsubscribe_secret()
    body = json.dumps([customer_id, channel, campaign, int(issued_at.timestamp())], separators=(",", ":"))
    payload = _b64(body.encode("utf-8"))
    return f"{payload}.{_sign(payload, secret)}"


def verify(
    token: str,
    secret: bytes | None = None,
    now: datetime | None = None,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
) -> UnsubscribeClaim:
    """The token's claim, or InvalidToken. Signature compared in constant time; expiry after max_age_days."""
    secret = secret if secret is not None else unsubscribe_secret()
    max_age_days = max(max_age_days, MIN_MAX_AGE_DAYS)
    try:
        payload, signature = token.split(".")
    except (AttributeError, ValueError):
        raise InvalidToken("malformed token") from None
    if not hmac.compare_digest(_sign(payload, secret), signature):
        raise InvalidToken("bad signature")
    try:
        customer_id, channel, campaign, issued = json.loads(_unb64(payload))
        issued_at = datetime.fromtimestamp(int(issued), UTC)
    except (ValueError, TypeError) as exc:
        raise InvalidToken("malformed payload") from exc
    now = now or datetime.now(UTC)
    if now - issued_at > timedelta(days=max_age_days):
        raise InvalidToken(f"expired (issued {issued_at.date()}, valid {max_age_days} days)")
    if issued_at - now > timedelta(days=1):  # a token from the future was not signed by us in good faith
        raise InvalidToken("issued in the future")
    return UnsubscribeClaim(str(customer_id), str(channel), str(campaign), issued_at)


def unsubscribe_url(token: str, base_url: str | None = None) -> str:
    if base_url is None:
        from cart_recovery.rendering import sender_identity

        base_url = sender_identity().public_base_url
    return f"{base_url.rstrip('/')}{PATH}?{urlencode({'token': token})}"


def list_unsubscribe_headers(url: str, mailto: str | None = None) -> dict[str, str]:
    """M6: RFC 2369 `List-Unsubscribe` (https URL first, optional mailto) and RFC 8058 one-click POST."""
    value = f"<{url}>"
    if mailto:
        value += f", <mailto:{mailto}?subject=unsubscribe>"
    return {"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def record_unsubscribe(
    conn: psycopg.Connection, token: str, source: str = "link", secret: bytes | None = None
) -> UnsubscribeClaim:
    """Verify a token and record the unsubscribe in ops.unsubscribes (E4: effective by the next run).

    For the web endpoint (`cart_recovery.api.unsubscribe_pages`: GET shows a confirmation, POST calls
    this) and operators. Recording twice keeps the first record.
    """
    claim = verify(token, secret)
    # idempotent: a second click (or the one-click POST after the page's button) adds no row
    conn.execute(
        "insert into ops.unsubscribes (customer_id, channel, recorded_at, source) "
        "select %(customer_id)s, %(channel)s, now(), %(source)s "
        "where not exists (select from ops.unsubscribes where customer_id = %(customer_id)s and channel = %(channel)s) "
        "on conflict do nothing",
        {"customer_id": claim.customer_id, "channel": claim.channel, "source": source},
    )
    conn.commit()
    log.info(
        "unsubscribe recorded: customer %s, channel %s, campaign %s", claim.customer_id, claim.channel, claim.campaign
    )
    return claim
