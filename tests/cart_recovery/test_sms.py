"""SMS (F4): segment counting, the fr/en text, quiet hours, the Twilio settings, and the real `twilio` client
sending to the local stand-in (S2 outcomes); phone numbers never in the logs (O5)."""

from __future__ import annotations

import json
import logging
import socket
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cart_recovery import TEMPLATES_DIR
from cart_recovery.channels import mask_phone
from cart_recovery.channels.sms import (
    LOCALES,
    SmsChannel,
    TwilioSettings,
    build_sms,
    gsm7_segments,
    is_e164,
    normalize_phone,
    quiet_hours_deferral,
    recipient_time_zone,
    render_sms,
    sms_segments,
    sms_text,
    to_gsm7,
    twilio_settings,
)
from cart_recovery.devtools.channel_standins import ChannelStandins

TORONTO = ZoneInfo("America/Toronto")
VANCOUVER = ZoneInfo("America/Vancouver")
MONTREAL_PHONE = "+15145550123"
VANCOUVER_PHONE = "+16045550123"
LINK = "https://leslibraires.example/panier/PAN-000000123"  # the demo shop's cart links
CODE = "TEXTO5-AB12-CD34"  # the demo's sms_5 pool codes


# --------------------------------------------------------------------------- segments
@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("é" * 160, "GSM-7", 160, 1),  # é, è, à, É are in the default alphabet
        ("€" * 80, "GSM-7", 160, 1),  # extension characters count twice
        ("€" * 81, "GSM-7", 162, 2),
        ("a" * 158 + "[]", "GSM-7", 162, 2),
        ("ê" * 70, "UCS-2", 70, 1),  # ê is not GSM-7: the whole message is UCS-2
        ("ê" * 71, "UCS-2", 71, 2),
        ("ê" * 134, "UCS-2", 134, 2),
        ("ê" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: two UTF-16 units
        ("😀" * 36, "UCS-2", 72, 2),
        ("a" * 159 + "ç", "UCS-2", 160, 3),  # one lower-case ç turns 1 segment into 3
    ],
)
def test_f4_segments_gsm7_and_ucs2_boundaries(text: str, encoding: str, units: int, segments: int) -> None:
    count = sms_segments(text)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)
    assert gsm7_segments(text) == segments


def test_f4_an_extension_character_is_never_split_across_segments() -> None:
    # 306 septets would be 2 parts of 153, but the escape pair of € cannot straddle the boundary
    text = "a" * 152 + "€" + "a" * 152
    assert sms_segments(text).units == 306
    assert gsm7_segments(text) == 3
    assert gsm7_segments("a" * 151 + "€" + "a" * 153) == 2  # it fits exactly at 153
    # the same for a surrogate pair in UCS-2 (67 units a part)
    assert gsm7_segments("ê" * 66 + "😀" + "ê" * 66) == 3


def test_f4_to_gsm7_transliterates_what_it_can() -> None:
    assert to_gsm7("L’Être et le néant") == "L'Etre et le néant"
    assert to_gsm7("« Garçon » — cœur…") == '" Garcon " - coeur...'
    assert to_gsm7("Ça\u00a0va") == "Ça va"
    assert to_gsm7("東京") == "東京"  # nothing close: stays, and the message counts as UCS-2


# --------------------------------------------------------------------------- text
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(
    ("title", "more", "coupon"),
    [
        ("Le Petit Prince", 0, None),
        ("Le Petit Prince", 2, CODE),
        ("Kamouraska", 0, CODE),
        ("Les Belles-sœurs", 1, CODE),
        ("L’Être et le néant : essai d’ontologie phénoménologique", 3, CODE),
        ("Bonheur d'occasion", 5, None),
    ],
)
def test_f4_typical_cart_texts_fit_one_gsm7_segment(locale: str, title: str, more: int, coupon: str | None) -> None:
    sms = sms_text(
        locale=locale,
        first_item_title=title,
        cart_link=LINK,
        coupon_code=coupon,
        coupon_percent=5 if coupon else None,
        more_items=more,
        sender="Les libraires",
    )
    assert sms.encoding == "GSM-7", sms.text
    assert sms.units <= 160, (sms.units, sms.text)
    assert sms.segments == 1
    assert sms.units == sms_segments(sms.text).units
    assert sms.text.startswith("Les libraires: ")
    assert LINK in sms.text
    stop = "STOP pour vous désabonner" if locale == "fr" else "Reply STOP to opt out"
    assert sms.text.endswith(stop)
    assert to_gsm7(title).split()[0] in sms.text  # the first item, shortened at worst
    if coupon:
        assert coupon in sms.text
        assert "5%" in sms.text
    else:
        assert "5%" not in sms.text
        assert "Code" not in sms.text
    if more:
        assert f"(+{more})" in sms.text
    assert "\n" not in sms.text
    assert "  " not in sms.text


def test_f4_long_title_is_shortened_to_fit_and_a_short_one_kept() -> None:
    long = "Histoire de la littérature québécoise, des origines à nos jours, édition augmentée"
    sms = sms_text(locale="fr", first_item_title=long, cart_link=LINK, coupon_code=CODE, coupon_percent=5)
    assert sms.segments == 1
    assert sms.units <= 160
    assert '"Histoire de la' in sms.text
    assert '..."' in sms.text
    assert long not in sms.text
    short = sms_text(locale="fr", first_item_title="Kamouraska", cart_link=LINK)
    assert '"Kamouraska"' in short.text


def test_f4_a_long_link_gives_counted_segments_and_keeps_the_fewest() -> None:
    tracked = LINK + (
        "?utm_source=cart_recovery&utm_medium=sms&utm_campaign=multi_touch&utm_content=step2"
        "&cr_message_id=0b0c6c1e-5b1f-5f0e-9a57-1f7a3f8d2a61"
    )
    sms = sms_text(locale="en", first_item_title="Le Petit Prince", cart_link=tracked, coupon_code=CODE)
    assert sms.segments == 2
    assert 160 < sms.units <= 306
    assert '"Le Petit Prince"' in sms.text  # two segments anyway: the title is not cut for nothing
    assert tracked in sms.text


def test_f4_a_title_with_non_gsm_characters_does_not_make_the_text_ucs2() -> None:
    sms = sms_text(locale="fr", first_item_title="Être ou paraître — « essais »", cart_link=LINK)
    assert sms.encoding == "GSM-7"
    assert sms.segments == 1
    assert '"Etre ou paraitre - " essais ""' in sms.text


def test_m7_every_sms_template_renders_for_every_locale() -> None:
    folders = sorted(p.name for p in (TEMPLATES_DIR / "sms").iterdir() if p.is_dir())
    assert folders == ["abandoned_cart"]
    for template in folders:
        for locale in LOCALES:
            sms = sms_text(locale=locale, first_item_title="X", cart_link=LINK, template=template)
            assert "STOP" in sms.text
            assert LINK in sms.text


def test_render_sms_reads_a_decision_row() -> None:
    row = {
        "locale": "en",
        "item_count": 3,
        "coupon_code": CODE,
        "coupon_percent": "5.00",
        "items": [
            {"position": 2, "title": "Second", "sku": "978-2"},
            {"position": 1, "title": "Kamouraska", "sku": "978-1"},
        ],
    }
    sms = render_sms(row, cart_link=LINK, sender="Les libraires")
    assert sms.text == (
        f'Les libraires: "Kamouraska" (+2) is in your cart. 5% off: {CODE} {LINK} Reply STOP to opt out'
    )
    french = render_sms({**row, "locale": None, "coupon_code": None}, cart_link=LINK)
    assert french.text == f'"Kamouraska" (+2) dans votre panier. {LINK} STOP pour vous désabonner'


# --------------------------------------------------------------------------- phone numbers (E2)
def test_e2_phone_normalisation_and_e164() -> None:
    assert normalize_phone("(514) 555-0123") == MONTREAL_PHONE
    assert normalize_phone("+1 604 555 0123") == VANCOUVER_PHONE
    assert normalize_phone("555-0123") is None
    assert normalize_phone("") is None
    assert normalize_phone(None) is None
    assert is_e164(MONTREAL_PHONE)
    assert not is_e164("5145550123")
    assert not is_e164("+1 514 555 0123")
    assert not is_e164("+1555")


def test_o5_mask_phone() -> None:
    assert mask_phone(MONTREAL_PHONE) == "+1********23"
    assert "5550" not in mask_phone("(514) 555-0123")
    assert mask_phone(None) == ""


# --------------------------------------------------------------------------- quiet hours (F4)
def at(day: str, hhmm: str, zone: ZoneInfo = TORONTO) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=zone)


def elapsed(start: datetime, end: datetime) -> timedelta:
    # real time between two instants (same-zone datetime subtraction is wall-clock time in Python)
    utc = ZoneInfo("UTC")
    return end.astimezone(utc) - start.astimezone(utc)


def test_f4_quiet_hours_boundaries() -> None:
    assert quiet_hours_deferral(at("2026-06-10", "20:59"), MONTREAL_PHONE, "America/Toronto") is None
    assert quiet_hours_deferral(at("2026-06-10", "08:00"), MONTREAL_PHONE, "America/Toronto") is None
    assert quiet_hours_deferral(at("2026-06-10", "21:00"), MONTREAL_PHONE, "America/Toronto") == at(
        "2026-06-11", "08:00"
    )
    assert quiet_hours_deferral(at("2026-06-10", "23:59"), MONTREAL_PHONE) == at("2026-06-11", "08:00")
    assert quiet_hours_deferral(at("2026-06-11", "00:00"), MONTREAL_PHONE) == at("2026-06-11", "08:00")
    assert quiet_hours_deferral(at("2026-06-10", "07:59"), MONTREAL_PHONE) == at("2026-06-10", "08:00")
    # T arrives in UTC from Airflow: 01:30Z is 21:30 in Toronto (EDT)
    utc = datetime(2026, 6, 11, 1, 30, tzinfo=ZoneInfo("UTC"))
    deferred = quiet_hours_deferral(utc, MONTREAL_PHONE)
    assert deferred == at("2026-06-11", "08:00")
    assert deferred is not None
    assert deferred.tzinfo == TORONTO


def test_f4_quiet_hours_across_the_march_dst_change() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT: the night from 21:30 to 08:00 is 9.5 hours, not 10.5
    deferred = quiet_hours_deferral(at("2026-03-07", "21:30"), MONTREAL_PHONE)
    assert deferred == at("2026-03-08", "08:00")
    assert deferred is not None
    assert deferred.utcoffset() == timedelta(hours=-4)
    assert deferred.astimezone(ZoneInfo("UTC")) == datetime(2026, 3, 8, 12, 0, tzinfo=ZoneInfo("UTC"))
    assert elapsed(at("2026-03-07", "21:30"), deferred) == timedelta(hours=9, minutes=30)
    # during the skipped hour's night, at 01:30 EST and at 03:30 EDT
    assert quiet_hours_deferral(at("2026-03-08", "01:30"), MONTREAL_PHONE) == at("2026-03-08", "08:00")
    assert quiet_hours_deferral(at("2026-03-08", "03:30"), MONTREAL_PHONE) == at("2026-03-08", "08:00")


def test_f4_quiet_hours_across_the_november_dst_change() -> None:
    # 2026-11-01 02:00 EDT -> 01:00 EST: 11.5 hours from 21:30 to 08:00
    deferred = quiet_hours_deferral(at("2026-10-31", "21:30"), MONTREAL_PHONE)
    assert deferred == at("2026-11-01", "08:00")
    assert deferred is not None
    assert deferred.utcoffset() == timedelta(hours=-5)
    assert elapsed(at("2026-10-31", "21:30"), deferred) == timedelta(hours=11, minutes=30)
    # 01:30 happens twice that night: both are quiet, both go to 08:00 EST
    first = datetime(2026, 11, 1, 5, 30, tzinfo=ZoneInfo("UTC"))  # 01:30 EDT
    second = datetime(2026, 11, 1, 6, 30, tzinfo=ZoneInfo("UTC"))  # 01:30 EST
    assert quiet_hours_deferral(first, MONTREAL_PHONE) == quiet_hours_deferral(second, MONTREAL_PHONE)
    assert quiet_hours_deferral(first, MONTREAL_PHONE) == datetime(2026, 11, 1, 13, 0, tzinfo=ZoneInfo("UTC"))


def test_f4_quiet_hours_use_the_phone_zone_over_the_store_zone() -> None:
    # a Vancouver number, a Montreal store: 21:30 in Montreal is 18:30 in Vancouver -> send
    assert quiet_hours_deferral(at("2026-06-10", "21:30"), VANCOUVER_PHONE, "America/Toronto") is None
    assert quiet_hours_deferral(at("2026-06-10", "21:30"), MONTREAL_PHONE, "America/Toronto") is not None
    # 09:00 in Montreal is 06:00 in Vancouver -> deferred to 08:00 Vancouver = 11:00 Montreal
    deferred = quiet_hours_deferral(at("2026-06-10", "09:00"), VANCOUVER_PHONE, "America/Toronto")
    assert deferred == at("2026-06-10", "08:00", VANCOUVER) == at("2026-06-10", "11:00")
    assert quiet_hours_deferral(at("2026-06-10", "09:00"), MONTREAL_PHONE, "America/Toronto") is None
    # Vancouver's 00:00 is after 21:00 Vancouver the day before: next 08:00 there
    late = quiet_hours_deferral(at("2026-06-10", "00:30", VANCOUVER), VANCOUVER_PHONE, "America/Toronto")
    assert late == at("2026-06-10", "08:00", VANCOUVER)


def test_f4_quiet_hours_fall_back_to_the_store_then_toronto() -> None:
    # a toll-free number maps to dozens of zones: the store's zone decides
    assert recipient_time_zone("+18005550123", "America/Vancouver") == VANCOUVER
    assert recipient_time_zone("not a phone", "America/Vancouver") == VANCOUVER
    assert recipient_time_zone(None, None) == TORONTO
    assert recipient_time_zone(None, "Not/AZone") == TORONTO
    assert quiet_hours_deferral(at("2026-06-10", "21:30"), "+18005550123", "America/Vancouver") is None
    with pytest.raises(ValueError, match="timezone-aware"):
        quiet_hours_deferral(datetime(2026, 6, 10, 21, 30), MONTREAL_PHONE)


# --------------------------------------------------------------------------- settings (contract §1)
def test_twilio_settings_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_DEFAULT",
        '{"conn_type": "generic", "login": "AC123", "password": "s3cret", "host": "http://127.0.0.1:8026",'
        ' "extra": {"from_number": "+15145550000"}}',
    )
    settings = twilio_settings()
    assert settings == TwilioSettings("AC123", "s3cret", "+15145550000", "http://127.0.0.1:8026")
    assert "s3cret" not in repr(settings)
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", "twilio://AC9:tok@api.example:8443?from_number=%2B15145550000")
    assert twilio_settings().host == "https://api.example:8443"
    assert twilio_settings().from_number == "+15145550000"
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", '{"login": "AC9", "password": "tok"}')
    with pytest.raises(RuntimeError, match="from_number"):
        twilio_settings()
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_DEFAULT", '{"login": "AC9", "password": "t", "extra": {"from_number": "+1"}}'
    )
    assert twilio_settings().host == "https://api.twilio.com"


# --------------------------------------------------------------------------- sending through the real client
@pytest.fixture
def standins() -> ChannelStandins:
    with ChannelStandins(twilio_auth_token="s3cret", slow_ms=1500) as s:
        yield s


def channel(standins: ChannelStandins, timeout_s: float = 5) -> SmsChannel:
    return SmsChannel(TwilioSettings("AC123", "s3cret", "+15145550000", standins.url), timeout_s=timeout_s)


def test_f4_sms_accepted_with_the_provider_sid(standins: ChannelStandins, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"login": "AC123", "password": "s3cret", "host": standins.url, "extra": {"from_number": "+15145550000"}}
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", json.dumps(conn))
    text = sms_text(locale="fr", first_item_title="Kamouraska", cart_link=LINK, coupon_code=CODE, coupon_percent=5)
    result = SmsChannel(twilio_settings()).send(build_sms(to=MONTREAL_PHONE, text=text.text))
    assert result.outcome == "accepted"
    assert result.status_code == 201
    assert result.provider_message_id
    assert result.provider_message_id.startswith("SM")
    [got] = standins.sms
    assert (got.sid, got.to, got.from_, got.body) == (
        result.provider_message_id,
        MONTREAL_PHONE,
        "+15145550000",
        text.text,
    )
    assert got.num_segments == 1


@pytest.mark.parametrize(
    ("fault", "outcome", "status", "retry_after"),
    [(429, "retry", 429, 1.0), (500, "retry", 500, None), (503, "retry", 503, None), (400, "rejected", 400, None)],
)
def test_s2_sms_provider_errors(
    standins: ChannelStandins, fault: int, outcome: str, status: int, retry_after: float | None
) -> None:
    standins.add_faults("twilio", fault)
    result = channel(standins).send(build_sms(to=MONTREAL_PHONE, text="Bonjour"))
    assert (result.outcome, result.status_code, result.retry_after_s) == (outcome, status, retry_after)
    assert standins.sms == []  # nothing was accepted
    assert channel(standins).send(build_sms(to=MONTREAL_PHONE, text="Bonjour")).outcome == "accepted"


def test_s2_sms_timeout_after_the_request_left_is_unknown(standins: ChannelStandins) -> None:
    standins.add_faults("twilio", "slow")
    result = channel(standins, timeout_s=0.5).send(build_sms(to=MONTREAL_PHONE, text="Bonjour"))
    assert result.outcome == "unknown"
    assert "ReadTimeout" in (result.error or "")
    assert len(standins.sms) == 1  # Twilio had it: never resend blindly


def test_s2_sms_dropped_connection_is_unknown(standins: ChannelStandins) -> None:
    standins.add_faults("twilio", "drop")
    result = channel(standins).send(build_sms(to=MONTREAL_PHONE, text="Bonjour"))
    assert result.outcome == "unknown"
    assert len(standins.sms) == 1


def test_s2_sms_connection_refused_is_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    result = SmsChannel(TwilioSettings("AC1", "t", "+15145550000", f"http://127.0.0.1:{port}"), timeout_s=2).send(
        build_sms(to=MONTREAL_PHONE, text="Bonjour")
    )
    assert result.outcome == "retry"
    assert result.error
    assert result.error.startswith("not sent")


def test_e4_sms_to_a_number_that_replied_stop_is_gone(standins: ChannelStandins) -> None:
    standins.stopped_numbers.add(VANCOUVER_PHONE)
    result = channel(standins).send(build_sms(to=VANCOUVER_PHONE, text="Bonjour"))
    assert result.outcome == "gone"
    assert "21610" in (result.error or "")


def test_e2_invalid_number_is_rejected_before_any_request(standins: ChannelStandins) -> None:
    result = channel(standins).send(build_sms(to="514-555-0123", text="Bonjour"))
    assert result.outcome == "rejected"
    assert "E.164" in (result.error or "")
    assert standins.answers("twilio") == []


def test_sms_bad_credentials_are_rejected(standins: ChannelStandins) -> None:
    bad = SmsChannel(TwilioSettings("AC123", "wrong", "+15145550000", standins.url), timeout_s=5)
    result = bad.send(build_sms(to=MONTREAL_PHONE, text="Bonjour"))
    assert (result.outcome, result.status_code) == ("rejected", 401)


def test_o5_no_phone_number_in_the_logs(standins: ChannelStandins, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # everything: ours, twilio's, urllib3's, the stand-in's
    logging.getLogger("cart_recovery.channels.sms.twilio_http").setLevel(logging.DEBUG)
    try:
        standins.stopped_numbers.add(VANCOUVER_PHONE)
        standins.add_faults("twilio", 429)
        ch = channel(standins)
        outcomes = [
            ch.send(build_sms(to=MONTREAL_PHONE, text="Bonjour")).outcome,  # 429
            ch.send(build_sms(to=MONTREAL_PHONE, text="Bonjour")).outcome,
            ch.send(build_sms(to=VANCOUVER_PHONE, text="Bonjour")).outcome,  # STOP
            ch.send(build_sms(to="+1514555012", text="Bonjour")).outcome,  # invalid
        ]
        # Twilio's 21211 message quotes the number: it must come back scrubbed
        standins.add_faults("twilio", 400)
        quoted = ch.send(build_sms(to=MONTREAL_PHONE, text="Bonjour"))
    finally:
        logging.getLogger("cart_recovery.channels.sms.twilio_http").setLevel(logging.WARNING)
    assert outcomes == ["retry", "accepted", "gone", "rejected"]
    assert quoted.outcome == "rejected"
    assert "is not a valid phone number" in (quoted.error or "")
    assert "5145550123" not in (quoted.error or "")
    assert any("twilio" in r.name for r in caplog.records)  # twilio's own request log was captured
    assert any("replied STOP" in r.getMessage() for r in caplog.records)
    for digits in ("5145550123", "6045550123", "514555012"):
        assert digits not in caplog.text
