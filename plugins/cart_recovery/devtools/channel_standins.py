"""Local stand-ins for Twilio's Messages API, web push services and FCM HTTP v1 (F4), for the demo and tests.

One HTTP server answers all three, by path:
- `POST /2010-04-01/Accounts/{sid}/Messages.json` — Twilio: form fields `To, From` (or
  `MessagingServiceSid`) and `Body`, HTTP basic auth whose user is the account SID (and whose password is the
  token, when one was given); answers 201 with a message resource (`sid` `SM…`). Twilio's errors: 21211 (To
  not E.164), 21603 (no From), 21617 (body over 1600), 21610 (a number in `stopped_numbers`: it replied STOP).
- `POST /wp/{id}` — a web push service (RFC 8030): checks the VAPID `Authorization: vapid t=…,k=…` (ES256
  signature, `aud` = this origin, `exp` within 24 h, a `sub`), `TTL` and `Content-Encoding: aes128gcm`;
  answers 201 with a `Location`, or 410 for an endpoint in `gone_endpoints`. Subscriptions made with
  `new_web_subscription()` hold their private keys here, so the payload is decrypted and recorded.
- `POST /token` — an OAuth2 token endpoint (JWT bearer grant, RFC 7523) for service accounts made with
  `service_account_info()` (the assertion's RS256 signature is checked); answers an access token.
- `POST /v1/projects/{project}/messages:send` — FCM HTTP v1: a Bearer token this stand-in issued, a message
  with a `token`, string-only `data`; answers 200 `{"name": "projects/…/messages/…"}`, or 404
  `UNREGISTERED` for a token in `unregistered_tokens`.

What is accepted goes to the in-memory logs (`sms`, `webpush`, `fcm`) and, with an outbox folder, to
`sms/<sid>.txt` and `push/<id>.json`.

Faults per provider (`twilio`, `webpush`, `fcm`), answered in order before the normal answers, as in the
SendGrid stand-in: an HTTP status (429 carries `Retry-After`), `drop` (accept, then close without answering:
the sender must record `unknown`), `slow` (accept, answer after `slow_ms`). `latency_ms` delays every answer.

Command line: `python -m cart_recovery.devtools.channel_standins --port 8026 --outbox-dir var/outbox`
(`--twilio-faults 429,500`, `--gone-endpoint ID`, `--unregistered-token T`, `--stopped-number +1…`). The
command line accepts any service account's assertion (the demo makes its own key); in process, unknown
signers are refused unless `strict_auth=False`.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from cart_recovery.devtools.sendgrid_standin import Fault, parse_faults

log = logging.getLogger(__name__)

PROVIDERS = ("twilio", "webpush", "fcm")
_TWILIO_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
_WEBPUSH_PATH = re.compile(r"^/wp/(?P<id>[A-Za-z0-9_-]+)$")
_FCM_PATH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------------- keys for tests and the demo
def make_vapid_key() -> tuple[str, str]:
    """A VAPID key pair: (private key as base64url raw 32 bytes — the `webpush_default` password, public key
    as base64url uncompressed point — the page's applicationServerKey)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return _b64url(private), _b64url(public)


def make_service_account_info(token_uri: str, project_id: str = "cr-standin") -> dict[str, Any]:
    """A service account JSON key (fresh RSA key) whose `token_uri` is `token_uri` — the `fcm_default`
    password for a stand-in."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key_id = secrets.token_hex(20)
    email = f"cart-recovery@{project_id}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }


# --------------------------------------------------------------------------- what the tests read
@dataclass
class SmsReceived:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    num_segments: int


@dataclass
class WebPushReceived:
    endpoint_id: str
    endpoint: str
    headers: dict[str, str]
    size: int
    vapid_subject: str
    payload: dict[str, Any] | str | None = None  # decrypted when the subscription was made here
    location: str = ""


@dataclass
class FcmReceived:
    name: str
    project: str
    token: str
    message: dict[str, Any]


@dataclass
class _WebKeys:
    private_key: Any
    auth: bytes


@dataclass
class _ProviderState:
    faults: list[Fault] = field(default_factory=list)
    answers: list[int | str] = field(default_factory=list)
    requests: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


class ChannelStandins:
    def __init__(
        self,
        port: int = 0,
        outbox_dir: Path | str | None = None,
        latency_ms: float = 0,
        faults: dict[str, list[Fault] | str] | None = None,
        host: str = "127.0.0.1",
        slow_ms: float = 3000,
        retry_after_s: int = 1,
        twilio_auth_token: str | None = None,
        strict_auth: bool = True,
    ) -> None:
        self.outbox_dir = Path(outbox_dir) if outbox_dir else None
        for sub in ("sms", "push"):
            if self.outbox_dir:
                (self.outbox_dir / sub).mkdir(parents=True, exist_ok=True)
        self.latency_ms = latency_ms
        self.slow_ms = slow_ms
        self.retry_after_s = retry_after_s
        self.twilio_auth_token = twilio_auth_token
        self.strict_auth = strict_auth
        self.lock = threading.Lock()
        self.state = {p: _ProviderState() for p in PROVIDERS}
        for provider, seq in (faults or {}).items():
            self.add_faults(provider, *(parse_faults(seq) if isinstance(seq, str) else seq))
        self.sms: list[SmsReceived] = []
        self.webpush: list[WebPushReceived] = []
        self.fcm: list[FcmReceived] = []
        self.stopped_numbers: set[str] = set()
        self.gone_endpoints: set[str] = set()  # endpoint ids (the last path segment)
        self.unregistered_tokens: set[str] = set()
        self.issued_tokens: set[str] = set()
        self._web_keys: dict[str, _WebKeys] = {}
        self._signers: dict[str, Any] = {}  # private_key_id -> RSA public key
        self._thread: threading.Thread | None = None
        self.server = _Server((host, port), self._handler())

    # ---------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ChannelStandins:
        # a short poll: stop() (shutdown) waits up to one poll interval, and tests start many stand-ins
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="channel-standins", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ChannelStandins:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_faults(self, provider: str, *faults: Fault) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"provider {provider!r}: one of {', '.join(PROVIDERS)}")
        with self.lock:
            self.state[provider].faults.extend(faults)

    def answers(self, provider: str) -> list[int | str]:
        with self.lock:
            return list(self.state[provider].answers)

    # ---------------------------------------------------------------- set-up helpers
    def web_endpoint(self, endpoint_id: str | None = None) -> str:
        return f"{self.url}/wp/{endpoint_id or uuid.uuid4().hex}"

    def new_web_subscription(self, endpoint_id: str | None = None) -> dict[str, str]:
        """What a browser's `pushManager.subscribe` gives (`endpoint, p256dh, auth`, as in push_subscriptions);
        the stand-in keeps the private half to decrypt what is sent to it."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        endpoint = self.web_endpoint(endpoint_id)
        key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        with self.lock:
            self._web_keys[endpoint.rsplit("/", 1)[1]] = _WebKeys(key, auth)
        return {"endpoint": endpoint, "p256dh": _b64url(public), "auth": _b64url(auth)}

    def mark_gone(self, endpoint: str) -> None:
        """The push service answers 410 Gone for this endpoint (URL or id) from now on."""
        with self.lock:
            self.gone_endpoints.add(endpoint.rstrip("/").rsplit("/", 1)[-1])

    def service_account_info(self, project_id: str = "cr-standin") -> dict[str, Any]:
        """A service account key whose assertions this stand-in's `/token` accepts (`fcm_default`'s password)."""
        from cryptography.hazmat.primitives import serialization

        info = make_service_account_info(f"{self.url}/token", project_id)
        key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        with self.lock:
            self._signers[info["private_key_id"]] = key.public_key()
        return info

    # ---------------------------------------------------------------- behaviour
    def _write(self, sub: str, name: str, content: str) -> None:
        if self.outbox_dir:
            (self.outbox_dir / sub / name).write_text(content, encoding="utf-8")

    def _accept_sms(self, sid_account: str, form: dict[str, str]) -> SmsReceived:
        from cart_recovery.channels.sms import sms_segments

        body = form.get("Body", "")
        received = SmsReceived(
            sid="SM" + uuid.uuid4().hex,
            account_sid=sid_account,
            to=form.get("To", ""),
            from_=form.get("From") or form.get("MessagingServiceSid", ""),
            body=body,
            num_segments=sms_segments(body).segments,
        )
        with self.lock:
            self.sms.append(received)
        self._write(
            "sms",
            f"{received.sid}.txt",
            f"From: {received.from_}\nTo: {received.to}\nSegments: {received.num_segments}\n\n{body}\n",
        )
        return received

    def _check_vapid(self, authorization: str) -> str:
        """The VAPID subject, or raises ValueError with the reason (RFC 8292)."""
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec

        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError("Authorization is not a vapid t=…,k=… header")
        fields = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if "t" not in fields or "k" not in fields:
            raise ValueError("vapid header without t and k")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url_decode(fields["k"]))
        claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=self.url)
        if claims["exp"] > time.time() + 24 * 3600:
            raise ValueError("vapid exp more than 24 h ahead")
        subject = str(claims.get("sub") or "")
        if not subject.startswith(("mailto:", "https:")):
            raise ValueError("vapid sub must be a mailto: or https: URL")
        return subject

    def _accept_webpush(self, endpoint_id: str, headers: dict[str, str], raw: bytes, subject: str) -> WebPushReceived:
        payload: dict[str, Any] | str | None = None
        keys = self._web_keys.get(endpoint_id)
        if keys is not None and raw:
            import http_ece

            plain = http_ece.decrypt(raw, private_key=keys.private_key, auth_secret=keys.auth, version="aes128gcm")
            text = plain.decode("utf-8")
            try:
                payload = json.loads(text)
            except ValueError:
                payload = text
        message_id = uuid.uuid4().hex
        received = WebPushReceived(
            endpoint_id=endpoint_id,
            endpoint=f"{self.url}/wp/{endpoint_id}",
            headers=headers,
            size=len(raw),
            vapid_subject=subject,
            payload=payload,
            location=f"{self.url}/m/{message_id}",
        )
        with self.lock:
            self.webpush.append(received)
        record = {
            "provider": "webpush",
            "endpoint": received.endpoint,
            "ttl": headers.get("ttl"),
            "urgency": headers.get("urgency"),
            "topic": headers.get("topic"),
            "vapid_subject": subject,
            "encrypted_bytes": received.size,
            "payload": payload,
        }
        self._write("push", f"web-{message_id}.json", json.dumps(record, ensure_ascii=False, indent=2))
        return received

    def _issue_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        import jwt

        if form.get("grant_type") != JWT_BEARER or not form.get("assertion"):
            return 400, {"error": "unsupported_grant_type"}
        assertion = form["assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
            key = self._signers.get(str(header.get("kid")))
            if key is not None:
                # google-auth always addresses its assertion to Google's endpoint, whatever the token_uri
                audience = [GOOGLE_TOKEN_ENDPOINT, f"{self.url}/token"]
                claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=audience)
            elif self.strict_auth:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            else:
                claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            return 400, {"error": "invalid_grant", "error_description": str(exc)}
        if FCM_SCOPE not in str(claims.get("scope", "")).split():
            return 400, {"error": "invalid_scope", "error_description": "firebase.messaging scope required"}
        token = "ya29.standin-" + secrets.token_urlsafe(24)
        with self.lock:
            self.issued_tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _accept_fcm(self, project: str, message: dict[str, Any]) -> FcmReceived:
        message_id = f"0:{int(time.time() * 1000)}%{uuid.uuid4().hex[:16]}"
        received = FcmReceived(
            name=f"projects/{project}/messages/{message_id}",
            project=project,
            token=str(message.get("token")),
            message=message,
        )
        with self.lock:
            self.fcm.append(received)
        record = {"provider": "fcm", "name": received.name, "message": message}
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", message_id)
        self._write("push", f"fcm-{safe}.json", json.dumps(record, ensure_ascii=False, indent=2))
        return received

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — the base class's name
                log.debug("channel standin: " + format, *args)

            def _answer(self, status: int, payload: Any = None, content_type: str = "application/json", **hdrs: str):
                if payload is None:
                    data = b""
                elif isinstance(payload, bytes | str):
                    data = payload.encode() if isinstance(payload, str) else payload
                else:
                    data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in hdrs.items():
                    self.send_header(k.replace("_", "-"), v)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.close_connection = True
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a `slow` fault)
                    pass

            def _drop(self) -> None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

            def _next_fault(self, provider: str) -> Fault | None:
                with outer.lock:
                    state = outer.state[provider]
                    state.requests += 1
                    return state.faults.pop(0) if state.faults else None

            def _record(self, provider: str, answer: int | str) -> None:
                with outer.lock:
                    outer.state[provider].answers.append(answer)

            def _retry_headers(self, status: int) -> dict[str, str]:
                return {"Retry_After": str(outer.retry_after_s)} if status == 429 else {}

            def do_POST(self) -> None:  # noqa: N802 — http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if outer.latency_ms:
                    time.sleep(outer.latency_ms / 1000)
                path = self.path.split("?", 1)[0]
                if m := _TWILIO_PATH.match(path):
                    self._twilio(m["sid"], raw)
                elif m := _WEBPUSH_PATH.match(path):
                    self._webpush(m["id"], raw)
                elif m := _FCM_PATH.match(path):
                    self._fcm(unquote(m["project"]), raw)
                elif path == "/token":
                    form = dict(parse_qsl(raw.decode("utf-8", "replace")))
                    status, payload = outer._issue_token(form)
                    self._answer(status, payload)
                else:
                    self._answer(404, {"error": "not found"})

            # ---------------------------------------------------------- Twilio
            def _twilio_error(self, status: int, code: int, message: str, **hdrs: str) -> None:
                self._record("twilio", status)
                body = {
                    "code": code,
                    "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status,
                }
                self._answer(status, body, **hdrs)

            def _twilio(self, account_sid: str, raw: bytes) -> None:
                auth = self.headers.get("Authorization") or ""
                user = password = ""
                if auth.startswith("Basic "):
                    with suppress(ValueError):
                        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                token_ok = outer.twilio_auth_token is None or password == outer.twilio_auth_token
                if user != account_sid or not password or not token_ok:
                    self._twilio_error(401, 20003, "Authenticate")
                    return
                form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
                to = form.get("To", "")
                fault = self._next_fault("twilio")
                if isinstance(fault, int):
                    code = {429: 20429, 400: 21211, 401: 20003, 404: 20404}.get(fault, 20500)
                    message = f"injected fault {fault}"
                    if fault == 400:  # Twilio's own wording quotes the number: senders must scrub it (O5)
                        message = f"The 'To' number {to} is not a valid phone number."
                    self._twilio_error(fault, code, message, **self._retry_headers(fault))
                    return
                if not _E164.match(to):
                    self._twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
                    return
                if not (form.get("From") or form.get("MessagingServiceSid")):
                    self._twilio_error(400, 21603, "A 'From' phone number is required.")
                    return
                body = form.get("Body", "")
                if not body or len(body) > 1600:
                    self._twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
                    return
                if to in outer.stopped_numbers:
                    self._twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
                    return
                received = outer._accept_sms(account_sid, form)
                if fault == "drop":
                    self._record("twilio", "drop")
                    self._drop()
                    return
                if fault == "slow":
                    self._record("twilio", "slow")
                    time.sleep(outer.slow_ms / 1000)
                now = formatdate(usegmt=True)
                resource = {
                    "sid": received.sid,
                    "account_sid": account_sid,
                    "to": received.to,
                    "from": form.get("From"),
                    "messaging_service_sid": form.get("MessagingServiceSid"),
                    "body": received.body,
                    "status": "queued",
                    "num_segments": str(received.num_segments),
                    "num_media": "0",
                    "direction": "outbound-api",
                    "api_version": "2010-04-01",
                    "date_created": now,
                    "date_updated": now,
                    "date_sent": None,
                    "price": None,
                    "error_code": None,
                    "error_message": None,
                    "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{received.sid}.json",
                }
                self._record("twilio", 201)
                self._answer(201, resource)

            # ---------------------------------------------------------- web push
            def _webpush(self, endpoint_id: str, raw: bytes) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    subject = outer._check_vapid(headers.get("authorization", ""))
                except Exception as exc:
                    self._record("webpush", 401)
                    self._answer(401, f"VAPID: {exc}", content_type="text/plain")
                    return
                if "ttl" not in headers:
                    self._record("webpush", 400)
                    self._answer(400, "TTL header required", content_type="text/plain")
                    return
                if raw and headers.get("content-encoding") != "aes128gcm":
                    self._record("webpush", 415)
                    self._answer(415, "Content-Encoding must be aes128gcm", content_type="text/plain")
                    return
                fault = self._next_fault("webpush")
                if isinstance(fault, int):
                    self._record("webpush", fault)
                    self._answer(fault, f"injected fault {fault}", "text/plain", **self._retry_headers(fault))
                    return
                if endpoint_id in outer.gone_endpoints:
                    self._record("webpush", 410)
                    self._answer(410, "push subscription has unsubscribed or expired.", content_type="text/plain")
                    return
                if len(raw) > 4096:
                    self._record("webpush", 413)
                    self._answer(413, "payload too large", content_type="text/plain")
                    return
                try:
                    received = outer._accept_webpush(endpoint_id, headers, raw, subject)
                except Exception as exc:  # a payload this subscription's keys cannot decrypt
                    self._record("webpush", 400)
                    self._answer(400, f"cannot decrypt: {type(exc).__name__}", content_type="text/plain")
                    return
                if fault == "drop":
                    self._record("webpush", "drop")
                    self._drop()
                    return
                if fault == "slow":
                    self._record("webpush", "slow")
                    time.sleep(outer.slow_ms / 1000)
                self._record("webpush", 201)
                self._answer(201, None, Location=received.location, TTL=headers.get("ttl", "0"))

            # ---------------------------------------------------------- FCM
            def _fcm_error(self, status: int, fcm_status: str, message: str, error_code: str | None = None) -> None:
                self._record("fcm", status)
                error: dict[str, Any] = {"code": status, "message": message, "status": fcm_status}
                if error_code:
                    error["details"] = [
                        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}
                    ]
                self._answer(status, {"error": error}, **self._retry_headers(status))

            def _fcm(self, project: str, raw: bytes) -> None:
                auth = self.headers.get("Authorization") or ""
                if not auth.startswith("Bearer ") or auth[7:] not in outer.issued_tokens:
                    self._fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
                    return
                fault = self._next_fault("fcm")
                if isinstance(fault, int):
                    status, code = {
                        429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
                        404: ("NOT_FOUND", "UNREGISTERED"),
                        400: ("INVALID_ARGUMENT", "INVALID_ARGUMENT"),
                        503: ("UNAVAILABLE", "UNAVAILABLE"),
                    }.get(fault, ("INTERNAL", "INTERNAL"))
                    self._fcm_error(fault, status, f"injected fault {fault}", code)
                    return
                try:
                    message = json.loads(raw or b"{}").get("message")
                except (ValueError, AttributeError):
                    message = None
                if not isinstance(message, dict) or not message.get("token"):
                    self._fcm_error(400, "INVALID_ARGUMENT", "The message must have a token.", "INVALID_ARGUMENT")
                    return
                data = message.get("data") or {}
                if not all(isinstance(v, str) for v in data.values()):
                    self._fcm_error(400, "INVALID_ARGUMENT", "data values must be strings", "INVALID_ARGUMENT")
                    return
                if message["token"] in outer.unregistered_tokens:
                    self._fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
                    return
                received = outer._accept_fcm(project, message)
                if fault == "drop":
                    self._record("fcm", "drop")
                    self._drop()
                    return
                if fault == "slow":
                    self._record("fcm", "slow")
                    time.sleep(outer.slow_ms / 1000)
                self._record("fcm", 200)
                self._answer(200, {"name": received.name})

        return Handler


# --------------------------------------------------------------------------- command line
def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8026)
    ap.add_argument("--outbox-dir", "--outbox", type=Path, default=Path("var/outbox"))
    ap.add_argument("--no-files", action="store_true", help="write nothing")
    ap.add_argument("--latency-ms", type=float, default=0)
    for provider in PROVIDERS:
        ap.add_argument(f"--{provider}-faults", default="", help="answers before the normal ones, e.g. 429,500,drop")
    ap.add_argument("--gone-endpoint", action="append", default=[], help="web push endpoint id answered 410")
    ap.add_argument("--unregistered-token", action="append", default=[], help="FCM token answered UNREGISTERED")
    ap.add_argument("--stopped-number", action="append", default=[], help="phone answered Twilio 21610 (STOP)")
    ap.add_argument("--twilio-auth-token", default=None, help="check the basic-auth password too")


def serve(args: argparse.Namespace) -> int:
    standins = ChannelStandins(
        port=args.port,
        outbox_dir=None if args.no_files else args.outbox_dir,
        latency_ms=args.latency_ms,
        faults={p: getattr(args, f"{p}_faults") for p in PROVIDERS},
        host=args.host,
        twilio_auth_token=args.twilio_auth_token,
        strict_auth=False,
    )
    standins.gone_endpoints.update(args.gone_endpoint)
    standins.unregistered_tokens.update(args.unregistered_token)
    standins.stopped_numbers.update(args.stopped_number)
    where = "writing nothing" if args.no_files else f"writing {args.outbox_dir}/sms and {args.outbox_dir}/push"
    print(f"Twilio, web push and FCM stand-ins on {standins.url}, {where}", flush=True)
    try:
        standins.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standins.server.server_close()
    return 0


@contextmanager
def standins_subprocess(*args: str) -> Iterator[str]:
    """The stand-ins in their own process on a free port; yields the base URL once it answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cart_recovery.devtools.channel_standins", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    return serve(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
