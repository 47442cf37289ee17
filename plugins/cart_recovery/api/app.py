"""The FastAPI app behind `/cart-recovery` (see `cart_recovery.api`), and what its routes share.

Airflow does not authenticate plugin apps (a mounted app inherits none of the core API's dependencies):
these routes are public on purpose — SendGrid and customers are anonymous — and each one authenticates
its caller itself (the webhook's ECDSA signature, the unsubscribe link's HMAC token). No interactive
docs are served.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from fastapi import FastAPI

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


def create_app() -> FastAPI:
    from cart_recovery.api import unsubscribe_pages, webhook

    app = FastAPI(title="Cart recovery", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(webhook.router)
    app.include_router(unsubscribe_pages.router)
    return app
