"""The local SendGrid stand-in (devtools): what the demo, the tests and the benchmark send to."""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from python_http_client.exceptions import (
    BadRequestsError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid import SendGridAPIClient

from cart_recovery.channels.email import (
    EmailChannel,
    SendGridSettings,
    _KeepAliveMixin,
    build_mail,
    build_mail_with_helpers,
)
from cart_recovery.devtools.sendgrid_standin import SendGridStandin, parse_faults

MAIL = {
    "to_email": "alice@mail.example",
    "from_email": "rappels@libraires.example",
    "from_name": "Les libraires",
    "subject": "Votre livre vous attend",
    "text": "Bonjour,\nvotre panier.",
    "html": "<p>Bonjour,</p><p>votre panier.</p>",
    "headers": {
        "List-Unsubscribe": "<https://shop.example/cart-recovery/unsubscribe?token=a.b>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
    "custom_args": {"message_id": "m-1", "campaign": "bookstore_daily", "step": "1"},
}


def test_accepts_with_202_and_writes_eml_and_html(tmp_path: Path) -> None:
    with SendGridStandin(outbox_dir=tmp_path) as sg:
        response = SendGridAPIClient("SG.test", host=sg.url).send(build_mail(**MAIL))
    assert response.status_code == 202
    assert response.headers["X-Message-Id"]
    assert sg.accepted[0].to == ["alice@mail.example"]
    assert sg.accepted[0].custom_args["message_id"] == "m-1"
    msg = email.message_from_bytes((tmp_path / "m-1.eml").read_bytes(), policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["List-Unsubscribe"] == MAIL["headers"]["List-Unsubscribe"]  # type: ignore[index]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Subject"] == "Votre livre vous attend"
    assert msg["To"] == "alice@mail.example"
    assert (tmp_path / "m-1.html").read_text() == MAIL["html"]


def test_refuses_bad_shapes_and_missing_auth() -> None:
    with SendGridStandin() as sg:
        client = SendGridAPIClient("SG.test", host=sg.url)
        body = build_mail(**MAIL)
        body["personalizations"][0]["to"] = [{"email": "not-an-address"}]
        with pytest.raises(BadRequestsError) as err:
            client.send(body)
        assert "personalizations.0.to" in err.value.body.decode()
        no_auth = SendGridAPIClient("", host=sg.url)
        no_auth.client.request_headers["Authorization"] = ""
        with pytest.raises(UnauthorizedError):
            no_auth.send(build_mail(**MAIL))
    assert sg.accepted == []


def test_fault_sequence_then_normal_answers() -> None:
    assert parse_faults("500, 503,429,drop,slow") == [500, 503, 429, "drop", "slow"]
    with pytest.raises(ValueError, match="fault 'boom'"):
        parse_faults("boom")
    with SendGridStandin(fault_sequence="503,429") as sg:
        client = SendGridAPIClient("SG.test", host=sg.url)
        with pytest.raises(ServiceUnavailableError):
            client.send(build_mail(**MAIL))
        with pytest.raises(TooManyRequestsError) as err:
            client.send(build_mail(**MAIL))
        assert err.value.headers["Retry-After"] == "1"
        assert err.value.headers["X-RateLimit-Reset"]
        assert client.send(build_mail(**MAIL)).status_code == 202
    assert sg.answers == [503, 429, 202]
    assert len(sg.accepted) == 1


def test_latency_is_applied() -> None:
    with SendGridStandin(latency_ms=200) as sg:
        started = time.monotonic()
        SendGridAPIClient("SG.test", host=sg.url).send(build_mail(**MAIL))
        assert time.monotonic() - started >= 0.2


def test_answers_with_a_body_do_not_wait_for_the_clients_delayed_ack() -> None:
    """Headers and body go out in two writes; with Nagle on, the second waits for the client's delayed ACK
    (measured: 45 ms per 400 answer on one kept-alive connection, 0.6 ms without). Fault tests and the
    benchmark would otherwise measure that wait, not the sender."""
    import http.client

    with SendGridStandin(keep_bodies=False) as sg:
        host, port = sg.server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=5)
        started = time.monotonic()
        for _ in range(30):
            conn.request("POST", "/v3/mail/send", body=b"{}", headers={"Authorization": "Bearer SG.test"})
            answer = conn.getresponse()
            assert answer.status == 400
            assert answer.read()  # an answer with a body, on the same connection
        conn.close()
        assert time.monotonic() - started < 0.6  # 30 x 40 ms of delayed ACK would be 1.2 s
        assert sg.connections == 1


def test_cli_starts_the_standin(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = Path(sys.executable).with_name("cart-recovery")
    proc = subprocess.Popen(
        [str(cli), "sendgrid-standin", "--port", str(port), "--outbox", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        response = SendGridAPIClient("SG.test", host=f"http://127.0.0.1:{port}").send(build_mail(**MAIL))
        assert response.status_code == 202
        assert json.loads((tmp_path / "m-1.eml").read_text().split("X-Custom-Args: ")[1].split("\n")[0])["step"] == "1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_s1_build_mail_matches_the_sendgrid_helpers() -> None:
    assert build_mail(**MAIL) == build_mail_with_helpers(**MAIL)


def channel_for(sg: SendGridStandin, timeout_s: float = 5) -> EmailChannel:
    return EmailChannel(SendGridSettings(api_key="SG.test", host=sg.url), timeout_s=timeout_s)


def test_s1_keep_alive_one_connection_per_thread_for_many_requests() -> None:
    with SendGridStandin(keep_bodies=False, fault_sequence="500,429") as sg:
        channel = channel_for(sg)
        outcomes = [channel.send(build_mail(**MAIL)).outcome for _ in range(6)]
    assert outcomes == ["retry", "retry", "accepted", "accepted", "accepted", "accepted"]
    assert sg.requests == 6
    assert sg.connections == 1  # error answers are read to their end too, and the connection kept


def test_s2_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    # the server closes idle connections after 0.2 s; the next request must open a new one and be accepted,
    # never be written on the dead socket and end `unknown`
    with SendGridStandin(keep_bodies=False, idle_timeout_s=0.2) as sg:
        channel = channel_for(sg)
        first = channel.send(build_mail(**MAIL))
        time.sleep(0.6)
        second = channel.send(build_mail(**MAIL))
    assert (first.outcome, second.outcome) == ("accepted", "accepted")
    assert sg.connections == 2
    assert len(sg.accepted) == 2


def test_s2_a_connection_idle_too_long_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_KeepAliveMixin, "MAX_IDLE_S", 0.1)
    with SendGridStandin(keep_bodies=False) as sg:
        channel = channel_for(sg)
        channel.send(build_mail(**MAIL))
        time.sleep(0.3)
        assert channel.send(build_mail(**MAIL)).outcome == "accepted"
        channel.send(build_mail(**MAIL))  # right after: reused
    assert sg.connections == 2


def test_s2_no_answer_on_a_kept_alive_connection_is_unknown_and_the_next_one_works() -> None:
    with SendGridStandin(keep_bodies=False) as sg:
        channel = channel_for(sg)
        assert channel.send(build_mail(**MAIL)).outcome == "accepted"
        sg.add_faults("drop")  # accepted, then the connection is closed without an answer
        assert channel.send(build_mail(**MAIL)).outcome == "unknown"
        assert channel.send(build_mail(**MAIL)).outcome == "accepted"
    assert len(sg.accepted) == 3
    assert sg.connections == 2
