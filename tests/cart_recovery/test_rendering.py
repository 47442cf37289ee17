"""The email templates (M1–M7): every template renders for every locale, with one and many products, with and
without coupon and first name; data is escaped; CSS is inlined; the preview command writes a file."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cart_recovery import CAMPAIGNS_DIR, TEMPLATES_DIR
from cart_recovery.campaigns import load_campaigns
from cart_recovery.devtools import sender_fixtures as fx
from cart_recovery.rendering import (
    EmailRenderer,
    SenderIdentity,
    build_email_context,
    format_money,
    one_line,
    tracked_url,
)
from cart_recovery.rendering.inline import inline_template_source

T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
SENDER = SenderIdentity("Les libraires", "rappels@libraires.example", "1 rue X, Montréal QC", "https://shop.example")
UNSUB = "https://shop.example/cart-recovery/unsubscribe?token=abc.def"
TEMPLATES = sorted(p.name for p in (TEMPLATES_DIR / "email").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def renderer() -> EmailRenderer:
    return EmailRenderer()


@pytest.fixture(scope="module")
def campaign() -> Any:
    return next(c for c in load_campaigns(CAMPAIGNS_DIR) if c.name == "bookstore_daily")


def row(n_items: int = 1, locale: str = "fr", first_name: str | None = "Alice", coupon: bool = False, **kw: Any):
    return {
        **fx.decision_row(
            "alice",
            T,
            n_items=n_items,
            locale=locale,
            first_name=first_name,
            coupon_code="PROMO15" if coupon else None,
            coupon_percent=15 if coupon else None,
        ),
        **kw,
    }


def render(renderer: EmailRenderer, campaign: Any, r: dict[str, Any], template: str = "abandoned_cart"):
    ctx = build_email_context(r, campaign, message_id="mid-123", unsubscribe_url=UNSUB, sender=SENDER)
    return renderer.render(template, ctx)


@pytest.mark.parametrize(
    ("template", "locale", "n_items", "coupon", "first_name"),
    list(itertools.product(TEMPLATES, ["fr", "en"], [1, 6], [False, True], ["Alice", None])),
)
def test_m7_every_template_renders_for_every_locale(renderer, campaign, template, locale, n_items, coupon, first_name):
    m = render(renderer, campaign, row(n_items, locale, first_name, coupon), template)
    assert m.subject
    assert "\n" not in m.subject
    assert m.text.strip()
    assert m.html.startswith("<!DOCTYPE html>")
    for part in (m.html, m.text):
        assert SENDER.name in part
        assert SENDER.address in part
        assert "Librairie du Quartier" in part
        assert "+15145550100" in part
        assert "s1@libraires.example" in part
        assert ("PROMO15" in part) is coupon  # M5
    assert f'href="{UNSUB}"' in m.html.replace("&amp;", "&")
    assert UNSUB in m.text
    assert f'<html lang="{locale}"' in m.html


def test_m1_greeting_language_and_one_or_several_products(renderer, campaign):
    one_fr = render(renderer, campaign, row(1, "fr", "Alice"))
    many_fr = render(renderer, campaign, row(3, "fr", "Alice"))
    one_en = render(renderer, campaign, row(1, "en", None))
    assert "Bonjour Alice," in one_fr.html
    assert "Hello," in one_en.html
    assert "Hello ," not in one_en.html
    assert "un livre dans votre panier" in one_fr.text
    assert "3 livres dans votre panier" in many_fr.text
    assert "You left a book" in one_en.text
    assert one_fr.subject == "Alice, votre livre vous attend"
    assert many_fr.subject == "Alice, vos 3 livres vous attendent"
    assert one_en.subject == "Your book is waiting for you"


def test_m1_unknown_locale_falls_back_to_the_campaign_default(renderer, campaign):
    assert "Bonjour" in render(renderer, campaign, row(1, locale=None)).text  # type: ignore[arg-type]
    assert "Hello" in render(renderer, campaign, row(1, locale="en-CA")).text


def test_m2_at_most_four_products_in_cart_order_and_n_more(renderer, campaign):
    m = render(renderer, campaign, row(6, "en"))
    assert re.findall(r"Titre numéro (\d)", m.text) == ["1", "2", "3", "4"]
    assert "… and 2 more books in your cart." in m.text
    assert "and 2 more books" in m.html
    for detail in ("Auteur 1", "Boréal", "https://img.example/B1.jpg", "$20.00"):
        assert detail in m.html
    assert "and 1 more book in your cart" in render(renderer, campaign, row(5, "en")).text
    assert "more book" not in render(renderer, campaign, row(4, "en")).text


def test_m2_prices_are_formatted_per_locale() -> None:
    assert format_money("20", "CAD", "fr") == "20,00 $"
    assert format_money("20", "CAD", "en") == "$20.00"
    assert format_money("1234.5", "CAD", "fr") == "1 234,50 $"
    assert format_money("1234.5", "CAD", "en") == "$1,234.50"
    assert format_money("9.99", "EUR", "fr") == "9,99 €"


def test_m3_links_carry_utm_and_the_message_id(renderer, campaign):
    url = tracked_url(
        "https://shop.example/cart/c1?ref=x", campaign="bookstore_daily", step=1, channel="email", message_id="mid-123"
    )
    assert url == (
        "https://shop.example/cart/c1?ref=x&utm_source=cart_recovery&utm_medium=email"
        "&utm_campaign=bookstore_daily&utm_content=step1&cr_message_id=mid-123"
    )
    m = render(renderer, campaign, row(1))
    assert "https://shop.example/cart/cart-alice?utm_source=cart_recovery&amp;utm_medium=email" in m.html
    assert "cr_message_id=mid-123" in m.text


def test_m6_customer_and_product_data_are_escaped(renderer, campaign):
    evil = "<script>alert(1)</script>"
    items = fx.items(1, title=evil + " & Cie {i}")
    m = render(renderer, campaign, row(1, first_name='Zoé "<b>"', items=items, store_name="A & B <i>"))
    assert "<script>" not in m.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Cie 1" in m.html
    assert "Zoé &#34;&lt;b&gt;&#34;" in m.html
    assert "A &amp; B &lt;i&gt;" in m.html
    assert evil in m.text  # plain text is not HTML: kept as written


def test_css_is_inlined_into_the_template_once(renderer):
    tpl = renderer.template("abandoned_cart", "fr", "body.html.j2")
    assert tpl is renderer.template("abandoned_cart", "fr", "body.html.j2")  # compiled (and inlined) once
    source = (TEMPLATES_DIR / "email" / "abandoned_cart" / "body.html.j2").read_text()
    inlined = inline_template_source(source, ".button { color: red; }")
    assert 'class="button" href="{{ cart_link }}" style="color: red;"' in inlined
    assert "{% for item in items %}" in inlined
    assert "{% endfor %}" in inlined


def test_strings_exist_for_every_locale(renderer):
    assert set(renderer.strings) == {"fr", "en"}
    assert set(renderer.strings["fr"]) == set(renderer.strings["en"])


def test_subject_is_forced_onto_one_line() -> None:
    assert one_line("  Votre panier\n vous attend \r\n ") == "Votre panier vous attend"


def test_m7_preview_renders_a_customer_to_a_file(db: psycopg.Connection, tmp_path: Path, capsys) -> None:
    from cart_recovery.cli import main

    fx.create_stub_marts(db)
    fx.add_recipient(db, "alice", T, n_items=2, first_name="Alice")
    fx.add_exclusion(db, "biblio", "institutional", T)
    out = tmp_path / "alice.html"
    assert main(["preview", "--customer-id", "alice", "--date", "2026-11-20", "--out", str(out)]) == 0
    html = out.read_text()
    assert "Bonjour Alice," in html
    assert "Titre numéro 2" in html
    assert db.execute("select count(*) from ops.messages").fetchone()[0] == 0  # nothing sent, nothing recorded

    assert main(["preview", "--customer-id", "biblio", "--date", "2026-11-20", "--out", str(out)]) == 1
    assert "institutional" in capsys.readouterr().err
    # no run decided 2026-11-21: refused with an explanation (the ledger holds every run that did, O2)
    assert main(["preview", "--customer-id", "alice", "--date", "2026-11-21", "--out", str(out)]) == 2
    assert "the latest decided at 2026-11-20T14:00:00+00:00" in capsys.readouterr().err
