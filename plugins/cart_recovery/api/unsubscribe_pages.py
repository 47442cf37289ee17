"""The unsubscribe endpoint (M6, E4): `/cart-recovery/unsubscribe?token=…`, the URL every message carries
(`cart_recovery.unsubscribe.unsubscribe_url`, `List-Unsubscribe`).

- `POST` records the unsubscribe at once and answers 200 with a page in the customer's language: the
  RFC 8058 one-click POST from a mail client (body `List-Unsubscribe=One-Click`, recorded with source
  `one_click`) and the button of the confirmation page (source `link`) alike. No cookie, no login, no
  redirect; a second POST changes nothing.
- `GET` only shows the confirmation page with that button: link scanners fetch URLs, so a GET alone never
  unsubscribes.
- A malformed, tampered or expired token gets 400 and one fixed bilingual sentence, nothing more.

The language is the customer's (`raw.customers.locale`, latest record), else French. Token expiry is
checked against the wall clock: recording an unsubscribe is a side effect, not a run's decision; the
next run excludes the customer (reason `suppressed`, E4) through `int_suppressions`.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import jinja2
import psycopg
import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from cart_recovery import TEMPLATES_DIR
from cart_recovery.unsubscribe import InvalidToken, UnsubscribeClaim, record_unsubscribe, verify

log = logging.getLogger(__name__)

PAGES_DIR = TEMPLATES_DIR / "unsubscribe"
LOCALES = ("fr", "en")
DEFAULT_LOCALE = "fr"
# The token rides in the URL: keep it out of caches, referrers and search engines; the page loads nothing.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}

router = APIRouter()


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PAGES_DIR)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def strings() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((PAGES_DIR / "strings.yml").read_text(encoding="utf-8"))


def render(page: str, locale: str, **context: Any) -> str:
    """One page (`confirm`, `done`, `invalid` or `unavailable`) in one locale."""
    from cart_recovery.rendering import sender_identity

    all_strings = strings()
    return (
        _env()
        .get_template(f"{page}.html.j2")
        .render(locale=locale, t=all_strings[locale], strings=all_strings, sender=sender_identity(), **context)
    )


def customer_locale(conn: psycopg.Connection, customer_id: str) -> str:
    """The customer's latest locale (contract §2: a later `updated_at` supersedes), else French."""
    row = conn.execute(
        "select locale from raw.customers where customer_id = %s "
        "order by updated_at desc, _file_name desc, _line_number desc limit 1",
        (customer_id,),
    ).fetchone()
    return row[0] if row and row[0] in LOCALES else DEFAULT_LOCALE


def _locale_of(claim: UnsubscribeClaim) -> str:
    from cart_recovery.api.app import warehouse

    try:
        with warehouse() as conn:
            return customer_locale(conn, claim.customer_id)
    except psycopg.OperationalError as exc:  # the page still works, in the default language
        log.warning("unsubscribe page: customer locale unavailable (%s)", type(exc).__name__)
        return DEFAULT_LOCALE


def _record(token: str, source: str) -> tuple[UnsubscribeClaim, str]:
    from cart_recovery.api.app import warehouse

    with warehouse() as conn:
        claim = record_unsubscribe(conn, token, source=source)
        return claim, customer_locale(conn, claim.customer_id)


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _invalid() -> HTMLResponse:
    return _page(render("invalid", DEFAULT_LOCALE), status=400)


@router.get("/unsubscribe", response_class=HTMLResponse)
async def confirm_page(token: str = "") -> HTMLResponse:
    try:
        claim = verify(token)
    except InvalidToken as exc:
        log.info("unsubscribe page: refused token (%s)", exc)
        return _invalid()
    locale = await run_in_threadpool(_locale_of, claim)
    return _page(render("confirm", locale, token=token, channel=claim.channel))


@router.post("/unsubscribe", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str = "") -> HTMLResponse:
    try:
        form = await request.form()
        one_click = form.get("List-Unsubscribe") == "One-Click"
    except (HTTPException, MultiPartException):  # a broken form: still a request with a signed token
        one_click = False
    try:
        claim, locale = await run_in_threadpool(_record, token, "one_click" if one_click else "link")
    except InvalidToken as exc:
        log.info("unsubscribe: refused token (%s)", exc)
        return _invalid()
    except psycopg.OperationalError as exc:
        log.error("unsubscribe: warehouse unavailable (%s)", type(exc).__name__)
        return _page(render("unavailable", DEFAULT_LOCALE), status=503)
    return _page(render("done", locale, channel=claim.channel))
