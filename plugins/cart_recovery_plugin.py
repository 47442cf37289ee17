"""Airflow plugin `cart_recovery`: the project's web endpoints, served by the Airflow API server.

`fastapi_apps` mounts `cart_recovery.api` at `/cart-recovery` (docs/WEBHOOKS.md):
`POST /cart-recovery/sendgrid/events` (SendGrid's signed Event Webhook, A1) and
`GET|POST /cart-recovery/unsubscribe?token=…` (M6, E4). Airflow's auth does not apply to plugin apps:
these routes are anonymous by design and authenticate each request themselves (signature, signed token).

`external_views` adds "Cart recovery" to the Airflow UI's navigation: the UI frames
`GET /cart-recovery/dashboard` (A5, docs/DASHBOARD.md) at `/plugin/cart-recovery`; the dashboard checks the
Airflow user itself (the UI's session cookie travels with the frame's request).

Airflow imports this module in every component; the app behind `LazyApp` loads on its first request only.
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
    # Airflow 3 format (api_fastapi/core_api/datamodels/plugins.py ExternalViewResponse): with `url_route`
    # the UI shows `href` in an iframe at /plugin/<url_route>; without it, it would be a plain link.
    external_views = [
        {
            "name": "Cart recovery",
            "href": f"{URL_PREFIX}/dashboard",
            "destination": "nav",
            "url_route": "cart-recovery",
        },
    ]
