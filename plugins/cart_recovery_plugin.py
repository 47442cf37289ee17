"""Airflow plugin `cart_recovery`: the project's web endpoints, served by the Airflow API server.

`fastapi_apps` mounts `cart_recovery.api` at `/cart-recovery` (docs/WEBHOOKS.md):
`POST /cart-recovery/sendgrid/events` (SendGrid's signed Event Webhook, A1) and
`GET|POST /cart-recovery/unsubscribe?token=…` (M6, E4). Airflow's auth does not apply to plugin apps:
these routes are anonymous by design and authenticate each request themselves (signature, signed token).

Airflow imports this module in every component; the app behind `LazyApp` loads on its first request only.
Add further entries (e.g. `external_views`) as class attributes below.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cart_recovery.api import LazyApp

URL_PREFIX = "/cart-recovery"


class CartRecoveryPlugin(AirflowPlugin):
    name = "cart_recovery"
    fastapi_apps = [
        {"app": LazyApp("cart_recovery.api.app:create_app"), "url_prefix": URL_PREFIX, "name": "Cart recovery"},
    ]
