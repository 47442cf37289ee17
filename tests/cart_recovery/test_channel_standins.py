"""The local Twilio, web push and FCM stand-ins (devtools): what the demo and the channel tests send to. They
must refuse what the real services refuse, so a test that passes against them means something."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from cart_recovery.channels.push import (
    FcmChannel,
    FcmSettings,
    WebPushChannel,
    WebPushSettings,
    build_fcm_message,
    build_web_push,
)
from cart_recovery.channels.sms import SmsChannel, TwilioSettings, build_sms
from cart_recovery.devtools.channel_standins import (
    ChannelStandins,
    make_service_account_info,
    make_vapid_key,
    standins_subprocess,
)

PHONE = "+15145550123"
SENDER = "+15145550000"
SUBJECT = "mailto:rappels@libraires.example"
NOTE = {"title": "Votre panier vous attend", "body": "« Kamouraska » est toujours dans votre panier.", "url": "u"}


def twilio_post(
    url: str, sid: str = "AC1", auth: tuple[str, str] | None = ("AC1", "tok"), **form: str
) -> requests.Response:
    return requests.post(f"{url}/2010-04-01/Accounts/{sid}/Messages.json", data=form, auth=auth, timeout=5)


# --------------------------------------------------------------------------- Twilio
def test_twilio_stand_in_answers_201_with_a_message_resource_and_writes_the_outbox(tmp_path: Path) -> None:
    with ChannelStandins(outbox_dir=tmp_path) as s:
        response = twilio_post(s.url, To=PHONE, From=SENDER, Body="Bonjour €")
    assert response.status_code == 201
    resource = response.json()
    assert resource["sid"].startswith("SM")
    assert len(resource["sid"]) == 34
    assert (resource["to"], resource["from"], resource["status"]) == (PHONE, SENDER, "queued")
    assert resource["num_segments"] == "1"
    [got] = s.sms
    assert (got.sid, got.account_sid, got.body) == (resource["sid"], "AC1", "Bonjour €")
    text = (tmp_path / "sms" / f"{got.sid}.txt").read_text()
    assert text == f"From: {SENDER}\nTo: {PHONE}\nSegments: 1\n\nBonjour €\n"


def test_twilio_stand_in_checks_basic_auth() -> None:
    with ChannelStandins(twilio_auth_token="tok") as s:
        assert twilio_post(s.url, auth=None, To=PHONE, From=SENDER, Body="x").status_code == 401
        assert twilio_post(s.url, auth=("AC2", "tok"), To=PHONE, From=SENDER, Body="x").status_code == 401
        wrong = twilio_post(s.url, auth=("AC1", "nope"), To=PHONE, From=SENDER, Body="x")
        assert (wrong.status_code, wrong.json()["code"]) == (401, 20003)
        assert twilio_post(s.url, To=PHONE, From=SENDER, Body="x").status_code == 201
    assert len(s.sms) == 1


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "5145550123", "From": SENDER, "Body": "x"}, 21211),
        ({"To": PHONE, "Body": "x"}, 21603),
        ({"To": PHONE, "From": SENDER, "Body": ""}, 21617),
        ({"To": PHONE, "From": SENDER, "Body": "x" * 1601}, 21617),
    ],
)
def test_twilio_stand_in_refuses_what_twilio_refuses(form: dict[str, str], code: int) -> None:
    with ChannelStandins() as s:
        response = twilio_post(s.url, **form)
    assert (response.status_code, response.json()["code"]) == (400, code)
    assert s.sms == []


def test_twilio_stand_in_through_the_official_client() -> None:
    with ChannelStandins() as s:
        s.stopped_numbers.add(PHONE)
        channel = SmsChannel(TwilioSettings("AC1", "tok", "MG0123456789abcdef0123456789abcdef", s.url))
        assert channel.send(build_sms(to="+16045550123", text="x")).outcome == "accepted"
        assert s.sms[0].from_ == "MG0123456789abcdef0123456789abcdef"  # a Messaging Service as sender
        client = Client("AC1", "tok")
        client.api.base_url = s.url  # the client's other way to change its host: the domain's base URL
        with pytest.raises(TwilioRestException) as err:
            client.messages.create(to=PHONE, from_=SENDER, body="x")
        assert (err.value.status, err.value.code) == (400, 21610)


# --------------------------------------------------------------------------- web push
def test_web_push_stand_in_decrypts_records_and_writes_the_outbox(tmp_path: Path) -> None:
    private, public = make_vapid_key()
    with ChannelStandins(outbox_dir=tmp_path) as s:
        sub = s.new_web_subscription("abc")
        assert sub["endpoint"] == f"{s.url}/wp/abc"
        result = WebPushChannel(WebPushSettings(private, SUBJECT)).send(
            build_web_push(**sub, payload=NOTE, topic="cart-9")
        )
    assert result.outcome == "accepted"
    [got] = s.webpush
    assert got.endpoint_id == "abc"
    assert got.payload == NOTE
    assert f"k={public}" in got.headers["authorization"]
    [file] = (tmp_path / "push").glob("web-*.json")
    record = json.loads(file.read_text())
    assert record["payload"] == NOTE
    assert (record["endpoint"], record["topic"], record["vapid_subject"]) == (sub["endpoint"], "cart-9", SUBJECT)


def test_web_push_stand_in_refuses_bad_vapid_and_missing_ttl() -> None:
    with ChannelStandins() as s:
        endpoint = s.web_endpoint("x")
        assert requests.post(endpoint, data=b"", headers={"TTL": "60"}, timeout=5).status_code == 401
        # a VAPID token for another audience
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        k = base64.urlsafe_b64encode(
            key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        ).rstrip(b"=")
        claims = {"aud": "https://push.example", "exp": int(time.time()) + 3600, "sub": SUBJECT}
        token = jwt.encode(claims, key, algorithm="ES256")
        auth = {"Authorization": f"vapid t={token},k={k.decode()}", "TTL": "60"}
        wrong_aud = requests.post(endpoint, headers=auth, timeout=5)
        assert wrong_aud.status_code == 401
        assert "audience" in wrong_aud.text.lower()
        claims["aud"] = s.url
        token = jwt.encode(claims, key, algorithm="ES256")
        good = {"Authorization": f"vapid t={token},k={k.decode()}"}
        assert requests.post(endpoint, headers=good, timeout=5).status_code == 400  # no TTL
        assert requests.post(endpoint, headers={**good, "TTL": "60"}, timeout=5).status_code == 201
        claims["exp"] = int(time.time()) + 48 * 3600  # RFC 8292: at most 24 h
        token = jwt.encode(claims, key, algorithm="ES256")
        late = {"Authorization": f"vapid t={token},k={k.decode()}", "TTL": "60"}
        assert requests.post(endpoint, headers=late, timeout=5).status_code == 401
    assert len(s.webpush) == 1
    assert s.webpush[0].payload is None  # an empty push (a tickle) to an endpoint it holds no keys for


# --------------------------------------------------------------------------- FCM
def test_fcm_stand_in_token_endpoint_and_messages(tmp_path: Path) -> None:
    with ChannelStandins(outbox_dir=tmp_path) as s:
        url = f"{s.url}/v1/projects/p1/messages:send"
        message = {"message": {"token": "t1", "notification": {"title": "x"}}}
        assert requests.post(url, json=message, timeout=5).status_code == 401  # no bearer
        bad = requests.post(url, json=message, headers={"Authorization": "Bearer made-up"}, timeout=5)
        assert bad.json()["error"]["status"] == "UNAUTHENTICATED"
        no_grant = requests.post(f"{s.url}/token", data={"grant_type": "password"}, timeout=5)
        assert no_grant.status_code == 400
        fcm = FcmChannel(FcmSettings(s.service_account_info("p1"), "p1", s.url))
        assert fcm.send(build_fcm_message(token="t1", payload=NOTE, data={"message_id": "m1"})).outcome == "accepted"
        token = next(iter(s.issued_tokens))
        auth = {"Authorization": f"Bearer {token}"}
        not_strings = {"message": {"token": "t1", "data": {"n": 1}}}
        invalid = requests.post(url, json=not_strings, headers=auth, timeout=5)
        assert (invalid.status_code, invalid.json()["error"]["status"]) == (400, "INVALID_ARGUMENT")
        no_token = requests.post(url, json={"message": {"data": {}}}, headers=auth, timeout=5)
        assert no_token.status_code == 400
    [got] = s.fcm
    assert got.message["data"] == {"url": "u", "message_id": "m1"}
    [file] = (tmp_path / "push").glob("fcm-*.json")
    record = json.loads(file.read_text())
    assert (record["name"], record["message"]["token"]) == (got.name, "t1")


def test_fcm_stand_in_strict_and_lenient_signers() -> None:
    with ChannelStandins(strict_auth=True) as strict:
        stranger = make_service_account_info(f"{strict.url}/token")
        assert (
            FcmChannel(FcmSettings(stranger, "p", strict.url)).send(build_fcm_message(token="t", payload=NOTE)).outcome
            == "retry"
        )
    with ChannelStandins(strict_auth=False) as lenient:  # the command line's mode: the demo brings its own key
        stranger = make_service_account_info(f"{lenient.url}/token")
        assert (
            FcmChannel(FcmSettings(stranger, "p", lenient.url)).send(build_fcm_message(token="t", payload=NOTE)).outcome
            == "accepted"
        )


# --------------------------------------------------------------------------- faults, latency, keys
def test_faults_are_per_provider_and_in_order() -> None:
    with ChannelStandins(faults={"twilio": "503,429", "fcm": [500]}, retry_after_s=3) as s:
        first = twilio_post(s.url, To=PHONE, From=SENDER, Body="x")
        second = twilio_post(s.url, To=PHONE, From=SENDER, Body="x")
        third = twilio_post(s.url, To=PHONE, From=SENDER, Body="x")
        assert [first.status_code, second.status_code, third.status_code] == [503, 429, 201]
        assert second.headers["Retry-After"] == "3"
        assert second.json()["code"] == 20429
        private, _ = make_vapid_key()
        web = WebPushChannel(WebPushSettings(private, SUBJECT))
        assert web.send(build_web_push(**s.new_web_subscription(), payload=NOTE)).outcome == "accepted"
        assert s.answers("twilio") == [503, 429, 201]
        assert s.answers("webpush") == [201]
        assert s.state["fcm"].faults == [500]  # untouched by the other providers' traffic
    with pytest.raises(ValueError, match="provider"):
        ChannelStandins(faults={"pigeon": [500]})


def test_drop_accepts_then_closes_without_answering() -> None:
    with ChannelStandins(faults={"webpush": ["drop"]}) as s:
        private, _ = make_vapid_key()
        web = WebPushChannel(WebPushSettings(private, SUBJECT))
        result = web.send(build_web_push(**s.new_web_subscription(), payload=NOTE))
    assert result.outcome == "unknown"
    assert len(s.webpush) == 1
    assert s.answers("webpush") == ["drop"]


def test_latency_delays_every_answer() -> None:
    with ChannelStandins(latency_ms=200) as s:
        started = time.monotonic()
        assert twilio_post(s.url, To=PHONE, From=SENDER, Body="x").status_code == 201
        assert time.monotonic() - started >= 0.2


def test_keys_for_tests_and_the_demo() -> None:
    private, public = make_vapid_key()
    assert len(base64.urlsafe_b64decode(private + "==")) == 32
    assert base64.urlsafe_b64decode(public + "=")[0] == 4  # an uncompressed P-256 point
    info = make_service_account_info("http://127.0.0.1:1/token", "shop")
    assert info["type"] == "service_account"
    assert info["project_id"] == "shop"
    assert info["token_uri"] == "http://127.0.0.1:1/token"
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----")


def test_command_line_stand_ins_in_their_own_process(tmp_path: Path) -> None:
    args = ("--outbox-dir", str(tmp_path), "--stopped-number", "+16045550123", "--gone-endpoint", "dead")
    with standins_subprocess(*args) as url:
        sms = SmsChannel(TwilioSettings("AC1", "tok", SENDER, url))
        assert sms.send(build_sms(to=PHONE, text="Bonjour")).outcome == "accepted"
        assert sms.send(build_sms(to="+16045550123", text="Bonjour")).outcome == "gone"
        private, _ = make_vapid_key()
        web = WebPushChannel(WebPushSettings(private, SUBJECT))
        dead = build_web_push(endpoint=f"{url}/wp/dead", p256dh=_p256dh(), auth="c2VjcmV0c2VjcmV0MTIz", payload=NOTE)
        assert web.send(dead).outcome == "gone"
        alive = build_web_push(endpoint=f"{url}/wp/alive", p256dh=_p256dh(), auth="c2VjcmV0c2VjcmV0MTIz", payload=NOTE)
        assert web.send(alive).outcome == "accepted"
        fcm = FcmChannel(FcmSettings(make_service_account_info(f"{url}/token"), "demo", url))
        assert fcm.send(build_fcm_message(token="device", payload=NOTE)).outcome == "accepted"
    assert len(list((tmp_path / "sms").glob("SM*.txt"))) == 1
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "push").glob("*.json"))]
    assert sorted(r["provider"] for r in records) == ["fcm", "webpush"]
    web_record = next(r for r in records if r["provider"] == "webpush")
    assert web_record["payload"] is None  # keys it does not hold: the size only
    assert web_record["encrypted_bytes"] > 0


def _p256dh() -> str:
    # a browser's subscription public key whose private half the stand-in does not hold
    _, public = make_vapid_key()
    return public
