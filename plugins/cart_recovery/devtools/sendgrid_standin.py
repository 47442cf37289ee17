"""A local stand-in for SendGrid's Mail Send API (POST /v3/mail/send), for the demo, tests and benchmarks.

It checks the request's shape roughly (auth header, personalizations with `to`, `from`, a subject, content),
answers 202 with an `X-Message-Id`, and writes each accepted message to the outbox folder as
`<message_id>.eml` (a real MIME multipart/alternative message with the List-Unsubscribe headers) and
`<message_id>.html`, where `<message_id>` is custom_args.message_id (else the provider id).

Faults, answered in order before the normal answers (`--fault-sequence 500,503,429,drop,slow`):
- an HTTP status (`429` carries `Retry-After` and `X-RateLimit-Reset`);
- `drop`: read the request, accept the message, close the connection without answering (the client sees the
  request leave and no answer: the outbox must record `unknown`);
- `slow`: accept the message but answer only after `slow_ms` (a client timeout after the send).

Command line: `cart-recovery sendgrid-standin --port 8025 --outbox-dir var/outbox [--latency-ms 50]`.
In process: `with SendGridStandin(latency_ms=50) as sg: ... sg.url ...` (or `start()` / `stop()`).
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Fault = int | str
IDLE_TIMEOUT_S = 15.0  # keep-alive: a connection idle this long is closed by the server


@dataclass
class Accepted:
    """One accepted message: what tests assert on (no bodies unless keep_bodies)."""

    provider_message_id: str
    to: list[str]
    custom_args: dict[str, str]
    headers: dict[str, str]
    subject: str
    body: dict[str, Any] | None = None


def parse_faults(text: str | None) -> list[Fault]:
    out: list[Fault] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if part in ("drop", "slow"):
            out.append(part)
        elif part.isdigit() and 100 <= int(part) <= 599:
            out.append(int(part))
        else:
            raise ValueError(f"fault {part!r}: expected an HTTP status, drop or slow")
    return out


def _shape_errors(body: Any) -> list[dict[str, str]]:
    """Rough checks of the Mail Send body, SendGrid-style error objects."""
    errors: list[dict[str, str]] = []
    if not isinstance(body, dict):
        return [{"message": "The request body must be a JSON object.", "field": None}]  # type: ignore[dict-item]
    pers = body.get("personalizations")
    if not isinstance(pers, list) or not pers:
        errors.append({"message": "The personalizations field is required.", "field": "personalizations"})
    else:
        for i, p in enumerate(pers):
            to = p.get("to") if isinstance(p, dict) else None
            if (
                not isinstance(to, list)
                or not to
                or not all(isinstance(t, dict) and "@" in str(t.get("email")) for t in to)
            ):
                errors.append({"message": "Does not contain a valid address.", "field": f"personalizations.{i}.to"})
    if not isinstance(body.get("from"), dict) or "@" not in str(body["from"].get("email")):
        errors.append({"message": "The from email does not contain a valid address.", "field": "from.email"})
    has_subject = bool(body.get("subject")) or all(isinstance(p, dict) and p.get("subject") for p in pers or [])
    if not has_subject and not body.get("template_id"):
        errors.append({"message": "The subject is required.", "field": "subject"})
    content = body.get("content")
    if not body.get("template_id") and (
        not isinstance(content, list) or not content or not all(c.get("type") and c.get("value") for c in content)
    ):
        errors.append({"message": "The content value must be a string at least one character.", "field": "content"})
    return errors


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # listen() backlog: 32+ concurrent senders must not see resets


class SendGridStandin:
    def __init__(
        self,
        port: int = 0,
        outbox_dir: Path | str | None = None,
        latency_ms: float = 0,
        fault_sequence: list[Fault] | str | None = None,
        host: str = "127.0.0.1",
        slow_ms: float = 3000,
        keep_bodies: bool = True,
        retry_after_s: int = 1,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.outbox_dir = Path(outbox_dir) if outbox_dir else None
        if self.outbox_dir:
            self.outbox_dir.mkdir(parents=True, exist_ok=True)
        self.latency_ms = latency_ms
        self.faults: list[Fault] = (
            parse_faults(fault_sequence) if isinstance(fault_sequence, str) else list(fault_sequence or [])
        )
        self.slow_ms = slow_ms
        self.keep_bodies = keep_bodies
        self.retry_after_s = retry_after_s
        self.accepted: list[Accepted] = []
        self.requests = 0
        self.connections = 0  # TCP connections accepted (keep-alive: far fewer than requests)
        self.idle_timeout_s = idle_timeout_s
        self.answers: list[int | str] = []
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.server = _Server((host, port), self._handler())

    # ---------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SendGridStandin:
        self._thread = threading.Thread(target=self.server.serve_forever, name="sendgrid-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> SendGridStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_faults(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def accepted_for(self, address: str) -> list[Accepted]:
        with self.lock:
            return [a for a in self.accepted if address.lower() in a.to]

    # ---------------------------------------------------------------- behaviour
    def _accept(self, body: dict[str, Any]) -> Accepted:
        pers = body.get("personalizations") or [{}]
        custom = {**(body.get("custom_args") or {}), **(pers[0].get("custom_args") or {})}
        headers = {**(body.get("headers") or {}), **(pers[0].get("headers") or {})}
        acc = Accepted(
            provider_message_id=uuid.uuid4().hex[:22],
            to=[t["email"].lower() for p in pers for t in p.get("to", [])],
            custom_args={k: str(v) for k, v in custom.items()},
            headers=headers,
            subject=pers[0].get("subject") or body.get("subject") or "",
            body=body if self.keep_bodies else None,
        )
        with self.lock:
            self.accepted.append(acc)
        if self.outbox_dir:
            self._write(body, acc)
        return acc

    def _write(self, body: dict[str, Any], acc: Accepted) -> None:
        content = {c.get("type"): c.get("value", "") for c in body.get("content", [])}
        name = acc.custom_args.get("message_id") or acc.provider_message_id
        # long List-Unsubscribe URLs stay readable: fold only past RFC 5322's 998-character limit
        msg = EmailMessage(policy=policy.default.clone(max_line_length=998))
        sender = body.get("from") or {}
        msg["From"] = formataddr((sender.get("name") or "", sender.get("email") or ""))
        msg["To"] = ", ".join(acc.to)
        msg["Subject"] = acc.subject
        msg["Message-ID"] = make_msgid(idstring=acc.provider_message_id, domain="sendgrid-standin.local")
        msg["X-Message-Id"] = acc.provider_message_id
        for k, v in acc.headers.items():
            msg[k] = v
        if acc.custom_args:
            msg["X-Custom-Args"] = json.dumps(acc.custom_args, sort_keys=True)
        msg.set_content(content.get("text/plain", ""))
        if content.get("text/html"):
            msg.add_alternative(content["text/html"], subtype="html")
            (self.outbox_dir / f"{name}.html").write_text(content["text/html"], encoding="utf-8")  # type: ignore[operator]
        (self.outbox_dir / f"{name}.eml").write_bytes(bytes(msg))  # type: ignore[operator]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # persistent connections, as SendGrid's API keeps them
            disable_nagle_algorithm = True  # an answer in two writes must not wait for the client's delayed ACK
            timeout = outer.idle_timeout_s  # an idle connection is closed, as a real server does

            def setup(self) -> None:
                super().setup()
                with outer.lock:
                    outer.connections += 1

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — the base class's name
                log.debug("standin: " + format, *args)

            def _answer(self, status: int, payload: dict[str, Any] | None = None, **headers: str) -> None:
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k.replace("_", "-"), v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 — http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with outer.lock:
                    outer.requests += 1
                    fault = outer.faults.pop(0) if outer.faults else None
                if outer.latency_ms:
                    time.sleep(outer.latency_ms / 1000)
                if not self.path.startswith("/v3/mail/send"):
                    self._answer(404, {"errors": [{"message": "not found"}]})
                    return
                if not (self.headers.get("Authorization") or "").startswith("Bearer "):
                    self._answer(401, {"errors": [{"message": "authorization required"}]})
                    return
                if isinstance(fault, int):
                    outer.answers.append(fault)
                    extra = {}
                    if fault == 429:
                        extra = {
                            "Retry_After": str(outer.retry_after_s),
                            "X_RateLimit_Reset": str(int(time.time()) + outer.retry_after_s),
                        }
                    self._answer(fault, {"errors": [{"message": f"injected fault {fault}"}]}, **extra)
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._answer(400, {"errors": [{"message": "Bad Request: invalid JSON", "field": None}]})
                    return
                errors = _shape_errors(body)
                if errors:
                    outer.answers.append(400)
                    self._answer(400, {"errors": errors})
                    return
                acc = outer._accept(body)
                if fault == "drop":  # accepted, but the client never hears back
                    outer.answers.append("drop")
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "slow":
                    outer.answers.append("slow")
                    time.sleep(outer.slow_ms / 1000)
                outer.answers.append(202)
                self._answer(202, None, X_Message_Id=acc.provider_message_id)

        return Handler


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8025)
    ap.add_argument(
        "--outbox-dir",
        "--outbox",
        type=Path,
        default=Path("var/outbox"),
        help="where accepted messages are written as .eml and .html (default: %(default)s)",
    )
    ap.add_argument("--no-files", action="store_true", help="write nothing (benchmarks)")
    ap.add_argument("--latency-ms", type=float, default=0, help="answer each request after this delay")
    ap.add_argument("--fault-sequence", default="", help="answers before the normal ones, e.g. 500,503,429,drop")


def serve(args: argparse.Namespace) -> int:
    standin = SendGridStandin(
        port=args.port,
        outbox_dir=None if args.no_files else args.outbox_dir,
        latency_ms=args.latency_ms,
        fault_sequence=args.fault_sequence,
        host=args.host,
        keep_bodies=False,
    )
    where = "writing nothing" if args.no_files else f"writing {args.outbox_dir}"
    print(f"SendGrid stand-in on {standin.url}/v3/mail/send, {where}", flush=True)
    try:
        standin.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standin.server.server_close()
    return 0


@contextmanager
def standin_subprocess(*args: str) -> Iterator[str]:
    """The stand-in in its own process (its CPU is not the sender's), on a free port; yields its URL once it
    answers. `args` are the command line's options other than --port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cart_recovery.devtools.sendgrid_standin", "--port", str(port), *args],
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
