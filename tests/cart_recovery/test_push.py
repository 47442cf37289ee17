"""Push (F4): the notification per locale, the connections, and the real clients — pywebpush with VAPID and
google-auth + FCM HTTP v1 — sending to the local stand-ins (S2 outcomes, `gone` for dead subscriptions)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cart_recovery import TEMPLATES_DIR
from cart_recovery.channels.push import (
    LOCALES,
    MAX_WEB_PUSH_PAYLOAD,
    FcmChannel,
    FcmSettings,
    PushChannel,
    WebPushChannel,
    WebPushSettings,
    build_fcm_message,
    build_web_push,
    fcm_settings,
    push_payload,
    render_push,
    webpush_settings,
)
from cart_recovery.devtools.channel_standins import ChannelStandins, make_vapid_key

LINK = "https://leslibraires.example/panier/PAN-000000123?utm_source=cart_recovery&utm_medium=push&cr_message_id=m1"
IMAGE = "https://leslibraires.example/couvertures/9782070612758.jpg"
SUBJECT = "mailto:rappels@libraires.example"


def payload(**overrides: object) -> dict[str, str]:
    args: dict[str, object] = {
        "locale": "fr",
        "first_item_title": "Le Petit Prince",
        "cart_link": LINK,
        "first_name": "Marie",
        "more_items": 2,
        "image_url": IMAGE,
        "coupon_code": None,
        "tag": "cart-PAN-000000123",
    }
    args.update(overrides)
    return push_payload(**args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the notification
def test_f4_push_payload_french_and_english() -> None:
    fr = payload()
    assert fr == {
        "title": "Marie, votre panier vous attend",
        "body": "« Le Petit Prince » et 2 autres articles sont toujours dans votre panier.",
        "image": IMAGE,
        "url": LINK,
        "action": "Voir mon panier",
        "tag": "cart-PAN-000000123",
    }
    en = payload(locale="en", first_name="", more_items=0, coupon_code="PROMO5", coupon_percent="5.00")
    assert en["title"] == "Your cart is waiting"  # neutral without a first name (M1)
    assert en["body"] == '"Le Petit Prince" is still in your cart. Take 5% off with code PROMO5.'
    assert en["url"] == LINK


def test_f4_push_payload_without_image_and_with_hostile_title() -> None:
    title = 'Le "vrai" </script>\\ livre\n  & cie'
    p = payload(first_item_title=title, image_url=None, locale="xx")  # unknown locale -> fr
    assert "image" not in p
    assert p["body"].startswith('« Le "vrai" </script>\\ livre & cie »')  # JSON-safe, whitespace collapsed
    assert p["title"].startswith("Marie, votre panier")


def test_m7_every_push_template_renders_for_every_locale() -> None:
    folders = sorted(d.name for d in (TEMPLATES_DIR / "push").iterdir() if d.is_dir())
    assert folders == ["abandoned_cart"]
    for template in folders:
        for locale in LOCALES:
            p = payload(locale=locale, template=template)
            assert p["title"]
            assert p["body"]
            assert p["url"] == LINK


def test_render_push_reads_a_decision_row() -> None:
    row = {
        "locale": "en",
        "first_name": "Alex",
        "item_count": 1,
        "coupon_code": None,
        "items": [{"position": 1, "title": "Kamouraska", "sku": "978-1", "image_url": IMAGE}],
    }
    p = render_push(row, cart_link=LINK, tag="cart-1")
    assert p["title"] == "Alex, your cart is waiting"
    assert p["body"] == '"Kamouraska" is still in your cart.'
    assert p["image"] == IMAGE
    assert p["tag"] == "cart-1"


def test_build_web_push_and_fcm_bodies() -> None:
    body = build_web_push(endpoint="https://push.example/x", p256dh="k", auth="a", payload=payload(), topic="c" * 40)
    assert body["kind"] == "web"
    assert json.loads(body["data"]) == payload()
    assert body["headers"] == {"Urgency": "normal", "Topic": "c" * 32}
    assert body["ttl"] == 86400
    with pytest.raises(ValueError, match="web push payload"):
        build_web_push(endpoint="x", p256dh="k", auth="a", payload={"body": "x" * MAX_WEB_PUSH_PAYLOAD})
    fcm = build_fcm_message(token="tok", payload=payload(), kind="ios", data={"message_id": 7})
    message = fcm["message"]
    assert fcm["kind"] == "ios"
    assert message["notification"] == {"title": payload()["title"], "body": payload()["body"], "image": IMAGE}
    assert message["data"] == {"url": LINK, "message_id": "7"}  # FCM takes string values only
    assert message["android"]["collapse_key"] == "cart-PAN-000000123"
    assert message["apns"]["headers"]["apns-collapse-id"] == "cart-PAN-000000123"
    assert message["apns"]["fcm_options"] == {"image": IMAGE}


# --------------------------------------------------------------------------- connections (contract §1)
def test_webpush_settings_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    private, _ = make_vapid_key()
    conn = {"conn_type": "generic", "password": private, "extra": {"subject": "rappels@libraires.example"}}
    monkeypatch.setenv("AIRFLOW_CONN_WEBPUSH_DEFAULT", json.dumps(conn))
    settings = webpush_settings()
    assert settings.subject == SUBJECT  # a bare address gets mailto:
    assert private not in repr(settings)
    monkeypatch.setenv("AIRFLOW_CONN_WEBPUSH_DEFAULT", json.dumps({"password": private}))
    with pytest.raises(RuntimeError, match="subject"):
        webpush_settings()


def test_fcm_settings_from_the_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with ChannelStandins() as s:
        info = s.service_account_info("shop-app")
    conn = {"conn_type": "generic", "host": "http://127.0.0.1:9", "password": json.dumps(info)}
    monkeypatch.setenv("AIRFLOW_CONN_FCM_DEFAULT", json.dumps(conn))
    settings = fcm_settings()
    assert (settings.project_id, settings.host) == ("shop-app", "http://127.0.0.1:9")
    assert "PRIVATE KEY" not in repr(settings)
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(info))
    conn = {"password": str(key_file), "extra": {"project_id": "other"}}
    monkeypatch.setenv("AIRFLOW_CONN_FCM_DEFAULT", json.dumps(conn))
    settings = fcm_settings()
    assert (settings.project_id, settings.host) == ("other", "https://fcm.googleapis.com")
    monkeypatch.setenv("AIRFLOW_CONN_FCM_DEFAULT", json.dumps({"password": "not json"}))
    with pytest.raises(RuntimeError, match="service account"):
        fcm_settings()


# --------------------------------------------------------------------------- web push through pywebpush
@pytest.fixture
def standins() -> ChannelStandins:
    with ChannelStandins(slow_ms=1500) as s:
        yield s


@pytest.fixture
def web() -> WebPushChannel:
    private, _ = make_vapid_key()
    return WebPushChannel(WebPushSettings(private, SUBJECT), timeout_s=5)


def web_body(sub: dict[str, str], **kw: object) -> dict[str, object]:
    return build_web_push(**sub, payload=payload(), topic="cart-1", **kw)  # type: ignore[arg-type]


def test_f4_web_push_accepted_and_decrypted_by_the_push_service(standins: ChannelStandins, web: WebPushChannel) -> None:
    sub = standins.new_web_subscription()
    result = web.send(web_body(sub))
    assert result.outcome == "accepted"
    assert result.status_code == 201
    [got] = standins.webpush
    assert result.provider_message_id == got.location
    assert got.payload == payload()  # the stand-in decrypted exactly what was built
    assert got.vapid_subject == SUBJECT
    assert got.headers["ttl"] == "86400"
    assert got.headers["topic"] == "cart-1"
    assert got.headers["urgency"] == "normal"
    assert got.headers["content-encoding"] == "aes128gcm"
    assert got.headers["authorization"].startswith("vapid t=")
    assert web.application_server_key in got.headers["authorization"]  # k= is our public key


def test_f4_web_push_with_a_pem_vapid_key(standins: ChannelStandins) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    channel = WebPushChannel(WebPushSettings(pem, SUBJECT), timeout_s=5)
    assert channel.send(web_body(standins.new_web_subscription())).outcome == "accepted"


@pytest.mark.parametrize("status", [404, 410])
def test_f4_web_push_404_and_410_are_gone(standins: ChannelStandins, web: WebPushChannel, status: int) -> None:
    sub = standins.new_web_subscription()
    if status == 410:
        standins.mark_gone(sub["endpoint"])
    else:
        standins.add_faults("webpush", 404)
    result = web.send(web_body(sub))
    assert (result.outcome, result.status_code) == ("gone", status)
    assert standins.webpush == []


@pytest.mark.parametrize(("fault", "retry_after"), [(429, 1.0), (500, None), (503, None)])
def test_s2_web_push_retryable(
    standins: ChannelStandins, web: WebPushChannel, fault: int, retry_after: float | None
) -> None:
    standins.add_faults("webpush", fault)
    sub = standins.new_web_subscription()
    result = web.send(web_body(sub))
    assert (result.outcome, result.status_code, result.retry_after_s) == ("retry", fault, retry_after)
    assert web.send(web_body(sub)).outcome == "accepted"


def test_s2_web_push_timeout_after_sending_is_unknown(standins: ChannelStandins) -> None:
    private, _ = make_vapid_key()
    web = WebPushChannel(WebPushSettings(private, SUBJECT), timeout_s=0.5)
    standins.add_faults("webpush", "slow")
    result = web.send(web_body(standins.new_web_subscription()))
    assert result.outcome == "unknown"
    assert len(standins.webpush) == 1


def test_web_push_bad_subscription_keys_are_rejected_without_a_request(
    standins: ChannelStandins, web: WebPushChannel
) -> None:
    sub = {**standins.new_web_subscription(), "p256dh": "bm90LWEta2V5"}
    result = web.send(web_body(sub))
    assert result.outcome == "rejected"
    assert standins.answers("webpush") == []
    assert web.send({"kind": "web", "subscription": {"endpoint": "ftp://x"}}).outcome == "rejected"


# --------------------------------------------------------------------------- FCM HTTP v1 through google-auth
@pytest.fixture
def fcm(standins: ChannelStandins) -> FcmChannel:
    return FcmChannel(FcmSettings(standins.service_account_info("shop-app"), "shop-app", standins.url), timeout_s=5)


def test_f4_fcm_accepted_with_one_oauth_token(standins: ChannelStandins, fcm: FcmChannel) -> None:
    results = [fcm.send(build_fcm_message(token=f"device-{i}", payload=payload())) for i in range(3)]
    assert [r.outcome for r in results] == ["accepted"] * 3
    assert [r.provider_message_id for r in results] == [g.name for g in standins.fcm]
    assert all(g.project == "shop-app" for g in standins.fcm)
    assert [g.token for g in standins.fcm] == ["device-0", "device-1", "device-2"]
    assert standins.fcm[0].message["notification"]["title"] == "Marie, votre panier vous attend"
    assert len(standins.issued_tokens) == 1  # the access token is cached between sends


def test_f4_fcm_unregistered_token_is_gone(standins: ChannelStandins, fcm: FcmChannel) -> None:
    standins.unregistered_tokens.add("old-device")
    result = fcm.send(build_fcm_message(token="old-device", payload=payload()))
    assert (result.outcome, result.status_code) == ("gone", 404)
    assert "UNREGISTERED" in (result.error or "")
    assert standins.fcm == []


@pytest.mark.parametrize(
    ("fault", "outcome", "retry_after"),
    [(429, "retry", 1.0), (500, "retry", None), (503, "retry", None), (400, "rejected", None)],
)
def test_s2_fcm_errors(
    standins: ChannelStandins, fcm: FcmChannel, fault: int, outcome: str, retry_after: float | None
) -> None:
    standins.add_faults("fcm", fault)
    result = fcm.send(build_fcm_message(token="device", payload=payload()))
    assert (result.outcome, result.status_code, result.retry_after_s) == (outcome, fault, retry_after)


def test_s2_fcm_timeout_after_sending_is_unknown(standins: ChannelStandins) -> None:
    settings = FcmSettings(standins.service_account_info(), "cr-standin", standins.url)
    fcm = FcmChannel(settings, timeout_s=0.5)
    standins.add_faults("fcm", "slow")
    assert fcm.send(build_fcm_message(token="device", payload=payload())).outcome == "unknown"
    assert len(standins.fcm) == 1


def test_fcm_revoked_token_is_refreshed_once(standins: ChannelStandins, fcm: FcmChannel) -> None:
    assert fcm.send(build_fcm_message(token="a", payload=payload())).outcome == "accepted"
    standins.issued_tokens.clear()  # the server forgets it: 401, then a fresh token
    assert fcm.send(build_fcm_message(token="b", payload=payload())).outcome == "accepted"
    assert len(standins.issued_tokens) == 1
    assert standins.answers("fcm") == [200, 401, 200]


def test_fcm_unknown_signer_gets_no_token_and_sends_nothing(standins: ChannelStandins) -> None:
    from cart_recovery.devtools.channel_standins import make_service_account_info

    stranger = make_service_account_info(f"{standins.url}/token")  # a key the token endpoint never saw
    fcm = FcmChannel(FcmSettings(stranger, "cr-standin", standins.url), timeout_s=5)
    result = fcm.send(build_fcm_message(token="device", payload=payload()))
    assert result.outcome == "retry"
    assert "FCM token" in (result.error or "")
    assert standins.answers("fcm") == []


# --------------------------------------------------------------------------- one entry point
def test_push_channel_dispatches_by_kind(
    standins: ChannelStandins, web: WebPushChannel, fcm: FcmChannel, caplog: pytest.LogCaptureFixture
) -> None:
    push = PushChannel(web=web, fcm=fcm)
    assert push.send(web_body(standins.new_web_subscription())).outcome == "accepted"
    assert push.send(build_fcm_message(token="t", payload=payload(), kind="android")).outcome == "accepted"
    assert (len(standins.webpush), len(standins.fcm)) == (1, 1)
    assert push.send({"kind": "carrier-pigeon"}).outcome == "rejected"
    web_only = PushChannel(web=web)
    assert web_only.send(build_fcm_message(token="t", payload=payload(), kind="ios")).outcome == "rejected"


def test_push_channel_from_connections_leaves_out_what_is_not_configured(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    private, _ = make_vapid_key()
    monkeypatch.setenv("AIRFLOW_CONN_WEBPUSH_DEFAULT", json.dumps({"password": private, "extra": {"subject": SUBJECT}}))
    monkeypatch.setenv("AIRFLOW_CONN_FCM_DEFAULT", json.dumps({"password": ""}))
    caplog.set_level(logging.WARNING)
    push = PushChannel.from_connections()
    assert push.web is not None
    assert push.fcm is None
    assert "mobile push not configured" in caplog.text
    assert private not in caplog.text
