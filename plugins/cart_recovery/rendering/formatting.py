"""Locale-aware display helpers (M1, M2) and tracked links (M3)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SYMBOLS = {"CAD": "$", "USD": "$", "EUR": "€", "GBP": "£"}


def format_money(amount: object, currency: str | None, locale: str) -> str:
    """`20,00 $` in French (Canada), `$20.00` in English; thousands grouped (`1 234,50 $`, `$1,234.50`)."""
    if amount is None or amount == "":
        return ""
    value = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    code = (currency or "CAD").upper()
    symbol = _SYMBOLS.get(code, code)
    digits = f"{abs(value):,.2f}"
    sign = "-" if value < 0 else ""
    if locale == "fr":
        digits = digits.replace(",", " ").replace(".", ",")
        return f"{sign}{digits} {symbol}"
    if len(symbol) == 1:
        return f"{sign}{symbol}{digits}"
    return f"{sign}{digits} {symbol}"


def tracking_params(*, campaign: str, step: int, channel: str, message_id: str) -> dict[str, str]:
    """M3: the UTM parameters and the message id (`cr_message_id`) every link of a message carries."""
    return {
        "utm_source": "cart_recovery",
        "utm_medium": channel,
        "utm_campaign": campaign,
        "utm_content": f"step{step}",
        "cr_message_id": message_id,
    }


def add_params(url: str, params: dict[str, str], encoded: str | None = None) -> str:
    """The URL with `params`; the shop's own query parameters are kept, ours replace any of the same name.

    `encoded` (urlencode(params), computed once per message) makes the common case — no query yet — cheap.
    """
    if not url:
        return ""
    parts = urlsplit(url)
    if not parts.query:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, encoded or urlencode(params), parts.fragment))
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query + list(params.items())), parts.fragment))


def tracked_url(url: str, *, campaign: str, step: int, channel: str, message_id: str) -> str:
    """M3: the link with UTM parameters and the message id, for click and revenue attribution."""
    return add_params(url, tracking_params(campaign=campaign, step=step, channel=channel, message_id=message_id))


def one_line(text: str) -> str:
    """A subject is one line (Django's rule): line breaks and runs of spaces become one space."""
    return " ".join(text.split())
