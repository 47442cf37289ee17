"""SMS through Twilio's Messages API with the official `twilio` client (F4, contract §1).

Configuration (run time only): the Airflow connection `twilio_default` — `login` is the account SID, `password`
the auth token, `host` (when set) replaces `https://api.twilio.com` (a local stand-in in tests and the demo),
`extra.from_number` the sender (E.164, or a Messaging Service SID `MG…`). Request timeout:
`CR_TWILIO_TIMEOUT_S` (default 30 s) unless the caller gives one.

The interface mirrors `channels.email`: `build_sms(to=…, text=…)` makes the body, `SmsChannel.send(body)`
answers a `SendResult` (see `cart_recovery.channels`):
- 201 -> `accepted`, with the message SID (`SM…`) as the provider message id;
- 429 and 5xx -> `retry`, with `Retry-After` when Twilio gave one; nothing left / refused -> `retry`;
- 400 with Twilio error 21610 (the number replied STOP) -> `gone`: suppress SMS for the customer (E4);
- any other 4xx -> `rejected`;
- a timeout or a dropped connection after the request left -> `unknown` (never re-sent: Twilio has no
  idempotency key for Messages).
No status callback is requested: delivery and STOP come back as provider events, not as calls into Airflow.

Pure helpers for the sequencing code: `sms_segments` / `gsm7_segments` (how many SMS a text costs),
`sms_text` / `render_sms` (the short fr/en text from `include/templates/sms/<template>/<locale>.txt.j2`),
`normalize_phone` / `is_e164` (E2), `recipient_time_zone` and `quiet_hours_deferral` (F4: no SMS between
21:00 and 08:00 in the recipient's zone).

Phone numbers are never logged in clear: `mask_phone` (O5).
"""

from __future__ import annotations

import logging
import os
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from cart_recovery import TEMPLATES_DIR
from cart_recovery.channels import (
    SendResult,
    base_url,
    mask_phone,
    request_failure,
    scrub,
)
from cart_recovery.connections import connection_fields

log = logging.getLogger(__name__)

CONN_ID = "twilio_default"
DEFAULT_HOST = "https://api.twilio.com"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_STORE_TZ = "America/Toronto"
LOCALES = ("fr", "en")
MAX_BODY_CHARS = 1600  # Twilio refuses longer bodies (error 21617)
TWILIO_UNSUBSCRIBED = 21610  # "Attempt to send to unsubscribed recipient": the number replied STOP

QUIET_START = time(21, 0)  # F4: quiet hours 21:00–08:00 in the recipient's zone
QUIET_END = time(8, 0)


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str
    from_number: str
    host: str = DEFAULT_HOST

    def __repr__(self) -> str:  # never print the token (O5)
        return f"TwilioSettings(host={self.host!r}, account_sid={self.account_sid!r}, auth_token=***)"


def twilio_settings(conn_id: str = CONN_ID) -> TwilioSettings:
    """The account, token, sender and base URL from the Airflow connection (contract §1), at run time."""
    fields = connection_fields(conn_id)
    settings = TwilioSettings(
        account_sid=fields.login,
        auth_token=fields.password,
        from_number=str(fields.extra.get("from_number") or ""),
        host=base_url(fields, DEFAULT_HOST),
    )
    missing = [
        name
        for name, value in (
            ("login (the account SID)", settings.account_sid),
            ("password (the auth token)", settings.auth_token),
            ("extra.from_number", settings.from_number),
        )
        if not value
    ]
    if missing:
        raise RuntimeError(f"connection {conn_id} lacks {', '.join(missing)}")
    return settings


# --------------------------------------------------------------------------- phone numbers (E2)
def normalize_phone(raw: str | None, default_region: str = "CA") -> str | None:
    """A valid number in E.164 (`+15145550123`), or None. National forms (`(514) 555-0123`) are read in
    `default_region`."""
    import phonenumbers

    if not raw or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, None if raw.strip().startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_e164(phone: str | None) -> bool:
    """E2: the number is already in E.164 form and valid for its country."""
    return bool(phone) and phone.startswith("+") and normalize_phone(phone) == phone  # type: ignore[union-attr]


# --------------------------------------------------------------------------- quiet hours (F4)
def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def recipient_time_zone(phone: str | None, store_tz: str | None = None) -> ZoneInfo:
    """The recipient's zone: the phone's, when phonenumbers' timezone data gives exactly one (Canadian area
    codes do: 514 -> America/Toronto, 604 -> America/Vancouver); else the store's; else America/Toronto."""
    import phonenumbers
    from phonenumbers import timezone as phone_tz

    if phone:
        try:
            number = phonenumbers.parse(phone, None if phone.startswith("+") else "CA")
            zones = phone_tz.time_zones_for_number(number)
        except phonenumbers.NumberParseException:
            zones = ()
        if len(zones) == 1 and (zone := _zone(zones[0])) is not None:
            return zone
    return _zone(store_tz) or ZoneInfo(DEFAULT_STORE_TZ)


def quiet_hours_deferral(send_at: datetime, phone: str | None, store_tz: str | None = None) -> datetime | None:
    """F4: None when `send_at` falls outside 21:00–08:00 in the recipient's zone; else the next 08:00 there
    (an aware datetime in that zone) — the same day before 08:00, the next day from 21:00.

    Local wall-clock arithmetic through zoneinfo, so a DST change between now and 08:00 is counted right
    (a night of 9 or 11 hours). `send_at` must be aware: it is the run's T (or T plus a step delay), never
    the wall clock."""
    if send_at.tzinfo is None or send_at.utcoffset() is None:
        raise ValueError("send_at must be timezone-aware (the run's data-interval end, not the wall clock)")
    zone = recipient_time_zone(phone, store_tz)
    local = send_at.astimezone(zone)
    if QUIET_END <= local.time() < QUIET_START:
        return None
    day = local.date() if local.time() < QUIET_END else local.date() + timedelta(days=1)
    # 08:00 exists on every day in the zones we serve (changes happen at 02:00); the UTC round trip
    # normalises a wall time that a zone would skip
    return datetime.combine(day, QUIET_END, tzinfo=zone).astimezone(ZoneInfo("UTC")).astimezone(zone)


# --------------------------------------------------------------------------- encoding and segments
# 3GPP TS 23.038 default alphabet (the escape 0x1B excluded) and its extension table (2 septets each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SegmentCount:
    encoding: Encoding
    units: int  # septets for GSM-7 (extension characters count 2), UTF-16 code units for UCS-2
    segments: int


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _pack(costs: list[int], single: int, per_segment: int) -> int:
    """Segments for characters of the given costs: one segment up to `single` units, else concatenated
    segments of `per_segment` units (the rest is the UDH) where a character is never split across two."""
    total = sum(costs)
    if total <= single:
        return 1 if total else 0
    segments, used = 1, 0
    for cost in costs:
        if used + cost > per_segment:
            segments, used = segments + 1, 0
        used += cost
    return segments


def sms_segments(text: str) -> SegmentCount:
    """How many SMS `text` costs: GSM-7 when every character is in the default alphabet or its extension
    table (160 a message, 153 a part; `€ [ ] { } ^ ~ | \\` count twice), else UCS-2 (70 UTF-16 units, 67 a
    part; an emoji outside the BMP counts twice)."""
    if is_gsm7(text):
        costs = [2 if c in GSM7_EXTENSION else 1 for c in text]
        return SegmentCount("GSM-7", sum(costs), _pack(costs, 160, 153))
    costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SegmentCount("UCS-2", sum(costs), _pack(costs, 70, 67))


def gsm7_segments(text: str) -> int:
    """The number of SMS segments `text` is billed as (see `sms_segments`)."""
    return sms_segments(text).segments


_TRANSLIT = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u202f": " ",
    "\u2009": " ",
    "\u0153": "oe",
    "\u0152": "OE",
    "\u00e7": "c",  # ç: only Ç is in the default alphabet
}


def to_gsm7(text: str) -> str:
    """`text` with characters outside GSM-7 replaced by their closest GSM-7 form where one exists (typographic
    quotes and dashes, non-breaking spaces, `œ`, accents GSM-7 lacks: `ê` -> `e`, `ç` -> `c`); others (e.g.
    CJK) stay, and the message is then counted as UCS-2. Used on customer data (titles), so one `ê` in a
    book title does not halve the message's size; the templates' own text is already GSM-7."""
    out: list[str] = []
    for c in text:
        if c in GSM7_BASIC or c in GSM7_EXTENSION:
            out.append(c)
        elif c in _TRANSLIT:
            out.append(_TRANSLIT[c])
        else:
            base = "".join(ch for ch in unicodedata.normalize("NFKD", c) if not unicodedata.combining(ch))
            out.append(base if base and is_gsm7(base) else c)
    return "".join(out)


# --------------------------------------------------------------------------- text (F4)
@dataclass(frozen=True)
class RenderedSms:
    text: str
    encoding: Encoding
    units: int
    segments: int


@lru_cache(maxsize=4)
def _environment(templates_dir: str) -> jinja2.Environment:
    # plain text: no autoescape; a missing name fails loudly (STYLE.md)
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
        keep_trailing_newline=False,
    )


MIN_TITLE_CHARS = 12


def _shorten(title: str, limit: int) -> str:
    """The title cut to `limit` characters with `...`, on a word boundary when one is close."""
    if len(title) <= limit:
        return title
    cut = title[: max(limit - 3, 1)].rstrip()
    space = cut.rfind(" ")
    if space >= (limit - 3) * 2 // 3:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "..."


def sms_text(
    *,
    locale: str,
    first_item_title: str,
    cart_link: str,
    coupon_code: str | None = None,
    coupon_percent: Any = None,
    more_items: int = 0,
    sender: str | None = None,
    template: str = "abandoned_cart",
    templates_dir: Path | str = TEMPLATES_DIR,
    max_units: int = 160,
) -> RenderedSms:
    """The short reminder (F4): sender, the first item's title, "and N more", the SMS coupon (C1: 5 %) when
    given, the cart link and the STOP instruction, in French or English.

    Aims at one GSM-7 segment (`max_units`): the title is transliterated to GSM-7 and shortened (not below
    MIN_TITLE_CHARS) to the longest that fits; when none fits (a long link), to the longest that keeps the
    fewest segments possible, and the segments are counted.
    The cart link goes in as given: a short link keeps the message in one segment (docs/CHANNELS.md)."""
    locale = locale if locale in LOCALES else "fr"
    tpl = _environment(str(templates_dir)).get_template(f"sms/{template}/{locale}.txt.j2")
    coupon = None
    if coupon_code:
        pct = "" if coupon_percent in (None, "") else f"{float(coupon_percent):.2f}".rstrip("0").rstrip(".")
        coupon = {"code": coupon_code, "percent": pct}
    clean_title = " ".join(to_gsm7(first_item_title or "").split())
    ctx = {
        "sender": " ".join(to_gsm7(sender or "").split()),
        "more_items": max(int(more_items or 0), 0),
        "coupon": coupon,
        "cart_link": cart_link,
    }

    def render(title: str) -> tuple[str, SegmentCount]:
        text = " ".join(tpl.render(title=title, **ctx).split())  # one line, single spaces
        return text, sms_segments(text)

    text, count = render(clean_title)
    if count.units > max_units and len(clean_title) > MIN_TITLE_CHARS:
        # the fewest segments any title length allows (one, unless the link is long), then the longest title
        # that keeps to it: a binary search, one render per try
        floor = render(_shorten(clean_title, MIN_TITLE_CHARS))[1]
        target = max(floor.segments, 1)

        def fits(c: SegmentCount) -> bool:
            return c.units <= max_units if target == 1 else c.segments <= target

        lo, hi = MIN_TITLE_CHARS, len(clean_title)
        text, count = render(_shorten(clean_title, lo))
        while lo < hi:
            mid = (lo + hi + 1) // 2
            t, c = render(_shorten(clean_title, mid))
            if fits(c):
                lo, text, count = mid, t, c
            else:
                hi = mid - 1
    if len(text) > MAX_BODY_CHARS:
        raise ValueError(f"SMS text of {len(text)} characters: Twilio takes at most {MAX_BODY_CHARS}")
    return RenderedSms(text, count.encoding, count.units, count.segments)


def render_sms(
    row: Mapping[str, Any],
    *,
    cart_link: str,
    sender: str | None = None,
    default_locale: str = "fr",
    template: str = "abandoned_cart",
    templates_dir: Path | str = TEMPLATES_DIR,
) -> RenderedSms:
    """`sms_text` for a decision row (`restricted.message_contents` joined with `marts.eligible_recipients`:
    `locale, items, item_count, more_items_count, coupon_code, coupon_percent`). The caller gives the cart
    link (tracked, M3; short when it can be) and the sender name (CASL: the sender is identified)."""
    locale = str(row.get("locale") or "").lower()[:2]
    if locale not in LOCALES:
        locale = default_locale
    items = sorted(row.get("items") or [], key=lambda i: i.get("position") or 0)
    first = items[0] if items else {}
    title = str(first.get("title") or first.get("sku") or "")
    item_count = int(row.get("item_count") or len(items) or 1)
    return sms_text(
        locale=locale,
        first_item_title=title,
        cart_link=cart_link,
        coupon_code=row.get("coupon_code"),
        coupon_percent=row.get("coupon_percent"),
        more_items=max(item_count - 1, 0),
        sender=sender,
        template=template,
        templates_dir=templates_dir,
    )


# --------------------------------------------------------------------------- sending
def build_sms(*, to: str, text: str) -> dict[str, str]:
    """The body `SmsChannel.send` takes: the recipient (E.164) and the text. The sender comes from the
    connection."""
    return {"to": to, "body": text}


def _retry_after(headers: Any) -> float | None:
    from cart_recovery.channels.email import _retry_after as parse  # one parser for every channel

    return parse(headers)


# Twilio's client logs a dozen INFO lines per request (URL, headers): quiet unless asked for (no PII either way:
# the form body with the number is never logged by it).
_TWILIO_HTTP_LOG = log.getChild("twilio_http")
_TWILIO_HTTP_LOG.setLevel(logging.WARNING)


def _http_client_class() -> type:
    from twilio.http.http_client import TwilioHttpClient

    class BaseUrlHttpClient(TwilioHttpClient):
        """Twilio's own HTTP client with the base URL replaced (contract §1: `host` replaces
        https://api.twilio.com), and the last response kept so a 429's `Retry-After` can be read (the
        client's exception carries only the status)."""

        def __init__(self, host: str, timeout: float) -> None:
            super().__init__(pool_connections=True, timeout=timeout, logger=_TWILIO_HTTP_LOG)
            self.host = host.rstrip("/")
            self.last_response: Any = None

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if self.host != DEFAULT_HOST and url.startswith(DEFAULT_HOST):
                url = self.host + url[len(DEFAULT_HOST) :]
            self.last_response = None
            response = super().request(method, url, *args, **kwargs)
            self.last_response = response
            return response

    return BaseUrlHttpClient


class SmsChannel:
    """Sends one Twilio Messages request per SMS; one Twilio client per thread (each with its own session)."""

    def __init__(self, settings: TwilioSettings, timeout_s: float | None = None) -> None:
        self.settings = settings
        self.timeout_s = timeout_s or float(os.environ.get("CR_TWILIO_TIMEOUT_S") or DEFAULT_TIMEOUT_S)
        self._local = threading.local()

    def _client(self) -> tuple[Any, Any]:
        pair = getattr(self._local, "pair", None)
        if pair is None:
            from twilio.rest import Client

            http = _http_client_class()(self.settings.host, self.timeout_s)
            client = Client(
                self.settings.account_sid,
                self.settings.auth_token,
                account_sid=self.settings.account_sid,
                http_client=http,
            )
            pair = self._local.pair = (client, http)
        return pair

    def send(self, body: Mapping[str, Any]) -> SendResult:
        from twilio.base.exceptions import TwilioException

        to, text = str(body.get("to") or ""), str(body.get("body") or "")
        if not is_e164(to):  # E2: never hand Twilio an address we know is wrong
            return SendResult("rejected", error=f"not a valid E.164 phone number: {mask_phone(to)}")
        if not text or len(text) > MAX_BODY_CHARS:
            return SendResult("rejected", error=f"SMS body of {len(text)} characters (1 to {MAX_BODY_CHARS})")
        client, http = self._client()
        sender = self.settings.from_number
        params: dict[str, Any] = {"to": to, "body": text}
        if sender.startswith("MG"):
            params["messaging_service_sid"] = sender
        else:
            params["from_"] = sender
        try:
            message = client.messages.create(**params)
        except TwilioException as exc:
            status = getattr(exc, "status", None)
            if status is None:  # the client's own failure (an unparsable answer): it was sent
                return SendResult("unknown", error=f"twilio: {type(exc).__name__}: {scrub(str(exc))[:300]}")
            code = int(status)
            twilio_code = getattr(exc, "code", None)
            detail = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "")
            error = f"HTTP {code} (Twilio {twilio_code}): {scrub(str(detail))[:300]}"
            if code == 429 or code >= 500:
                headers = http.last_response.headers if http.last_response is not None else None
                return SendResult("retry", code, error=error, retry_after_s=_retry_after(headers))
            if twilio_code == TWILIO_UNSUBSCRIBED:
                log.info("SMS to %s: the number replied STOP (Twilio 21610)", mask_phone(to))
                return SendResult("gone", code, error=error)
            return SendResult("rejected", code, error=error)
        except Exception as exc:
            result = request_failure(exc)
            if result is None:
                raise
            return result
        code = http.last_response.status_code if http.last_response is not None else 201
        return SendResult("accepted", int(code), provider_message_id=message.sid)
