"""Signed unsubscribe tokens, links and headers (M6, E4)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from cart_recovery.unsubscribe import (
    InvalidToken,
    list_unsubscribe_headers,
    make_token,
    record_unsubscribe,
    unsubscribe_secret,
    unsubscribe_url,
    verify,
)

SECRET = b"test-secret"
T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def test_m6_token_round_trips() -> None:
    token = make_token("alice", "email", "bookstore_daily", T, SECRET)
    claim = verify(token, SECRET, now=T + timedelta(days=1))
    assert (claim.customer_id, claim.channel, claim.campaign, claim.issued_at) == (
        "alice",
        "email",
        "bookstore_daily",
        T,
    )
    assert make_token("alice", "email", "bookstore_daily", T, SECRET) == token  # deterministic per T (O2)


def test_m6_tampered_tokens_are_refused() -> None:
    token = make_token("alice", "email", "bookstore_daily", T, SECRET)
    payload, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps(["bob", "email", "bookstore_daily", int(T.timestamp())]).encode())
    for bad in (
        forged.decode().rstrip("=") + "." + sig,  # another customer, old signature
        payload + "." + sig[:-2] + ("AA" if not sig.endswith("AA") else "BB"),  # altered signature
        payload,  # no signature
        "",
        "a.b.c",
    ):
        with pytest.raises(InvalidToken):
            verify(bad, SECRET, now=T)
    with pytest.raises(InvalidToken, match="bad signature"):
        verify(token, b"another-secret", now=T)


def test_m6_tokens_expire_after_90_days_by_default_and_never_before_60() -> None:
    token = make_token("alice", "email", "bookstore_daily", T, SECRET)
    assert verify(token, SECRET, now=T + timedelta(days=89)).customer_id == "alice"
    with pytest.raises(InvalidToken, match="expired"):
        verify(token, SECRET, now=T + timedelta(days=91))
    # a shorter setting is raised to 60 days: old emails keep a working link
    assert verify(token, SECRET, now=T + timedelta(days=59), max_age_days=7).customer_id == "alice"


def test_m6_link_and_one_click_headers() -> None:
    url = unsubscribe_url("abc.def", "https://shop.example/")
    assert url == "https://shop.example/cart-recovery/unsubscribe?token=abc.def"
    headers = list_unsubscribe_headers(url, mailto="unsubscribe@shop.example")
    assert headers["List-Unsubscribe"] == (
        "<https://shop.example/cart-recovery/unsubscribe?token=abc.def>, "
        "<mailto:unsubscribe@shop.example?subject=unsubscribe>"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_secret_from_env_else_local_default_with_a_warning(monkeypatch, caplog, capsys) -> None:
    monkeypatch.setenv("CR_UNSUBSCRIBE_SECRET", "from-env")
    assert unsubscribe_secret() == b"from-env"
    monkeypatch.delenv("CR_UNSUBSCRIBE_SECRET")
    monkeypatch.setenv(
        "AIRFLOW_CONN_CART_RECOVERY_UNSUBSCRIBE", json.dumps({"conn_type": "generic", "password": "from-conn"})
    )
    assert unsubscribe_secret() == b"from-conn"
    monkeypatch.delenv("AIRFLOW_CONN_CART_RECOVERY_UNSUBSCRIBE")
    with caplog.at_level(logging.WARNING):
        assert unsubscribe_secret().startswith(b"cart-recovery-local-only")
    # once airflow is imported its structlog set-up may print to stdout instead of the logging tree
    assert "LOCAL-ONLY" in caplog.text + capsys.readouterr().out


def test_e4_record_unsubscribe_writes_ops_unsubscribes(db: psycopg.Connection) -> None:
    token = make_token("alice", "email", "bookstore_daily", datetime.now(UTC), SECRET)
    claim = record_unsubscribe(db, token, source="one_click", secret=SECRET)
    assert claim.customer_id == "alice"
    rows = db.execute("select customer_id, channel, source from ops.unsubscribes").fetchall()
    assert rows == [("alice", "email", "one_click")]
    with pytest.raises(InvalidToken):
        record_unsubscribe(db, token + "x", secret=SECRET)
