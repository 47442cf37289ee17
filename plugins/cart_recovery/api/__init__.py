"""The web endpoints the Airflow API server serves for cart recovery (plugin `cart_recovery`, mounted at
`/cart-recovery` by `plugins/cart_recovery_plugin.py`):

- `POST /cart-recovery/sendgrid/events`: SendGrid's signed Event Webhook (A1, E4) — `webhook.py`;
- `GET|POST /cart-recovery/unsubscribe?token=…`: the confirmation page and the one-click unsubscribe
  (M6, E4, RFC 8058) — `unsubscribe_pages.py`.

Airflow imports every plugin in the scheduler, the DAG processor and each task process, so the plugin
holds a `LazyApp`: the FastAPI app and its dependencies (FastAPI, Jinja2, psycopg, cryptography) load on
the first request the API server routes to it, never elsewhere.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class LazyApp:
    """An ASGI app that builds the real one (`"module:factory"`) on its first call."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    def load(self) -> ASGIApp:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    module, _, name = self.factory.partition(":")
                    self._app = getattr(importlib.import_module(module), name)()
        return self._app

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        await self.load()(scope, receive, send)
