"""The demo shop generator (cart_recovery.demo): contract §2 files, deterministic, scaling, and the
population the rules need to show something (institutions E1, no consent E3, anonymous carts D4, …)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cart_recovery.demo import generate, generate_cart_events_file
from cart_recovery.ingest.kinds import KINDS, BadRow

END = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
SCALE = 0.05  # 250 customers, 200 carts: enough of every case, under a second

# contract §2, written out here rather than imported, so the test checks the generator against the contract
CSV_HEADERS = {
    "customers": "customer_id,email,phone,first_name,last_name,locale,customer_type,institution_kind,"
    "preferred_store_id,updated_at",
    "consents": "customer_id,channel,status,basis,recorded_at,source",
    "products": "sku,title,author,publisher,image_url,product_url,price,currency,updated_at",
    "stores": "store_id,name,email,phone,address,city,region,url",
    "test_group": "customer_id",
    "coupon_codes": "pool,code",
    "push_subscriptions": "customer_id,kind,endpoint,p256dh,auth,status,recorded_at",
}
JSONL_KEYS = {
    "cart_events": {
        "event_id",
        "event_type",
        "occurred_at",
        "cart_id",
        "customer_id",
        "device",
        "store_id",
        "currency",
        "cart_url",
        "items",
    },
    "orders": {
        "event_id",
        "order_id",
        "customer_id",
        "cart_id",
        "placed_at",
        "status",
        "store_id",
        "currency",
        "total",
        "items",
    },
}
TIMESTAMPS = {
    "customers": ["updated_at"],
    "consents": ["recorded_at"],
    "products": ["updated_at"],
    "push_subscriptions": ["recorded_at"],
    "cart_events": ["occurred_at"],
    "orders": ["placed_at"],
}


def read(landing: Path, kind: str) -> list[dict[str, Any]]:
    """Every row of a kind, over all its files, in file-name order."""
    rows: list[dict[str, Any]] = []
    for path in sorted(landing.glob(f"{kind}_*")):
        with path.open(encoding="utf-8", newline="") as f:
            if path.suffix == ".csv":
                rows.extend(csv.DictReader(f))
            else:
                rows.extend(json.loads(line) for line in f)
    return rows


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    landing = tmp_path_factory.mktemp("demo") / "landing"
    return landing, generate(landing, scale=SCALE, seed=42, end=END, days=3)


@pytest.fixture(scope="module")
def rows(shop: tuple[Path, dict[str, int]]) -> dict[str, list[dict[str, Any]]]:
    landing, _ = shop
    return {kind: read(landing, kind) for kind in [*CSV_HEADERS, *JSONL_KEYS]}


def test_writes_every_kind_named_by_its_tag_with_the_contract_headers(shop):
    landing, counts = shop
    names = sorted(p.name for p in landing.iterdir())
    assert names == sorted([f"{k}_20261120.csv" for k in CSV_HEADERS] + [f"{k}_20261120.jsonl" for k in JSONL_KEYS])
    for kind, header in CSV_HEADERS.items():
        first_line = (landing / f"{kind}_20261120.csv").read_text(encoding="utf-8").splitlines()[0]
        assert first_line == header
    for kind, keys in JSONL_KEYS.items():
        lines = (landing / f"{kind}_20261120.jsonl").read_text(encoding="utf-8").splitlines()
        assert lines
        for line in lines:
            assert set(json.loads(line)) == keys
    assert set(counts) == {*CSV_HEADERS, *JSONL_KEYS}


def test_counts_are_the_rows_written(shop, rows):
    _, counts = shop
    for kind, kind_rows in rows.items():
        assert counts[kind] == len(kind_rows), kind


def test_every_row_passes_the_ingest_checks(rows):
    for kind, kind_rows in rows.items():
        for row in kind_rows:
            KINDS[kind].check(row)  # raises BadRow on anything quarantine would catch


def test_items_are_the_whole_cart_with_their_keys(rows):
    events = rows["cart_events"]
    by_cart: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_cart.setdefault(e["cart_id"], []).append(e)
        keys = set() if e["event_type"] == "cart_deleted" else {"sku", "quantity", "unit_price", "added_at"}
        assert all(set(item) == keys for item in e["items"])
    assert max(len(v) for v in by_cart.values()) >= 3, "several cart_updated events per cart"
    grown = [v for v in by_cart.values() if len(v) > 1 and v[0]["event_type"] == v[1]["event_type"] == "cart_updated"]
    assert any(len(v[1]["items"]) > len(v[0]["items"]) for v in grown), "each event carries the whole cart"
    for order in rows["orders"]:
        assert all(set(item) == {"sku", "quantity", "unit_price"} for item in order["items"])


def test_all_timestamps_have_an_offset_and_none_is_after_end(rows):
    for kind, fields in TIMESTAMPS.items():
        for row in rows[kind]:
            stamps = [row[f] for f in fields] + [i["added_at"] for i in row.get("items", []) if "added_at" in i]
            for stamp in stamps:
                t = datetime.fromisoformat(stamp)
                assert t.tzinfo is not None, (kind, stamp)
                assert t <= END, (kind, stamp)
    first = min(datetime.fromisoformat(e["occurred_at"]) for e in rows["cart_events"])
    assert first >= END - timedelta(days=3)


def test_references_between_kinds_hold(rows):
    customers = {c["customer_id"] for c in rows["customers"]}
    stores = {s["store_id"] for s in rows["stores"]}
    skus = {p["sku"] for p in rows["products"]}
    for kind in ("consents", "test_group", "push_subscriptions"):
        assert {r["customer_id"] for r in rows[kind]} <= customers, kind
    assert {c["preferred_store_id"] for c in rows["customers"]} - {""} <= stores
    for kind in ("cart_events", "orders"):
        assert {r["customer_id"] for r in rows[kind]} - {None} <= customers
        assert {r["store_id"] for r in rows[kind]} <= stores
        assert {i["sku"] for r in rows[kind] for i in r["items"]} <= skus


def test_the_population_has_every_case_the_rules_need(rows):
    customers = rows["customers"]
    n = len({c["customer_id"] for c in customers})
    institutions = [c for c in customers if c["customer_type"] == "institution"]
    assert 0 < len(institutions) < 0.12 * n  # E1, ≈5 %
    assert {c["institution_kind"] for c in institutions} <= {"library", "school", "cegep", "university", "other"}
    assert all(c["institution_kind"] == "" for c in customers if c["customer_type"] == "consumer")
    assert any(c["email"] == "" for c in customers)  # D4: no email
    assert any(c["phone"].startswith("+1") and len(c["phone"]) == 12 for c in customers)  # E.164, for SMS
    assert 0.6 < sum(c["locale"] == "fr" for c in customers) / len(customers) < 0.9  # mostly French

    consents = rows["consents"]
    with_consent = {c["customer_id"] for c in consents}
    assert 0.03 * n < n - len(with_consent) < 0.2 * n  # E3: ≈10 % were never asked
    assert any(c["status"] == "withdrawn" for c in consents)
    old_implied = [
        c
        for c in consents
        if c["basis"] == "implied" and datetime.fromisoformat(c["recorded_at"]) < END - timedelta(days=730)
    ]
    assert old_implied, "some implied consents have expired (CASL, 730 days)"
    assert {c["channel"] for c in consents} == {"email", "sms", "push"}

    assert {r["pool"] for r in rows["coupon_codes"]} == {"value_10", "value_15", "value_20", "sms_5"}
    codes = [r["code"] for r in rows["coupon_codes"]]
    assert len(codes) == len(set(codes)), "C2: codes are unique"
    assert rows["test_group"]
    assert {r["kind"] for r in rows["push_subscriptions"]} <= {"web", "ios", "android"}

    events = rows["cart_events"]
    assert any(e["customer_id"] is None for e in events)  # D4: anonymous carts
    assert any(e["event_type"] == "cart_deleted" for e in events)
    assert {e["device"] for e in events} >= {"mobile", "desktop", "tablet"}
    assert any(float(p["price"]) > 100 for p in rows["products"])  # the 20 % tier (C1)
    assert all(9.95 <= float(p["price"]) < 200 for p in rows["products"])

    orders = rows["orders"]
    statuses = {o["status"] for o in orders}
    assert "completed" in statuses
    assert statuses & {"cancelled", "refunded"}
    assert any(o["cart_id"] is None for o in orders)
    assert any(o["cart_id"] for o in orders)


def test_text_is_french_first_in_utf8(shop):
    landing, _ = shop
    stores = (landing / "stores_20261120.csv").read_bytes().decode("utf-8")
    products = (landing / "products_20261120.csv").read_bytes().decode("utf-8")
    assert "Québec" in stores
    assert "Montréal" in stores
    assert "Boréal" in products or "Québec Amérique" in products or "La Peuplade" in products
    assert any(ch in products for ch in "éèàêç")


def test_the_same_seed_writes_the_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert generate(a, scale=0.01, seed=7, end=END) == generate(b, scale=0.01, seed=7, end=END)
    for path in a.iterdir():
        assert path.read_bytes() == (b / path.name).read_bytes(), path.name
    generate(c, scale=0.01, seed=8, end=END)
    assert (a / "customers_20261120.csv").read_bytes() != (c / "customers_20261120.csv").read_bytes()


def test_counts_scale_linearly(tmp_path, shop):
    _, counts = shop
    double = generate(tmp_path / "x2", scale=2 * SCALE, seed=42, end=END)
    for kind in ("products", "customers", "coupon_codes", "cart_events", "orders", "consents"):
        assert 1.6 < double[kind] / counts[kind] < 2.4, kind
    assert counts["stores"] == double["stores"] == 6  # six member stores up to scale 1


def test_abandon_share_leaves_more_carts_unbought_and_keeps_the_default_bytes(tmp_path, shop):
    landing, counts = shop
    same = generate(tmp_path / "default", scale=SCALE, seed=42, end=END, days=3, abandon_share=None)
    assert same == counts  # None is the default shop, byte for byte
    assert (tmp_path / "default" / "orders_20261120.jsonl").read_bytes() == (
        landing / "orders_20261120.jsonl"
    ).read_bytes()
    left = generate(tmp_path / "left", scale=SCALE, seed=42, end=END, days=3, abandon_share=0.9)
    assert left["cart_events"] > 0
    # most orders convert a cart: with 90 % of carts left instead of ~60 %, far fewer orders
    assert left["orders"] < 0.6 * counts["orders"]
    with pytest.raises(ValueError, match="abandon_share"):
        generate(tmp_path / "bad", scale=SCALE, seed=42, end=END, abandon_share=1.5)


def test_two_drops_a_day_split_events_by_time_and_keep_the_same_rows(tmp_path, rows):
    landing = tmp_path / "landing"
    counts = generate(landing, scale=SCALE, seed=42, end=END, days=3, drops_per_day=2)
    files = sorted(landing.glob("cart_events_*.jsonl"))
    assert len(files) >= 6  # 3 days, twice a day
    seen: set[str] = set()
    for path in files:  # a drop holds the events up to its local export time; a re-sent one may come later
        bound = datetime.strptime(path.stem.rsplit("_", 1)[1], "%Y%m%dT%H%M")
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            local = datetime.fromisoformat(event["occurred_at"]).replace(tzinfo=None)
            assert local <= bound or event["event_id"] in seen, (path.name, event["event_id"])
            seen.add(event["event_id"])
    split = read(landing, "cart_events")
    assert sorted(e["event_id"] for e in split) == sorted(e["event_id"] for e in rows["cart_events"])
    assert counts["orders"] == len(rows["orders"])
    assert len(list(landing.glob("orders_*.jsonl"))) > 1


def test_bad_rows_are_appended_to_every_kind_and_each_breaks_the_contract(tmp_path):
    landing = tmp_path / "landing"
    counts = generate(landing, scale=0.01, seed=42, end=END, bad_rows=True)
    broken_total = 0
    for kind in [*CSV_HEADERS, *JSONL_KEYS]:
        good = broken = 0
        for path in sorted(landing.glob(f"{kind}_*")):
            with path.open(encoding="utf-8", newline="") as f:
                lines: list[Any] = list(csv.DictReader(f)) if path.suffix == ".csv" else f.read().splitlines()
            for line in lines:
                try:
                    row = json.loads(line) if isinstance(line, str) else line
                    if not isinstance(row, dict) or None in row or set(KINDS[kind].required_fields) - set(row):
                        raise BadRow("missing keys")
                    KINDS[kind].check(row)
                except ValueError:  # BadRow, bad JSON; `None in row`: a CSV row longer than its header
                    broken += 1
                else:
                    good += 1
        assert good == counts[kind], kind
        assert broken >= 1, f"no bad row in {kind}"
        broken_total += broken
    assert broken_total == counts["bad_rows"]


def test_benchmark_file_is_valid_cart_events(tmp_path):
    path = tmp_path / "cart_events_bench.jsonl"
    assert generate_cart_events_file(path, 2_000, seed=7) == 2_000
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len({e["event_id"] for e in events}) == len(events) == 2_000
    for e in events:
        assert set(e) == JSONL_KEYS["cart_events"]
        KINDS["cart_events"].check(e)
    assert generate_cart_events_file(tmp_path / "again.jsonl", 2_000, seed=7) == 2_000
    assert (tmp_path / "again.jsonl").read_bytes() == path.read_bytes()


def test_command_line(tmp_path):
    landing = tmp_path / "landing"
    res = subprocess.run(
        [sys.executable, "-m", "cart_recovery.demo", "--landing", str(landing), "--scale", "0.01", "--seed", "42",
         "--end", "2026-11-20T14:00:00Z", "--days", "3"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "plugins"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert "cart_events:" in res.stdout
    assert (landing / "cart_events_20261120.jsonl").exists()


def test_generated_shop_loads_without_quarantine_except_the_bad_rows(db, tmp_path):
    from cart_recovery.ingest import load_landing

    landing = tmp_path / "landing"
    counts = generate(landing, scale=0.02, seed=42, end=END, bad_rows=True)
    report = load_landing(landing, db)
    assert all(f.status == "loaded" for f in report.files)
    assert report.rows_quarantined == counts["bad_rows"]  # O4: every bad row, and only those
    assert report.rows_loaded == sum(v for k, v in counts.items() if k != "bad_rows")
