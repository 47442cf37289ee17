"""Delivery channels. Email goes through SendGrid (`channels.email`, S1); SMS and push come later (F4).

Every channel answers a send with a `SendResult` whose `outcome` the outbox maps to a status (S2):
- `accepted`  the provider took the message (email: 202) -> `sent`, with the provider's message id;
- `rejected`  a definitive refusal (4xx other than 429) -> `failed`;
- `retry`     nothing was sent, or the provider asks to come back (429, 5xx, connection refused) ->
              retried with backoff in the same run;
- `unknown`   the request left and no answer came back (timeout after send, connection dropped) ->
              `unknown`, never re-sent automatically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SUPPORTED_CHANNELS = frozenset({"email"})

Outcome = Literal["accepted", "rejected", "retry", "unknown"]


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
