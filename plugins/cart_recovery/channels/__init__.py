"""Delivery channels. Email goes through SendGrid (`channels.email`, S1); SMS through Twilio (`channels.sms`) and
push through VAPID web push and FCM (`channels.push`) (F4). docs/CHANNELS.md tells how to configure them.

Every channel answers a send with a `SendResult` whose `outcome` the outbox maps to a status (S2):
- `accepted`  the provider took the message (email: 202) -> `sent`, with the provider's message id;
- `rejected`  a definitive refusal (4xx other than 429) -> `failed`;
- `retry`     nothing was sent, or the provider asks to come back (429, 5xx, connection refused) ->
              retried with backoff in the same run;
- `unknown`   the request left and no answer came back (timeout after send, connection dropped) ->
              `unknown`, never re-sent automatically.
- `gone`      the address is dead for good on this channel (push: 404/410, FCM `UNREGISTERED`; SMS: Twilio
              21610, the number replied STOP) -> `failed`, and the caller revokes the push subscription or
              suppresses SMS for the number (E4); never retried.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from cart_recovery.connections import ConnectionFields

SUPPORTED_CHANNELS = frozenset({"email", "sms", "push"})  # wired into sending.py (F4)

Outcome = Literal["accepted", "rejected", "retry", "unknown", "gone"]


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    status_code: int | None = None
    provider_message_id: str | None = None
    error: str | None = None
    retry_after_s: float | None = None  # from Retry-After or X-RateLimit-Reset, when the provider said


_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-])[A-Za-z0-9.-]*(\.[A-Za-z]{2,})")
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}(\d{2})")


def mask_email(email: str | None) -> str:
    """O5: `alice@mail.example` -> `a***@m***.example`, for logs."""
    if not email:
        return ""
    return _EMAIL.sub(r"\1***@\2***\3", email) if "@" in email else "***"


def scrub(text: str | None) -> str:
    """O5: any email address or phone number in a text (an error body, an exception) masked for logs/rows."""
    if not text:
        return ""
    return _PHONE.sub(r"***\1", _EMAIL.sub(r"\1***@\2***\3", text))


def mask_phone(phone: str | None) -> str:
    """O5: `+15145550123` -> `+1*******23`, for logs (the country code and the last two digits only)."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 4:
        return "***"
    lead = "+" + digits[0] if phone.strip().startswith("+") else ""
    return f"{lead}{'*' * (len(digits) - len(lead.lstrip('+')) - 2)}{digits[-2:]}"


# --------------------------------------------------------------------------- connections (contract §1)
# read by cart_recovery.connections, the one reader of every connection


def base_url(fields: ConnectionFields, default: str) -> str:
    """The provider's base URL: the connection's `host` (with its scheme, e.g. `http://127.0.0.1:8026`, or a
    bare host name with `port` and `schema` = http/https) replaces `default`; no host -> `default`."""
    host = fields.host
    if not host:
        return default
    if "://" in host:
        url = host
    else:
        scheme = fields.schema if fields.schema in ("http", "https") else "https"
        url = f"{scheme}://{host}"
    parts = urlsplit(url)
    if fields.port and not parts.port:
        url = f"{parts.scheme}://{parts.hostname}:{fields.port}{parts.path}"
    return url.rstrip("/")


# --------------------------------------------------------------------------- HTTP failures (S2)
def request_failure(exc: BaseException) -> SendResult | None:
    """A `requests` exception (Twilio's client, pywebpush and FCM all use requests) as an outcome (S2):
    nothing left the machine (refused, DNS, connect timeout) -> `retry`; the request left and no answer came
    (read timeout, connection dropped while waiting) -> `unknown`, never re-sent. None for other exceptions."""
    import requests

    if not isinstance(exc, requests.RequestException):
        return None
    name = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout):
        return SendResult("retry", error=f"not sent: {name}")
    if isinstance(exc, requests.ReadTimeout):
        return SendResult("unknown", error=f"no answer after sending: {name}")
    if isinstance(exc, requests.ConnectionError):
        from urllib3.exceptions import NameResolutionError, NewConnectionError

        cause: BaseException | None = exc
        seen = 0
        while cause is not None and seen < 8:  # walk requests -> urllib3 MaxRetryError -> its reason
            if isinstance(cause, NewConnectionError | NameResolutionError | ConnectionRefusedError):
                return SendResult("retry", error=f"not sent: {type(cause).__name__}")
            cause = getattr(cause, "reason", None) or cause.__cause__ or cause.__context__
            seen += 1
        return SendResult("unknown", error=f"no answer after sending: {name}: {scrub(str(exc))[:200]}")
    return SendResult("retry", error=f"not sent: {name}: {scrub(str(exc))[:200]}")
