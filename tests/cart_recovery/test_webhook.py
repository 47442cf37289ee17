"""SendGrid's signed Event Webhook (A1, O4): `POST /cart-recovery/sendgrid/events` against the real
Postgres, signed in the test like SendGrid signs (ECDSA P-256 / SHA-256 over timestamp + raw body)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fastapi.testclient import TestClient

from cart_recovery.api import webhook
from cart_recovery.api.app import create_app

URL = "/sendgrid/events"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid's settings page shows it: base64 DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def sign(key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def signed_headers(key: ec.EllipticCurvePrivateKey, body: bytes, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        webhook.SIGNATURE_HEADER: sign(key, body, timestamp),
        webhook.TIMESTAMP_HEADER: timestamp,
        "Content-Type": "application/json",
    }


def event(kind: str = "delivered", n: int = 1, **extra: Any) -> dict[str, Any]:
    """A SendGrid event with our custom args (message_id, campaign), as the Mail Send request set them."""
    return {
        "email": f"reader{n}@example.org",
        "timestamp": 1795500000 + n,
        "event": kind,
        "sg_event_id": f"sg-event-{kind}-{n}",
        "sg_message_id": f"sg-msg-{n}.filter0001",
        "message_id": f"00000000-0000-0000-0000-{n:012d}",
        "campaign": "bookstore_daily",
        **extra,
    }


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def client(db: psycopg.Connection, key, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SENDGRID_WEBHOOK", json.dumps({"conn_type": "generic", "password": public_b64(key)})
    )
    monkeypatch.delenv("CR_WEBHOOK_TOLERANCE_SECONDS", raising=False)
    webhook.clear_key_cache()
    with TestClient(create_app()) as c:
        yield c
    webhook.clear_key_cache()


def post(client: TestClient, key, events: Any, at: float | None = None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(events).encode()
    return client.post(URL, content=body, headers=signed_headers(key, body, at))


def stored(db: psycopg.Connection) -> list[tuple]:
    return db.execute(
        "select sg_event_id, event, _file_name, _line_number from raw.provider_events order by _file_name, _line_number"
    ).fetchall()


def test_a1_valid_signed_batch_is_stored_in_one_receipt(client, key, db) -> None:
    response = post(client, key, [event("delivered", 1), event("open", 2)])
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["stored"] == 2
    assert receipt["quarantined"] == 0
    name = f"webhook:{receipt['receipt_id']}"
    assert stored(db) == [("sg-event-delivered-1", "delivered", name, 1), ("sg-event-open-2", "open", name, 2)]
    assert db.execute("select events_stored, events_quarantined from raw.webhook_receipts").fetchall() == [(2, 0)]


def test_a1_webhook_and_landing_file_store_identical_rows(client, key, db, landing: Path) -> None:
    from cart_recovery.ingest.loader import load_landing

    events = [event("delivered", 1), event("bounce", 2, reason="550 no such user", type="bounce")]
    events.append({**event("click", 3, url="https://shop.example.org/cart?x=é"), "timestamp": 1795500003.5})
    assert post(client, key, events).status_code == 200
    (landing / "provider_events_2026-11-23.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    load_landing(landing, db)
    cols = "sg_event_id, event, email, occurred_at, sg_message_id, message_id, campaign, payload, _line_number"
    by_source = {
        source: db.execute(
            f"select {cols} from raw.provider_events where _file_name like %s order by _line_number", (pattern,)
        ).fetchall()
        for source, pattern in (("webhook", "webhook:%"), ("file", "provider_events_%"))
    }
    assert len(by_source["webhook"]) == 3
    assert by_source["webhook"] == by_source["file"]


def test_a1_missing_signature_headers_are_refused(client, db) -> None:
    response = client.post(URL, content=json.dumps([event()]).encode())
    assert response.status_code == 401
    assert stored(db) == []


def test_a1_signature_from_another_key_is_refused(client, db) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    response = post(client, other, [event()])
    assert response.status_code == 403
    assert response.json() == {"error": "invalid signature"}
    assert stored(db) == []


def test_a1_tampered_body_is_refused(client, key, db) -> None:
    body = json.dumps([event("delivered")]).encode()
    headers = signed_headers(key, body)
    tampered = body.replace(b'"delivered"', b'"unsubscribe"')
    assert client.post(URL, content=tampered, headers=headers).status_code == 403
    headers[webhook.SIGNATURE_HEADER] = "not base64!"
    assert client.post(URL, content=body, headers=headers).status_code == 403
    assert stored(db) == []


def test_a1_timestamp_swapped_after_signing_is_refused(client, key, db) -> None:
    body = json.dumps([event()]).encode()
    headers = signed_headers(key, body, at=time.time() - 10)
    headers[webhook.TIMESTAMP_HEADER] = str(int(time.time()))  # fresh time, old signature
    assert client.post(URL, content=body, headers=headers).status_code == 403
    assert stored(db) == []


@pytest.mark.parametrize("offset", [-301, 301, -86400], ids=["stale", "future", "a_day_old"])
def test_a1_timestamps_outside_five_minutes_are_refused(client, key, db, offset: int) -> None:
    response = post(client, key, [event()], at=time.time() + offset)
    assert response.status_code == 403
    assert response.json() == {"error": "stale timestamp"}
    assert stored(db) == []


def test_a1_tolerance_is_configurable(client, key, db, monkeypatch) -> None:
    assert post(client, key, [event()], at=time.time() - 290).status_code == 200  # inside the default 300 s
    monkeypatch.setenv("CR_WEBHOOK_TOLERANCE_SECONDS", "60")
    assert post(client, key, [event(n=2)], at=time.time() - 120).status_code == 403
    monkeypatch.setenv("CR_WEBHOOK_TOLERANCE_SECONDS", "900")
    assert post(client, key, [event(n=3)], at=time.time() - 600).status_code == 200
    assert len(stored(db)) == 2


def test_a1_exact_replay_is_refused(client, key, db) -> None:
    body = json.dumps([event("unsubscribe")]).encode()
    headers = signed_headers(key, body)
    assert client.post(URL, content=body, headers=headers).status_code == 200
    replay = client.post(URL, content=body, headers=headers)
    assert replay.status_code == 409
    assert replay.json() == {"error": "replayed request"}
    # the same signed content under the other valid form of the ECDSA signature (r, n - s) is a replay too
    r, s = decode_dss_signature(base64.b64decode(headers[webhook.SIGNATURE_HEADER]))
    headers[webhook.SIGNATURE_HEADER] = base64.b64encode(encode_dss_signature(r, P256_ORDER - s)).decode()
    assert client.post(URL, content=body, headers=headers).status_code == 409
    assert len(stored(db)) == 1
    assert db.execute("select count(*) from raw.webhook_receipts").fetchone() == (1,)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'[{"event": "delivered",', "malformed JSON"),
        (b"\xff\xfe not utf-8", "malformed JSON"),
        (b'{"event": "delivered", "timestamp": 1795500000}', "expected a JSON list of events"),
    ],
    ids=["truncated", "not_utf8", "object_not_list"],
)
def test_a1_signed_but_malformed_bodies_are_refused(client, key, db, raw: bytes, error: str) -> None:
    response = post(client, key, None, raw=raw)
    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert stored(db) == []
    assert db.execute("select count(*) from raw.webhook_receipts").fetchone() == (0,)


def test_o4_mixed_batch_quarantines_the_bad_events_and_stores_the_rest(client, key, db) -> None:
    events = [
        event("delivered", 1),
        event("teleported", 2),  # unknown event type
        "not an object",
        {"email": "x@example.org", "timestamp": 1795500000},  # no event key
        event("open", 5, timestamp="yesterday"),
        event("spamreport", 6),
    ]
    response = post(client, key, events)
    assert response.status_code == 200
    assert (response.json()["stored"], response.json()["quarantined"]) == (2, 4)
    name = f"webhook:{response.json()['receipt_id']}"
    assert stored(db) == [
        ("sg-event-delivered-1", "delivered", name, 1),
        ("sg-event-spamreport-6", "spamreport", name, 6),
    ]
    quarantined = db.execute(
        "select file_name, kind, line_number, reason, content from raw.quarantine order by line_number"
    ).fetchall()
    assert [(q[0], q[1], q[2], q[3]) for q in quarantined] == [
        (name, "provider_events", 2, "unknown event value"),
        (name, "provider_events", 3, "not a JSON object"),
        (name, "provider_events", 4, "missing key event"),
        (name, "provider_events", 5, "bad timestamp in timestamp"),
    ]
    assert json.loads(quarantined[0][4]) == events[1]


def test_a1_redelivered_events_are_stored_and_deduplicated_by_dbt(client, key, db) -> None:
    from cart_recovery.dbt import build_models

    first = [event("delivered", 1), event("unsubscribe", 2)]
    # SendGrid re-delivers: the same events in a later request, one of them under a new sg_event_id
    again = [first[0], {**first[1], "sg_event_id": "sg-event-unsubscribe-2-redelivered"}]
    assert post(client, key, first).status_code == 200
    assert post(client, key, again, at=time.time() + 1).status_code == 200
    assert len(stored(db)) == 4  # raw keeps what arrived
    build_models(datetime.now(UTC) + timedelta(hours=1), select="stg_shop__provider_events")
    rows = db.execute("select event, email from staging.stg_shop__provider_events order by event").fetchall()
    assert rows == [("delivered", "reader1@example.org"), ("unsubscribe", "reader2@example.org")]


def test_a1_unconfigured_key_answers_503(client, key, db, monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SENDGRID_WEBHOOK")
    webhook.clear_key_cache()
    assert post(client, key, [event()]).status_code == 503
    assert stored(db) == []


def test_a1_key_from_extra_and_in_pem_form(client, key, db, monkeypatch) -> None:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SENDGRID_WEBHOOK",
        json.dumps({"conn_type": "generic", "extra": {"public_key": pem.decode()}}),
    )
    webhook.clear_key_cache()
    assert post(client, key, [event()]).status_code == 200


def test_a1_only_p256_public_keys_are_accepted(key) -> None:
    assert isinstance(webhook.load_public_key(public_b64(key)).curve, ec.SECP256R1)
    other_curve = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="P-256"):
        webhook.load_public_key(public_b64(other_curve))
    with pytest.raises(ValueError, match="not a public key"):
        webhook.load_public_key("bm90IGEga2V5")
