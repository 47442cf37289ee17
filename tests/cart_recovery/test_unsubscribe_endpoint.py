"""The unsubscribe endpoint (M6, E4, RFC 8058) against the real Postgres, then the next run's exclusion,
and the plugin served by Airflow's own API server app."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from cart_recovery.api import unsubscribe_pages
from cart_recovery.api.app import create_app
from cart_recovery.unsubscribe import make_token
from tests.dbt.world import World, campaign, h

SECRET = "endpoint-test-secret"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
INVALID_FR = "Ce lien de désabonnement n'est pas valide ou a expiré."
INVALID_EN = "This unsubscribe link is not valid or has expired."


def token_for(customer_id: str, issued_at: datetime | None = None, channel: str = "email") -> str:
    issued_at = issued_at or datetime.now(UTC) - timedelta(days=1)
    return make_token(customer_id, channel, "bookstore_daily", issued_at, SECRET.encode())


def unsubscribes(db: psycopg.Connection) -> list[tuple]:
    return db.execute("select customer_id, channel, source from ops.unsubscribes order by customer_id").fetchall()


@pytest.fixture
def world(db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("CR_UNSUBSCRIBE_SECRET", SECRET)
    w = World(db)
    w.customer("anne", locale="fr")
    w.customer("bob", locale="en")
    return w


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def test_m6_one_click_post_records_at_once_without_cookie_or_redirect(client, db) -> None:
    url = f"/unsubscribe?token={token_for('bob')}"
    response = client.post(url, data=ONE_CLICK, follow_redirects=False)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "location" not in response.headers
    assert unsubscribes(db) == [("bob", "email", "one_click")]
    assert 'lang="en"' in response.text
    assert "You are unsubscribed." in response.text
    # idempotent: a second POST (the mail client retries, the customer clicks again) adds nothing
    assert client.post(url, data=ONE_CLICK).status_code == 200
    assert unsubscribes(db) == [("bob", "email", "one_click")]


def test_m6_get_shows_a_confirmation_and_never_unsubscribes(client, db) -> None:
    token = token_for("anne")
    for _ in range(2):  # a link scanner, then the customer
        response = client.get(f"/unsubscribe?token={token}")
        assert response.status_code == 200
        assert unsubscribes(db) == []
    page = response.text
    assert 'lang="fr"' in page
    assert "Ne plus recevoir nos rappels de panier ?" in page
    assert "par courriel" in page
    assert f'<form method="post" action="unsubscribe?token={token}">' in page
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("customer", "heading", "done"),
    [
        ("anne", "Ne plus recevoir nos rappels de panier ?", "Vous êtes désabonné·e."),
        ("bob", "Stop receiving our cart reminders?", "You are unsubscribed."),
        ("unknown-customer", "Ne plus recevoir nos rappels de panier ?", "Vous êtes désabonné·e."),  # fr default
    ],
)
def test_m6_pages_in_the_customers_language(client, db, customer: str, heading: str, done: str) -> None:
    token = token_for(customer)
    assert heading in client.get(f"/unsubscribe?token={token}").text
    # the confirmation page's button: a form POST without the one-click body
    response = client.post(f"/unsubscribe?token={token}", data={})
    assert response.status_code == 200
    assert done in response.text
    assert unsubscribes(db) == [(customer, "email", "link")]


def test_m1_latest_customer_record_decides_the_language(client, world: World) -> None:
    from tests.dbt.world import T

    world.customer("anne", locale="en", updated_at=T, consent=False)  # anne switched to English
    assert "Stop receiving our cart reminders?" in client.get(f"/unsubscribe?token={token_for('anne')}").text


def test_m6_tampered_expired_and_missing_tokens_are_refused_without_detail(client, db) -> None:
    good = token_for("anne")
    payload, signature = good.split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps(["bob", "email", "x", 1795000000]).encode()).decode()
    expired = token_for("anne", issued_at=datetime.now(UTC) - timedelta(days=120))
    for token in (
        f"{forged_payload.rstrip('=')}.{signature}",
        f"{payload}.{signature[:-3]}xyz",
        expired,
        "garbage",
        "",
    ):
        for response in (
            client.get(f"/unsubscribe?token={token}"),
            client.post(f"/unsubscribe?token={token}", data=ONE_CLICK),
        ):
            assert response.status_code == 400, token
            assert INVALID_FR in html.unescape(response.text)
            assert INVALID_EN in html.unescape(response.text)
            for leak in ("signature", "expired (", "malformed", "Traceback"):
                assert leak not in response.text
    assert client.post("/unsubscribe", data=ONE_CLICK).status_code == 400  # no token at all
    assert unsubscribes(db) == []


def test_m6_pages_are_escaped(client, monkeypatch) -> None:
    monkeypatch.setenv("CR_SENDER_NAME", '<script>alert("x")</script> & Cie')
    page = client.get(f"/unsubscribe?token={token_for('anne')}").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Cie" in page


@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("page", ["confirm", "done", "invalid", "unavailable"])
def test_m6_every_page_renders_in_every_locale(page: str, locale: str) -> None:
    page_html = unsubscribe_pages.render(page, locale, token="abc.def", channel="sms")
    assert page_html.startswith("<!DOCTYPE html>")
    assert f'lang="{locale}"' in page_html
    if page in ("confirm", "done"):
        assert unsubscribe_pages.strings()[locale]["channels"]["sms"] in page_html


def test_e4_one_click_then_the_next_run_excludes_the_cart_as_suppressed(client, db, world: World) -> None:
    """The unsubscribe is recorded at once (wall clock) and the next run, at its T, excludes the customer."""
    from cart_recovery.dbt import run_dbt

    t = datetime.now(UTC).replace(microsecond=0) + h(1)  # the next run's data-interval end
    world.store("s1")
    world.product("sku-1")
    for customer in ("anne", "bob"):
        world.cart(f"{customer}-e1", f"{customer}-cart", t - h(3), customer)
    assert client.post(f"/unsubscribe?token={token_for('anne')}", data=ONE_CLICK).status_code == 200

    run_dbt(
        ["build", "--quiet", "--resource-type", "model", "--resource-type", "seed"],
        vars={"evaluation_time": t.isoformat(), "campaigns": [campaign()]},
    )
    exclusions = dict(db.execute("select cart_id, reason from marts.recipient_exclusions").fetchall())
    eligible = [r[0] for r in db.execute("select cart_id from marts.eligible_recipients").fetchall()]
    assert exclusions.get("anne-cart") == "suppressed"
    assert eligible == ["bob-cart"]  # the control: the same cart without an unsubscribe is messaged


def test_plugin_is_loaded_by_airflow_and_served_by_its_api_server(db, world: World, airflow_metadata) -> None:
    """Airflow's plugins manager finds `cart_recovery_plugin.py`; the API server app mounts it at
    /cart-recovery without Airflow's auth (anonymous callers reach it)."""
    from airflow import plugins_manager
    from airflow.api_fastapi.app import create_app as create_airflow_app

    info = {p["name"]: p for p in plugins_manager.get_plugin_info()}
    assert info["cart_recovery"]["fastapi_apps"][0]["url_prefix"] == "/cart-recovery"

    with TestClient(create_airflow_app(apps="core")) as airflow_api:
        token = token_for("anne")
        assert "Ne plus recevoir" in airflow_api.get(f"/cart-recovery/unsubscribe?token={token}").text
        response = airflow_api.post(f"/cart-recovery/unsubscribe?token={token}", data=ONE_CLICK)
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
        # the webhook is routed too: unsigned, it is refused by the plugin itself (not by Airflow's auth)
        assert airflow_api.post("/cart-recovery/sendgrid/events", content=b"[]").json() == {
            "error": "missing signature headers"
        }
        assert airflow_api.get("/api/v2/dags").status_code in (401, 403)  # Airflow's own API stays protected
    assert unsubscribes(db) == [("anne", "email", "one_click")]
