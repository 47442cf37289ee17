"""Ingest (contract §2, rule O4) on a real PostgreSQL: every kind loads, files load once, bad rows are
quarantined with their reason while the good rows of the same file load."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import psycopg
import pytest

from cart_recovery.ingest import load_landing
from cart_recovery.ingest.kinds import kind_of

CART = {
    "event_id": "e1",
    "event_type": "cart_updated",
    "occurred_at": "2026-11-19T20:00:00-05:00",
    "cart_id": "c1",
    "customer_id": "alice",
    "device": "mobile",
    "store_id": "S1",
    "currency": "CAD",
    "cart_url": "https://shop.example/cart/c1",
    "items": [{"sku": "B1", "quantity": 1, "unit_price": "24.95", "added_at": "2026-11-19T19:58:00-05:00"}],
}
ORDER = {
    "event_id": "o1",
    "order_id": "ord-1",
    "customer_id": "alice",
    "cart_id": "c1",
    "placed_at": "2026-11-19T21:00:00-05:00",
    "status": "completed",
    "store_id": "S1",
    "currency": "CAD",
    "total": "24.95",
    "items": [{"sku": "B1", "quantity": 1, "unit_price": "24.95"}],
}

CSV_FILES = {
    "customers_0001.csv": "customer_id,email,phone,first_name,last_name,locale,customer_type,institution_kind,"
    "preferred_store_id,updated_at\n"
    "alice,alice@mail.example,+15145550101,Élodie,Bélanger,fr,consumer,,S1,2026-01-01T00:00:00Z\n"
    "biblio,biblio@ville.example,,,,fr,institution,library,S1,2026-01-01T00:00:00Z\n",
    "consents_0001.csv": "customer_id,channel,status,basis,recorded_at,source\n"
    "alice,email,granted,express,2026-01-01T00:00:00Z,signup\n",
    "products_0001.csv": "sku,title,author,publisher,image_url,product_url,price,currency,updated_at\n"
    "B1,Kukum,Michel Jean,Libre Expression,https://img.example/B1.jpg,https://shop.example/p/B1,24.95,CAD,"
    "2026-01-01T00:00:00Z\n",
    "stores_0001.csv": "store_id,name,email,phone,address,city,region,url\n"
    "S1,Librairie Pantoute,s1@libraires.example,+14186942262,1100 rue Saint-Jean,Québec,QC,https://s1.example\n",
    "test_group_0001.csv": "customer_id\nalice\n",
    "coupon_codes_0001.csv": "pool,code\nvalue_10,V10-AAAA\nvalue_10,V10-BBBB\n",
    "push_subscriptions_0001.csv": "customer_id,kind,endpoint,p256dh,auth,status,recorded_at\n"
    "alice,web,https://push.example/abc,key,auth,active,2026-01-01T00:00:00Z\n",
}


def write_world(landing: Path) -> None:
    for name, text in CSV_FILES.items():
        (landing / name).write_text(text, encoding="utf-8")
    (landing / "cart_events_0001.jsonl").write_text(json.dumps(CART) + "\n", encoding="utf-8")
    (landing / "orders_0001.jsonl").write_text(json.dumps(ORDER) + "\n", encoding="utf-8")
    event = {
        "sg_event_id": "sg1",
        "event": "delivered",
        "email": "alice@mail.example",
        "timestamp": 1763700000,
        "sg_message_id": "m1",
        "message_id": "00000000-0000-0000-0000-000000000001",
        "campaign": "x",
    }
    (landing / "provider_events_0001.jsonl").write_text(json.dumps(event) + "\n", encoding="utf-8")


def count(db: psycopg.Connection, table: str) -> int:
    return db.execute(f"select count(*) from {table}").fetchone()[0]


def test_every_kind_loads(db, landing):
    write_world(landing)
    report = load_landing(landing, db)
    assert report.rows_quarantined == 0, report.as_dict()
    expected = {
        "customers": 2,
        "consents": 1,
        "products": 1,
        "stores": 1,
        "test_group": 1,
        "coupon_codes": 2,
        "push_subscriptions": 1,
        "cart_events": 1,
        "orders": 1,
        "provider_events": 1,
    }
    assert {k: count(db, f"raw.{k}") for k in expected} == expected
    items = db.execute("select items -> 0 ->> 'sku', jsonb_typeof(items) from raw.cart_events").fetchone()
    assert items == ("B1", "array"), "items stay jsonb for dbt to unnest"
    occurred = db.execute("select occurred_at at time zone 'UTC' from raw.cart_events").fetchone()[0]
    assert occurred.isoformat() == "2026-11-20T01:00:00", "offsets are honoured"


def test_french_text_round_trips(db, landing):
    write_world(landing)
    load_landing(landing, db)
    assert db.execute("select first_name, last_name from raw.customers where customer_id = 'alice'").fetchone() == (
        "Élodie",
        "Bélanger",
    )
    assert db.execute("select city from raw.stores").fetchone() == ("Québec",)


def test_reloading_loads_nothing_and_a_renamed_copy_neither(db, landing):
    write_world(landing)
    first = load_landing(landing, db)
    before = count(db, "raw.cart_events")
    (landing / "cart_events_0002_copy.jsonl").write_bytes((landing / "cart_events_0001.jsonl").read_bytes())
    second = load_landing(landing, db)
    assert first.rows_loaded > 0
    assert second.rows_loaded == 0
    assert {f.status for f in second.files} == {"already_loaded"}
    assert count(db, "raw.cart_events") == before


def test_files_load_in_name_order(db, landing):
    write_world(landing)
    load_landing(landing, db)
    names = [r[0] for r in db.execute("select file_name from raw.loaded_files order by loaded_at, file_name")]
    assert names == sorted(names)


def test_duplicate_event_ids_are_kept_raw_for_staging_to_deduplicate(db, landing):
    (landing / "cart_events_0001.jsonl").write_text(json.dumps(CART) + "\n" + json.dumps(CART) + "\n")
    report = load_landing(landing, db)
    assert report.rows_loaded == 2
    assert db.execute("select count(distinct event_id) from raw.cart_events").fetchone()[0] == 1


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("this is not json", "invalid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({k: v for k, v in CART.items() if k != "cart_id"}), "missing key cart_id"),
        (json.dumps({**CART, "occurred_at": "not a date"}), "bad timestamp in occurred_at"),
        (json.dumps({**CART, "occurred_at": "2026-11-19T20:00:00"}), "timestamp without offset in occurred_at"),
        (json.dumps({**CART, "event_type": "cart_exploded"}), "unknown event_type value"),
        (json.dumps({**CART, "device": "fridge"}), "unknown device value"),
        (
            json.dumps({**CART, "items": [{"sku": "B1", "quantity": 1, "unit_price": "-3"}]}),
            "negative amount in items[0].unit_price",
        ),
        (json.dumps({**CART, "items": [{"sku": "B1", "quantity": 0, "unit_price": "3"}]}), "bad quantity in items[0]"),
        (json.dumps({**CART, "items": "B1"}), "items is not a list"),
    ],
)
def test_bad_cart_event_is_quarantined_and_the_rest_loads(db, landing, line, reason):
    good = json.dumps(CART)
    (landing / "cart_events_0001.jsonl").write_text(f"{good}\n{line}\n{json.dumps({**CART, 'event_id': 'e2'})}\n")
    report = load_landing(landing, db)
    assert report.rows_loaded == 2
    rows = db.execute("select file_name, line_number, reason, content from raw.quarantine").fetchall()
    assert rows == [("cart_events_0001.jsonl", 2, reason, line)]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "B9,Titre négatif,Auteur,Éditeur,https://i/B9.jpg,https://p/B9,-5.00,CAD,2026-01-01T00:00:00Z",
            "negative amount in price",
        ),
        ("B9,Titre,Auteur,Éditeur,https://i/B9.jpg,https://p/B9,abc,CAD,2026-01-01T00:00:00Z", "bad amount in price"),
        ("B9,Titre,Auteur,Éditeur,https://i/B9.jpg,https://p/B9,5.00,CAD,hier", "bad timestamp in updated_at"),
        ("B9,Titre,Auteur", "expected 9 fields, got 3"),
    ],
)
def test_bad_product_row_is_quarantined(db, landing, line, reason):
    (landing / "products_0001.csv").write_text(CSV_FILES["products_0001.csv"] + line + "\n", encoding="utf-8")
    report = load_landing(landing, db)
    assert report.rows_loaded == 1
    assert db.execute("select line_number, reason from raw.quarantine").fetchall() == [(3, reason)]
    # the row as the file had it (CSV written back only for quarantined rows)
    assert db.execute("select content from raw.quarantine").fetchone()[0] == line


def test_bad_enum_and_negative_total_in_orders(db, landing):
    lines = [
        json.dumps(ORDER),
        json.dumps({**ORDER, "event_id": "o2", "status": "lost"}),
        json.dumps({**ORDER, "event_id": "o3", "total": "-1.00"}),
    ]
    (landing / "orders_0001.jsonl").write_text("\n".join(lines) + "\n")
    load_landing(landing, db)
    assert count(db, "raw.orders") == 1
    assert sorted(r[0] for r in db.execute("select reason from raw.quarantine")) == [
        "negative amount in total",
        "unknown status value",
    ]


def test_csv_missing_column_quarantines_each_row(db, landing):
    (landing / "consents_0001.csv").write_text("customer_id,channel,recorded_at\nalice,email,2026-01-01T00:00:00Z\n")
    load_landing(landing, db)
    assert count(db, "raw.consents") == 0
    assert db.execute("select reason from raw.quarantine").fetchall() == [("missing column status",)]


def test_non_utf8_file_is_quarantined_and_other_files_load(db, landing):
    (landing / "customers_0001.csv").write_bytes(b"customer_id,email\n\xff\xfe bad\n")
    (landing / "stores_0001.csv").write_text(CSV_FILES["stores_0001.csv"], encoding="utf-8")
    report = load_landing(landing, db)
    assert count(db, "raw.stores") == 1
    assert db.execute("select reason from raw.quarantine").fetchall() == [("file is not UTF-8 text",)]
    assert {f.status for f in report.files} == {"unreadable", "loaded"}


def test_unknown_prefix_is_reported_and_left_in_place(db, landing):
    (landing / "inventory_0001.csv").write_text("sku,qty\nB1,3\n")
    report = load_landing(landing, db)
    assert [(f.file_name, f.status) for f in report.files] == [("inventory_0001.csv", "unknown_kind")]
    assert (landing / "inventory_0001.csv").exists()


def test_logs_hold_counts_and_no_personal_data(db, landing, caplog):
    write_world(landing)
    (landing / "customers_0002.csv").write_text(
        CSV_FILES["customers_0001.csv"].splitlines()[0] + "\nzed,zed@mail.example,+15145550199,Z,Z,xx,consumer,,S1,"
        "2026-01-01T00:00:00Z\n"
    )
    with caplog.at_level(logging.INFO, logger="cart_recovery"):
        load_landing(landing, db)
    text = caplog.text
    assert "customers_0001.csv (customers): 2 rows loaded, 0 quarantined" in text
    assert "unknown locale value" in text
    assert "@mail.example" not in text, "O5: no email in logs"
    assert "+1514" not in text, "O5: no phone number in logs"


def test_kind_is_told_by_prefix():
    assert kind_of("test_group_2026.csv").name == "test_group"
    assert kind_of("cart_events.jsonl").name == "cart_events"
    assert kind_of("customers-export-1.csv").name == "customers"
    assert kind_of("customersX.csv") is None
    assert kind_of("readme.txt") is None
