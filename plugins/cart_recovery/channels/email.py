"""Email through SendGrid's v3 Mail Send API with the official `sendgrid` client (S1, contract §5).

Configuration (run time only): the Airflow connection `sendgrid_default` — `password` is the API key, `host`
(when set) replaces `https://api.sendgrid.com`. Its environment form `AIRFLOW_CONN_SENDGRID_DEFAULT` (JSON or
URI) is read directly, else Airflow's `BaseHook.get_connection`. Request timeout: `CR_SENDGRID_TIMEOUT_S`
(default 30 s) unless the caller gives one.

One Mail Send request per message: per-recipient HTML cannot share a request (PLATFORM.md), so throughput
comes from concurrency. Each thread gets its own client, and under it a transport that keeps one connection
per host alive between requests (`_KeepAliveMixin`) instead of urllib's connection per request.

What a failure means for exactly-once (S2):
- urllib's `URLError` is raised while connecting or writing the request: nothing reached SendGrid -> retry;
- a timeout or a dropped connection while waiting for the answer: the request left -> unknown.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import os
import select
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cart_recovery.channels import SendResult, scrub

log = logging.getLogger(__name__)

CONN_ID = "sendgrid_default"
DEFAULT_HOST = "https://api.sendgrid.com"
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SendGridSettings:
    api_key: str
    host: str = DEFAULT_HOST

    def __repr__(self) -> str:  # never print the key (O5)
        return f"SendGridSettings(host={self.host!r}, api_key=***)"


def _host_url(host: str | None, port: int | None, schema: str | None = None) -> str:
    if not host:
        return DEFAULT_HOST
    url = host if "://" in host else f"https://{host}"
    parts = urlsplit(url)
    if port and not parts.port:
        url = f"{parts.scheme}://{parts.hostname}:{port}{parts.path}"
    if schema and schema in ("http", "https") and "://" not in host:
        url = url.replace("https://", f"{schema}://", 1)
    return url.rstrip("/")


def sendgrid_settings(conn_id: str = CONN_ID) -> SendGridSettings:
    """The API key and base URL from the Airflow connection (contract §1), resolved at run time."""
    from cart_recovery.connections import connection_fields

    fields = connection_fields(conn_id)
    settings = SendGridSettings(api_key=fields.password, host=_host_url(fields.host, fields.port, fields.schema))
    if not settings.api_key:
        raise RuntimeError(f"connection {conn_id} has no password (the SendGrid API key)")
    return settings


def build_mail(
    *,
    to_email: str,
    from_email: str,
    from_name: str,
    subject: str,
    text: str,
    html: str,
    headers: dict[str, str],
    custom_args: dict[str, str],
) -> dict[str, Any]:
    """The Mail Send body (contract §5): one personalization to the customer, text/plain then text/html, the
    List-Unsubscribe headers, and custom_args with ids only (they come back in events: never an address).

    Built as a plain dict, the same JSON as `build_mail_with_helpers` (a test holds them equal): the
    library's Mail helper costs about a third of a render per message, on the hot path.
    """
    return {
        "from": {"name": from_name, "email": from_email},
        "subject": subject,
        "personalizations": [{"to": [{"email": to_email}]}],
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
        "headers": dict(headers),
        "custom_args": {k: str(v) for k, v in custom_args.items()},
    }


def build_mail_with_helpers(
    *,
    to_email: str,
    from_email: str,
    from_name: str,
    subject: str,
    text: str,
    html: str,
    headers: dict[str, str],
    custom_args: dict[str, str],
) -> dict[str, Any]:
    """The same body through the `sendgrid` library's Mail helpers (the reference for build_mail)."""
    from sendgrid.helpers.mail import Content, CustomArg, Email, Header, Mail, To

    mail = Mail(from_email=Email(from_email, from_name), to_emails=To(to_email), subject=subject)
    mail.add_content(Content("text/plain", text))
    mail.add_content(Content("text/html", html))
    for k, v in headers.items():
        mail.add_header(Header(k, v))
    for k, v in custom_args.items():
        mail.add_custom_arg(CustomArg(k, str(v)))
    return mail.get()


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait, from Retry-After (seconds or HTTP date) or X-RateLimit-Reset (Unix time)."""
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                return max(when.timestamp() - time.time(), 0.0)
            except (TypeError, ValueError):
                pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(float(reset) - time.time(), 0.0)
        except ValueError:
            return None
    return None


class _KeepAliveMixin:
    """urllib's HTTP(S) handler with one persistent connection per host, instead of urllib's new connection
    (and `Connection: close`) per request. The `sendgrid` client still builds and sends every request
    (python_http_client -> urllib); only the transport under it keeps its socket. Measured at 0 ms latency:
    the connect, name lookup and close were about a third of a message's client CPU, and SendGrid's API
    (TLS) makes a new connection far dearer still.

    One handler serves one thread (see _OpenerPerThread), so its connections are never shared.

    Exactly-once (S2) is unchanged: an error while connecting or writing the request is still a `URLError`
    (nothing was accepted -> retry); an error while waiting for the answer is still `unknown`. The one new
    risk is a server closing an idle connection just as a request is written on it: the request would look
    sent and unanswered (`unknown`, never re-sent — a lost message, never a duplicate). Two guards make that
    rare: a connection idle longer than MAX_IDLE_S is not reused (servers close idle ones after 5 to 75 s),
    and a socket that is readable before a request (the peer's FIN or stray bytes) is closed, not reused —
    urllib3's `is_connection_dropped` check."""

    MAX_IDLE_S = 4.0

    def _init_pool(self) -> None:
        self._conns: dict[tuple[str, str], tuple[http.client.HTTPConnection, Any, float]] = {}

    def _reusable(self, conn: http.client.HTTPConnection, last: Any, idle_since: float) -> bool:
        if last is not None and not last.isclosed():
            return False  # the previous answer was not read to its end: the stream is out of step
        if time.monotonic() - idle_since > self.MAX_IDLE_S:
            return False
        sock = conn.sock
        if sock is None:
            return True  # the server closed it cleanly (Connection: close): http.client reconnects
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def _keepalive_open(self, http_class: type[http.client.HTTPConnection], req: Any, **conn_args: Any) -> Any:
        if req._tunnel_host or req.has_proxy():
            return self.do_open(http_class, req, **conn_args)  # type: ignore[attr-defined]  # proxies: urllib's way
        key = (req.type, req.host)
        conn = None
        if key in self._conns:
            conn, last, idle_since = self._conns.pop(key)
            if not self._reusable(conn, last, idle_since):
                conn.close()
                conn = None
        if conn is None:
            conn = http_class(req.host, timeout=req.timeout, **conn_args)
        else:
            conn.timeout = req.timeout
            if conn.sock is not None:
                conn.sock.settimeout(req.timeout)
        headers = dict(req.unredirected_hdrs)
        headers.update({k: v for k, v in req.headers.items() if k not in headers})
        headers = {name.title(): val for name, val in headers.items()}
        try:
            try:
                conn.request(req.get_method(), req.selector, req.data, headers)
            except OSError as err:  # connecting or writing: urllib's "never left" error, as before
                raise urllib.error.URLError(err) from err
            response = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        response.url = req.get_full_url()
        response.msg = response.reason  # what urllib's callers expect in .msg
        self._conns[key] = (conn, response, time.monotonic())
        return response


class _KeepAliveHTTPHandler(_KeepAliveMixin, urllib.request.HTTPHandler):
    def __init__(self) -> None:
        super().__init__()
        self._init_pool()

    def http_open(self, req: Any) -> Any:
        return self._keepalive_open(http.client.HTTPConnection, req)


class _KeepAliveHTTPSHandler(_KeepAliveMixin, urllib.request.HTTPSHandler):
    def __init__(self) -> None:
        super().__init__()
        self._init_pool()

    def https_open(self, req: Any) -> Any:
        return self._keepalive_open(
            http.client.HTTPSConnection, req, context=self._context, check_hostname=self._check_hostname
        )


class _OpenerPerThread:
    """Stands in for `urllib.request` inside python_http_client: `build_opener()` returns one opener per
    thread, with the keep-alive handlers above, instead of a new opener per request. Building an opener costs
    about 1 ms of CPU (handler introspection and a scan of the environment for proxies); a new connection per
    request costs more. Everything else is urllib.request itself; per thread, openers share no state."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def build_opener(self, *handlers: Any) -> Any:
        if handlers:
            return self._module.build_opener(*handlers)
        opener = getattr(self._local, "opener", None)
        if opener is None:
            opener = self._local.opener = self._module.build_opener(_KeepAliveHTTPHandler(), _KeepAliveHTTPSHandler())
        return opener


def _reuse_openers() -> None:
    import python_http_client.client as phc

    if not isinstance(phc.urllib, _OpenerPerThread):
        phc.urllib = _OpenerPerThread(phc.urllib)  # type: ignore[assignment]


class EmailChannel:
    """Sends one Mail Send request per message; one `SendGridAPIClient` per thread (thread-safe)."""

    def __init__(self, settings: SendGridSettings, timeout_s: float | None = None) -> None:
        self.settings = settings
        self.timeout_s = timeout_s or float(os.environ.get("CR_SENDGRID_TIMEOUT_S") or DEFAULT_TIMEOUT_S)
        self._local = threading.local()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from sendgrid import SendGridAPIClient

            _reuse_openers()
            client = SendGridAPIClient(self.settings.api_key, host=self.settings.host)
            client.client.timeout = self.timeout_s  # python_http_client passes it to urlopen
            self._local.client = client
        return client

    def send(self, body: dict[str, Any]) -> SendResult:
        from python_http_client.exceptions import HTTPError

        try:
            response = self._client().send(body)
        except HTTPError as exc:
            code = int(exc.status_code)
            detail = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body)
            error = f"HTTP {code}: {scrub(detail)[:500]}"
            if code == 429 or code >= 500:
                return SendResult("retry", code, error=error, retry_after_s=_retry_after(exc.headers))
            return SendResult("rejected", code, error=error)
        except urllib.error.URLError as exc:
            # raised around connect + write: the request never (fully) left -> safe to retry
            return SendResult("retry", error=f"not sent: {type(exc.reason).__name__}: {scrub(str(exc.reason))}")
        except (TimeoutError, http.client.HTTPException, ConnectionError, OSError) as exc:
            # raised while waiting for the answer: SendGrid may have accepted it -> never resend blindly
            return SendResult("unknown", error=f"no answer after sending: {type(exc).__name__}: {scrub(str(exc))}")
        code = int(response.status_code)
        if code == 202 or 200 <= code < 300:
            headers = response.headers
            mid = headers.get("X-Message-Id") if headers is not None else None
            return SendResult("accepted", code, provider_message_id=mid)
        return SendResult("rejected", code, error=f"unexpected HTTP {code}")
