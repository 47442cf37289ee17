"""Push notifications (F4): web push with VAPID through `pywebpush`, mobile push through FCM's HTTP v1 API.

Configuration (run time only, contract §1):
- `webpush_default`: `password` is the VAPID private key (base64url raw 32-byte key, base64url DER, or PEM),
  `extra.subject` the VAPID contact (`mailto:…` or an https URL; a bare address gets `mailto:`).
- `fcm_default`: `password` is the service account's JSON key (or a path to it), `host` (when set) replaces
  `https://fcm.googleapis.com`, `extra.project_id` overrides the key's project. The OAuth2 access token comes
  from the key's `token_uri` through `google-auth` (scope firebase.messaging), cached until it expires.
Request timeout: `CR_PUSH_TIMEOUT_S` (default 30 s) unless the caller gives one.

The interface mirrors `channels.email`: `build_web_push(…)` / `build_fcm_message(…)` make the body, and
`WebPushChannel.send(body)`, `FcmChannel.send(body)` — or `PushChannel.send(body)`, which picks by the body's
`kind` (`web`, `ios`, `android`, as in `push_subscriptions`) — answer a `SendResult`:
- 2xx -> `accepted` (web push: the push service's `Location`, FCM: the message `name`);
- web push 404/410, FCM `UNREGISTERED` (or 404) or `SENDER_ID_MISMATCH` -> `gone`: the caller revokes the
  subscription (E2: no active subscription, no push);
- 429 and 5xx -> `retry` (with `Retry-After`); nothing left -> `retry`;
- other 4xx -> `rejected`; a timeout after the request left -> `unknown`.

`push_payload` / `render_push` make the notification (title, body, image, cart link) per locale from
`include/templates/push/<template>/<locale>.json.j2`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2

from cart_recovery import TEMPLATES_DIR
from cart_recovery.channels import SendResult, base_url, request_failure, scrub
from cart_recovery.connections import connection_fields

log = logging.getLogger(__name__)

WEBPUSH_CONN_ID = "webpush_default"
FCM_CONN_ID = "fcm_default"
FCM_DEFAULT_HOST = "https://fcm.googleapis.com"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_TTL_S = 24 * 3600  # a cart reminder is worthless a day later
VAPID_EXPIRY_S = 12 * 3600  # RFC 8292: at most 24 h
MAX_WEB_PUSH_PAYLOAD = 3800  # bytes of plaintext: 4096 after aes128gcm's header, padding and tag
LOCALES = ("fr", "en")
PUSH_KINDS = ("web", "ios", "android")
FCM_GONE = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})


def _timeout(timeout_s: float | None) -> float:
    return timeout_s or float(os.environ.get("CR_PUSH_TIMEOUT_S") or DEFAULT_TIMEOUT_S)


def _retry_after(headers: Any) -> float | None:
    from cart_recovery.channels.email import _retry_after as parse  # one parser for every channel

    return parse(headers)


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class WebPushSettings:
    private_key: str = field(repr=False)
    subject: str = ""


def webpush_settings(conn_id: str = WEBPUSH_CONN_ID) -> WebPushSettings:
    """The VAPID key and contact from the Airflow connection (contract §1), at run time."""
    fields = connection_fields(conn_id)
    subject = str(fields.extra.get("subject") or "")
    if subject and not subject.startswith(("mailto:", "https://", "http://")):
        subject = f"mailto:{subject}"
    if not fields.password:
        raise RuntimeError(f"connection {conn_id} has no password (the VAPID private key)")
    if not subject:
        raise RuntimeError(f"connection {conn_id} has no extra.subject (the VAPID contact, mailto: or https:)")
    return WebPushSettings(private_key=fields.password, subject=subject)


@dataclass(frozen=True)
class FcmSettings:
    service_account_info: dict[str, Any] = field(repr=False)
    project_id: str = ""
    host: str = FCM_DEFAULT_HOST


def fcm_settings(conn_id: str = FCM_CONN_ID) -> FcmSettings:
    """The service account, project and base URL from the Airflow connection (contract §1), at run time."""
    fields = connection_fields(conn_id)
    raw = fields.password.strip()
    if raw and not raw.startswith("{") and Path(raw).is_file():
        raw = Path(raw).read_text(encoding="utf-8")
    if not raw:
        raise RuntimeError(f"connection {conn_id} has no password (the service account's JSON key)")
    try:
        info = json.loads(raw)
    except ValueError:
        raise RuntimeError(f"connection {conn_id}: the password is not a service account JSON key") from None
    project = str(fields.extra.get("project_id") or info.get("project_id") or "")
    if not project:
        raise RuntimeError(f"connection {conn_id}: no project_id in the key nor in extra.project_id")
    return FcmSettings(service_account_info=info, project_id=project, host=base_url(fields, FCM_DEFAULT_HOST))


# --------------------------------------------------------------------------- the notification
@lru_cache(maxsize=4)
def _environment(templates_dir: str) -> jinja2.Environment:
    # JSON output: values go through tojson in the templates, no HTML autoescape
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )


def _percent(value: Any) -> str:
    return "" if value in (None, "") else f"{float(value):.2f}".rstrip("0").rstrip(".")


def push_payload(
    *,
    locale: str,
    first_item_title: str,
    cart_link: str,
    first_name: str = "",
    more_items: int = 0,
    image_url: str | None = None,
    coupon_code: str | None = None,
    coupon_percent: Any = None,
    tag: str | None = None,
    template: str = "abandoned_cart",
    templates_dir: Path | str = TEMPLATES_DIR,
) -> dict[str, str]:
    """The notification (F4): `title`, `body`, `image` (when there is one), `url` (the cart link, tracked
    per M3 by the caller), `action` (the button's label), and `tag` (when given: a later notification with
    the same tag replaces this one — e.g. `cart-<cart_id>`)."""
    locale = locale if locale in LOCALES else "fr"
    tpl = _environment(str(templates_dir)).get_template(f"push/{template}/{locale}.json.j2")
    coupon = {"code": coupon_code, "percent": _percent(coupon_percent)} if coupon_code else None
    rendered = json.loads(
        tpl.render(
            first_name=(first_name or "").strip(),
            title=" ".join((first_item_title or "").split()),
            more_items=max(int(more_items or 0), 0),
            image=image_url or None,
            cart_link=cart_link,
            coupon=coupon,
        )
    )
    payload = {k: " ".join(str(v).split()) for k, v in rendered.items() if v not in (None, "")}
    payload["url"] = str(rendered.get("url") or "")  # links are not whitespace-collapsed, only kept
    if tag:
        payload["tag"] = tag
    return payload


def render_push(
    row: Mapping[str, Any],
    *,
    cart_link: str,
    default_locale: str = "fr",
    tag: str | None = None,
    template: str = "abandoned_cart",
    templates_dir: Path | str = TEMPLATES_DIR,
) -> dict[str, str]:
    """`push_payload` for a decision row (`restricted.message_contents` joined with
    `marts.eligible_recipients`: `locale, first_name, items, item_count, coupon_code, coupon_percent`)."""
    locale = str(row.get("locale") or "").lower()[:2]
    if locale not in LOCALES:
        locale = default_locale
    items = sorted(row.get("items") or [], key=lambda i: i.get("position") or 0)
    first = items[0] if items else {}
    item_count = int(row.get("item_count") or len(items) or 1)
    return push_payload(
        locale=locale,
        first_item_title=str(first.get("title") or first.get("sku") or ""),
        cart_link=cart_link,
        first_name=str(row.get("first_name") or ""),
        more_items=max(item_count - 1, 0),
        image_url=first.get("image_url") or None,
        coupon_code=row.get("coupon_code"),
        coupon_percent=row.get("coupon_percent"),
        tag=tag,
        template=template,
        templates_dir=templates_dir,
    )


# --------------------------------------------------------------------------- bodies
def build_web_push(
    *,
    endpoint: str,
    p256dh: str,
    auth: str,
    payload: Mapping[str, Any],
    ttl_s: int = DEFAULT_TTL_S,
    urgency: str = "normal",
    topic: str | None = None,
) -> dict[str, Any]:
    """The body `WebPushChannel.send` takes: the subscription (a `push_subscriptions` row of kind `web`) and
    the notification as the JSON the service worker reads. `topic` (at most 32 URL-safe characters) lets the
    push service replace an undelivered earlier message with the same topic."""
    data = json.dumps(dict(payload), ensure_ascii=False, separators=(",", ":"))
    if len(data.encode()) > MAX_WEB_PUSH_PAYLOAD:
        raise ValueError(f"web push payload of {len(data.encode())} bytes (at most {MAX_WEB_PUSH_PAYLOAD})")
    headers = {"Urgency": urgency}
    if topic:
        headers["Topic"] = topic[:32]
    return {
        "kind": "web",
        "subscription": {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
        "data": data,
        "ttl": int(ttl_s),
        "headers": headers,
    }


def build_fcm_message(
    *,
    token: str,
    payload: Mapping[str, Any],
    kind: str = "android",
    data: Mapping[str, Any] | None = None,
    ttl_s: int = DEFAULT_TTL_S,
) -> dict[str, Any]:
    """The body `FcmChannel.send` takes: an HTTP v1 `Message` to one device token (a `push_subscriptions` row
    of kind `ios` or `android`). `data` values must be ids, never personal data (they reach the device
    and FCM's logs)."""
    notification = {k: payload[k] for k in ("title", "body", "image") if payload.get(k)}
    message: dict[str, Any] = {
        "token": token,
        "notification": notification,
        "data": {"url": str(payload.get("url") or ""), **{k: str(v) for k, v in (data or {}).items()}},
        "android": {"ttl": f"{int(ttl_s)}s", "notification": {}},
        "apns": {"headers": {}, "payload": {"aps": {"mutable-content": 1}}},
    }
    tag = payload.get("tag")
    if tag:
        message["android"]["collapse_key"] = str(tag)[:64]
        message["android"]["notification"]["tag"] = str(tag)
        message["apns"]["headers"]["apns-collapse-id"] = str(tag)[:64]
    if payload.get("image"):
        message["apns"]["fcm_options"] = {"image": payload["image"]}
    for platform, key in (("android", "notification"), ("apns", "headers")):
        if not message[platform][key]:
            del message[platform][key]
    return {"kind": kind, "message": message}


# --------------------------------------------------------------------------- web push
def _vapid(private_key: str) -> Any:
    from py_vapid import Vapid

    key = private_key.strip()
    if key.startswith("-----BEGIN"):
        return Vapid.from_pem(key.encode())
    return Vapid.from_string(private_key=key)


class WebPushChannel:
    """Sends one encrypted (aes128gcm) POST per notification to the subscription's push service, signed
    with VAPID (RFC 8292); one `requests` session per thread."""

    def __init__(self, settings: WebPushSettings, timeout_s: float | None = None) -> None:
        self.settings = settings
        self.timeout_s = _timeout(timeout_s)
        self.vapid = _vapid(settings.private_key)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._signed: dict[str, tuple[float, dict[str, str]]] = {}  # audience -> (expires, VAPID headers)

    @property
    def application_server_key(self) -> str:
        """The public key a page passes to `pushManager.subscribe` (base64url, uncompressed point)."""
        from cryptography.hazmat.primitives import serialization
        from py_vapid.utils import b64urlencode

        raw = self.vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64urlencode(raw)

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = self._local.session = requests.Session()
        return session

    def _vapid_headers(self, endpoint: str) -> dict[str, str]:
        # one signature per push service origin, reused until an hour before it expires (JWT exp is real
        # time: the push service checks it against its clock, it decides nothing of ours)
        parts = urlsplit(endpoint)
        aud = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        with self._lock:
            cached = self._signed.get(aud)
            if cached and cached[0] - 3600 > now:
                return cached[1]
            exp = int(now) + VAPID_EXPIRY_S
            headers = self.vapid.sign({"aud": aud, "exp": exp, "sub": self.settings.subject})
            self._signed[aud] = (exp, headers)
            return headers

    def send(self, body: Mapping[str, Any]) -> SendResult:
        from pywebpush import WebPusher, WebPushException

        sub = body.get("subscription") or {}
        endpoint = str(sub.get("endpoint") or "")
        if not endpoint.startswith(("https://", "http://")):
            return SendResult("rejected", error="web push subscription without an http(s) endpoint")
        try:
            headers = {**(body.get("headers") or {}), **self._vapid_headers(endpoint)}
            pusher = WebPusher(dict(sub), requests_session=self._session())
            response = pusher.send(
                body.get("data") or "",
                headers,
                ttl=int(body.get("ttl") or DEFAULT_TTL_S),
                content_encoding="aes128gcm",
                timeout=self.timeout_s,
            )
        except WebPushException as exc:  # the subscription's keys are unusable: nothing was sent
            return SendResult("rejected", error=f"web push: {scrub(str(exc))[:300]}")
        except (ValueError, TypeError) as exc:  # malformed keys (base64, curve point)
            return SendResult("rejected", error=f"web push keys: {type(exc).__name__}: {scrub(str(exc))[:200]}")
        except Exception as exc:
            result = request_failure(exc)
            if result is None:
                raise
            return result
        return _web_push_outcome(response)


def _web_push_outcome(response: Any) -> SendResult:
    code = int(response.status_code)
    if 200 <= code < 300:
        return SendResult("accepted", code, provider_message_id=response.headers.get("Location"))
    error = f"HTTP {code}: {scrub(response.text or '')[:300]}"
    if code in (404, 410):  # the subscription expired or was unsubscribed (RFC 8030 §7.3)
        return SendResult("gone", code, error=error)
    if code == 429 or code >= 500:
        return SendResult("retry", code, error=error, retry_after_s=_retry_after(response.headers))
    return SendResult("rejected", code, error=error)


# --------------------------------------------------------------------------- FCM HTTP v1
class FcmChannel:
    """Sends one `messages:send` request per notification; the OAuth2 token is shared by the threads and
    refreshed under a lock; one `requests` session per thread."""

    def __init__(self, settings: FcmSettings, timeout_s: float | None = None) -> None:
        from google.oauth2 import service_account

        self.settings = settings
        self.timeout_s = _timeout(timeout_s)
        self.credentials = service_account.Credentials.from_service_account_info(
            settings.service_account_info, scopes=[FCM_SCOPE]
        )
        self.url = f"{settings.host}/v1/projects/{settings.project_id}/messages:send"
        self._local = threading.local()
        self._lock = threading.Lock()

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = self._local.session = requests.Session()
        return session

    def _token(self, force: bool = False) -> str:
        from google.auth.transport.requests import Request

        with self._lock:
            if force or not self.credentials.valid:
                self.credentials.refresh(Request(session=self._session()))
            return str(self.credentials.token)

    def send(self, body: Mapping[str, Any]) -> SendResult:
        from google.auth import exceptions as auth_errors

        message = body.get("message") or {}
        if not message.get("token"):
            return SendResult("rejected", error="FCM message without a device token")
        for attempt in (1, 2):  # a 401 refreshes the token once: it may have been revoked early
            try:
                token = self._token(force=attempt == 2)
            except (auth_errors.RefreshError, auth_errors.TransportError) as exc:
                # the token endpoint failed: nothing went to FCM
                return SendResult("retry", error=f"FCM token: {type(exc).__name__}: {scrub(str(exc))[:200]}")
            try:
                response = self._session().post(
                    self.url,
                    json={"message": message},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self.timeout_s,
                )
            except Exception as exc:
                result = request_failure(exc)
                if result is None:
                    raise
                return result
            if response.status_code != 401 or attempt == 2:
                return _fcm_outcome(response)
        raise AssertionError("unreachable")


def fcm_error_code(response: Any) -> str | None:
    """FCM's `errorCode` (UNREGISTERED, QUOTA_EXCEEDED, …) from an error answer, else its `status`."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            return str(detail["errorCode"])
    return error.get("status")


def _fcm_outcome(response: Any) -> SendResult:
    code = int(response.status_code)
    if 200 <= code < 300:
        try:
            name = response.json().get("name")
        except ValueError:
            name = None
        return SendResult("accepted", code, provider_message_id=name)
    fcm_code = fcm_error_code(response)
    error = f"HTTP {code} ({fcm_code}): {scrub(response.text or '')[:300]}"
    if fcm_code in FCM_GONE or code == 404:  # the app was uninstalled or the token expired
        return SendResult("gone", code, error=error)
    if code == 429 or code >= 500:
        return SendResult("retry", code, error=error, retry_after_s=_retry_after(response.headers))
    return SendResult("rejected", code, error=error)


# --------------------------------------------------------------------------- one entry point
class PushChannel:
    """Web push and FCM behind one `send(body)`: the body's `kind` picks (`web` -> VAPID, `ios`/`android` ->
    FCM). A kind whose connection was not configured is `rejected`, never silently dropped."""

    def __init__(self, web: WebPushChannel | None = None, fcm: FcmChannel | None = None) -> None:
        self.web = web
        self.fcm = fcm

    @classmethod
    def from_connections(
        cls,
        webpush_conn_id: str = WEBPUSH_CONN_ID,
        fcm_conn_id: str = FCM_CONN_ID,
        timeout_s: float | None = None,
    ) -> PushChannel:
        """Both channels from their connections; one that is not configured is left out (logged)."""
        web = fcm = None
        try:
            web = WebPushChannel(webpush_settings(webpush_conn_id), timeout_s)
        except Exception as exc:
            log.warning("web push not configured (%s): %s", webpush_conn_id, scrub(str(exc))[:200])
        try:
            fcm = FcmChannel(fcm_settings(fcm_conn_id), timeout_s)
        except Exception as exc:
            log.warning("mobile push not configured (%s): %s", fcm_conn_id, scrub(str(exc))[:200])
        return cls(web, fcm)

    def send(self, body: Mapping[str, Any]) -> SendResult:
        kind = body.get("kind")
        channel = self.web if kind == "web" else self.fcm if kind in ("ios", "android") else None
        if channel is None:
            return SendResult("rejected", error=f"no push channel configured for kind {kind!r}")
        return channel.send(body)
