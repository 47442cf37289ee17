"""The FastAPI app behind `/cart-recovery` (see `cart_recovery.api`), and what its routes share.

Airflow does not authenticate plugin apps (a mounted app inherits none of the core API's dependencies):
the webhook and unsubscribe routes are public on purpose — SendGrid and customers are anonymous — and each
one authenticates its caller itself (the webhook's ECDSA signature, the unsubscribe link's HMAC token).

`GET /cart-recovery/dashboard` (A5) shows business aggregates, so it asks Airflow who the caller is, as the
UI's own API calls do: the `Authorization: Bearer` JWT or the `_token` cookie the Airflow UI sets at login
(sent along with the UI's iframe), checked by `airflow.api_fastapi.core_api.security.get_user`, then the
auth manager's read permission on the `cart_recovery_attribution` DAG (the DAG that builds the figures).
`CR_DASHBOARD_PUBLIC=true` skips the check, for a deployment that protects the path itself (a reverse
proxy) or serves the app outside the API server (docs/DASHBOARD.md). No interactive docs are served.
"""

from __future__ import annotations

import html
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import psycopg
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from cart_recovery.reporting.dashboard import ATTRIBUTION_DAG_ID, DEFAULT_DAYS, MAX_DAYS

log = logging.getLogger(__name__)

_schema_ready: set[str] = set()  # conninfo strings whose schema this process has ensured
_schema_lock = threading.Lock()


@contextmanager
def warehouse() -> Iterator[psycopg.Connection]:
    """A connection to `cart_recovery_db`, resolved per request; the raw/ops tables are created once per
    process and database (the API server may take a webhook before any task ran after an upgrade)."""
    from cart_recovery.db import conninfo, ensure_schema

    info = conninfo()
    with psycopg.connect(info) as conn:
        if info not in _schema_ready:
            with _schema_lock:
                ensure_schema(conn)
                _schema_ready.add(info)
        yield conn


DASHBOARD_PUBLIC_ENV = "CR_DASHBOARD_PUBLIC"
# Business figures: never cached by a proxy, framed only by the Airflow UI (same origin), nothing loaded.
DASHBOARD_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
}


def dashboard_is_public() -> bool:
    return os.environ.get(DASHBOARD_PUBLIC_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _message_page(status: int, title: str, body: str) -> HTMLResponse:
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Cart recovery</title></head>'
        f'<body style="font-family: sans-serif; margin: 2rem"><h1>{html.escape(title)}</h1>{body}</body></html>'
    )
    return HTMLResponse(page, status_code=status, headers=DASHBOARD_HEADERS)


async def dashboard_access(request: Request) -> HTMLResponse | None:
    """None when the caller may read the dashboard, else the page to answer (401, 403 or 503)."""
    if dashboard_is_public():
        return None
    try:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
        from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

        manager = get_auth_manager()
    except (ImportError, RuntimeError):  # not inside Airflow's API server: no auth manager to ask
        return _message_page(
            503,
            "Dashboard unavailable",
            f"<p>Serve it through the Airflow API server, or set {DASHBOARD_PUBLIC_ENV}=true behind a proxy "
            "that authenticates (docs/DASHBOARD.md).</p>",
        )
    try:
        user = await get_user(request, None, await bearer_scheme(request))  # Bearer JWT, else the UI's cookie
    except HTTPException as exc:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = manager.get_url_login(next_url=path)
        return _message_page(
            401 if exc.status_code == 401 else 403,
            "Sign in to Airflow first",
            f'<p>The cart recovery dashboard is for Airflow users. <a href="{html.escape(login)}">Sign in</a>.</p>',
        )
    if not manager.is_authorized_dag(method="GET", details=DagDetails(id=ATTRIBUTION_DAG_ID), user=user):
        return _message_page(
            403, "Not allowed", f"<p>Reading the dashboard needs read access to the DAG {ATTRIBUTION_DAG_ID}.</p>"
        )
    return None


def _dashboard_html(day: date | None, days: int, campaign: str | None) -> str:
    from cart_recovery.reporting.dashboard import load_dashboard, render_dashboard

    with warehouse() as conn:
        return render_dashboard(load_dashboard(conn, day=day, days=days, campaign=campaign))


async def dashboard(
    request: Request,
    day: date | None = None,
    days: int = Query(DEFAULT_DAYS, ge=1, le=MAX_DAYS),
    campaign: str | None = Query(None, max_length=200),
) -> HTMLResponse:
    """A5: the performance dashboard, the page the Airflow UI's "Cart recovery" entry frames."""
    denied = await dashboard_access(request)
    if denied is not None:
        return denied
    try:
        page = await run_in_threadpool(_dashboard_html, day, days, campaign or None)
    except psycopg.OperationalError as exc:
        log.warning("dashboard: the warehouse is unreachable (%s)", type(exc).__name__)
        return _message_page(503, "Warehouse unavailable", "<p>The cart_recovery_db connection did not answer.</p>")
    return HTMLResponse(page, headers=DASHBOARD_HEADERS)


def create_app() -> FastAPI:
    from cart_recovery.api import unsubscribe_pages, webhook

    app = FastAPI(title="Cart recovery", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(webhook.router)
    app.include_router(unsubscribe_pages.router)
    app.add_api_route("/dashboard", dashboard, methods=["GET"], response_class=HTMLResponse)
    return app
