"""Contract §1: every connection is read by one reader, `cart_recovery.connections`, in its environment form
(JSON or an Airflow URI) or through Airflow — the warehouse, SendGrid, Twilio, push, the webhook key and the
unsubscribe secret alike (O5: a password never shows in a repr)."""

from __future__ import annotations

import json

import pytest

from cart_recovery.channels.email import sendgrid_settings
from cart_recovery.connections import connection_fields, parse_connection_env
from cart_recovery.db import conninfo


def test_json_and_uri_forms_read_the_same_fields():
    uri = parse_connection_env("t", "twilio://AC123:tok%2Fen@127.0.0.1:8026/http?from_number=%2B15145550100")
    js = parse_connection_env(
        "t",
        json.dumps(
            {
                "conn_type": "twilio",
                "login": "AC123",
                "password": "tok/en",
                "host": "127.0.0.1",
                "port": 8026,
                "schema": "http",
                "extra": {"from_number": "+15145550100"},
            }
        ),
    )
    assert uri == js
    assert (uri.conn_type, uri.login, uri.password, uri.port, uri.extra) == (
        "twilio",
        "AC123",
        "tok/en",
        8026,
        {"from_number": "+15145550100"},
    )
    assert "tok" not in repr(uri)


def test_every_reader_goes_through_the_one_reader(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CR_TEST_DB", "postgresql://ann:p%40ss@db.example:6543/shop")
    assert connection_fields("cr_test_db").password == "p@ss"
    info = conninfo("cr_test_db")
    assert {"host=db.example", "port=6543", "dbname=shop"} <= set(info.split())
    monkeypatch.setenv(
        "AIRFLOW_CONN_CR_TEST_SG", '{"conn_type": "sendgrid", "host": "http://127.0.0.1:8025", "password": "SG.k"}'
    )
    settings = sendgrid_settings("cr_test_sg")
    assert (settings.api_key, settings.host) == ("SG.k", "http://127.0.0.1:8025")


def test_a_warehouse_connection_of_another_type_is_refused_clearly(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CR_TEST_DB", "mysql://ann:pw@db.example/shop")
    with pytest.raises(ValueError, match="expected a postgres connection, got type 'mysql'"):
        conninfo("cr_test_db")
