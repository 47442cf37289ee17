"""Generate a demo bookstore cooperative into a landing folder, in the formats of contract §2.

    python -m cart_recovery.demo --landing var/landing --scale 1 --end 2026-11-20T14:00:00Z --days 3

At scale 1: 6 stores, 3,000 books, 5,000 customers (≈5 % institutions, ≈10 % without consent, some with
implied consent older than CASL's 730 days, a few without email), ≈4,000 carts over `days` days with
several updates each (some deleted, ≈8 % anonymous), ≈1,500 orders (most converting a cart, some
cancelled or refunded). Everything scales linearly; a seed makes it reproducible. Faker makes small pools
of names and titles; rows sample from them, so a million rows take seconds, not minutes.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

STORES = [
    ("S01", "Librairie Pantoute", "1100, rue Saint-Jean", "Québec", "+14186942262"),
    ("S02", "Librairie Monet", "2752, rue de Salaberry", "Montréal", "+15143372542"),
    ("S03", "Librairie Les Bouquinistes", "392, rue Racine Est", "Chicoutimi", "+14185432001"),
    ("S04", "Librairie Gallimard", "3700, boulevard Saint-Laurent", "Montréal", "+15144992012"),
    ("S05", "Librairie du Soleil", "53, rue Principale", "Sherbrooke", "+18195622232"),
    ("S06", "Librairie Morency", "657, 3e Avenue", "Val-d'Or", "+18198254743"),
]
PUBLISHERS_FR = [
    "Boréal",
    "Alto",
    "La Peuplade",
    "Québec Amérique",
    "Leméac",
    "Héliotrope",
    "Mémoire d'encrier",
    "Druide",
    "La courte échelle",
    "Les Éditions de Ta Mère",
    "XYZ",
    "Libre Expression",
]
PUBLISHERS_EN = [
    "Penguin",
    "House of Anansi",
    "McClelland & Stewart",
    "Drawn & Quarterly",
    "Coach House Books",
    "ECW Press",
    "Arsenal Pulp Press",
]
TITLE_WORDS_FR = [
    "nuit",
    "fleuve",
    "hiver",
    "mémoire",
    "maison",
    "silence",
    "forêt",
    "lumière",
    "route",
    "neige",
    "jardin",
    "île",
    "enfance",
    "chemin",
    "ville",
    "océan",
    "secret",
    "voyage",
    "lettres",
    "saison",
]
TITLE_WORDS_EN = [
    "river",
    "winter",
    "house",
    "silence",
    "forest",
    "light",
    "road",
    "snow",
    "garden",
    "island",
    "childhood",
    "city",
    "ocean",
    "secret",
    "journey",
    "letters",
    "season",
    "north",
    "fire",
    "stone",
]
INSTITUTIONS = [
    ("library", "Bibliothèque municipale de"),
    ("school", "École secondaire de"),
    ("cegep", "Cégep de"),
    ("university", "Université de"),
    ("other", "Centre culturel de"),
]
CITIES = [
    "Montréal",
    "Québec",
    "Laval",
    "Gatineau",
    "Longueuil",
    "Sherbrooke",
    "Saguenay",
    "Lévis",
    "Trois-Rivières",
    "Rimouski",
    "Rouyn-Noranda",
    "Val-d'Or",
]
DEVICES = ["mobile"] * 5 + ["desktop"] * 4 + ["tablet"]


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _Names:
    """Small pools of Faker names, sampled many times (Faker is slow per call)."""

    def __init__(self, seed: int) -> None:
        from faker import Faker

        fr, en = Faker("fr_CA"), Faker("en_CA")
        fr.seed_instance(seed)
        en.seed_instance(seed + 1)
        self.first = {"fr": [fr.first_name() for _ in range(300)], "en": [en.first_name() for _ in range(300)]}
        self.last = {"fr": [fr.last_name() for _ in range(300)], "en": [en.last_name() for _ in range(300)]}
        self.authors = [f"{fr.first_name()} {fr.last_name()}" for _ in range(400)] + [
            f"{en.first_name()} {en.last_name()}" for _ in range(150)
        ]


def _title(rng: random.Random, lang: str) -> str:
    if lang == "fr":
        a, b = rng.sample(TITLE_WORDS_FR, 2)
        return rng.choice([f"La {a} et le {b}", f"Le {a} du {b}", f"Une {a} sans {b}", f"{a.capitalize()}s"])
    a, b = rng.sample(TITLE_WORDS_EN, 2)
    return rng.choice(
        [
            f"The {a.capitalize()} and the {b.capitalize()}",
            f"A {a.capitalize()} of {b.capitalize()}",
            f"{a.capitalize()}s",
        ]
    )


def _write_csv(path: Path, header: list[str], rows: Iterator[list[Any]] | list[list[Any]]) -> int:
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow(row)
            n += 1
    return n


def generate(
    landing: Path,
    scale: float = 1.0,
    seed: int = 42,
    end: datetime | None = None,
    days: int = 3,
    bad_rows: bool = False,
    drops_per_day: int = 1,
) -> dict[str, int]:
    """Write the demo shop into `landing`; returns rows written per kind. All timestamps are ≤ end."""
    end = (end or datetime(2026, 11, 20, 14, 0, tzinfo=UTC)).astimezone(UTC)
    rng = random.Random(seed)
    names = _Names(seed)
    landing.mkdir(parents=True, exist_ok=True)
    tag = end.strftime("%Y%m%d")
    counts: dict[str, int] = {}
    n_products = max(20, int(3000 * scale))
    n_customers = max(30, int(5000 * scale))
    n_carts = max(30, int(4000 * scale))

    counts["stores"] = _write_csv(
        landing / f"stores_{tag}.csv",
        ["store_id", "name", "email", "phone", "address", "city", "region", "url"],
        [
            [
                sid,
                name,
                f"{sid.lower()}@libraires-independants.example",
                phone,
                addr,
                city,
                "QC",
                f"https://libraires.example/{sid.lower()}",
            ]
            for sid, name, addr, city, phone in STORES
        ],
    )

    products: list[tuple[str, float]] = []

    def product_rows() -> Iterator[list[Any]]:
        for i in range(n_products):
            lang = "fr" if rng.random() < 0.7 else "en"
            sku = f"978{2 if lang == 'fr' else 1}{i:09d}"
            price = round(rng.choice([9.95, 14.95, 19.95, 24.95, 29.95, 34.95, 39.95, 49.95, 59.95, 89.95]), 2)
            products.append((sku, price))
            publisher = rng.choice(PUBLISHERS_FR if lang == "fr" else PUBLISHERS_EN)
            yield [
                sku,
                _title(rng, lang),
                rng.choice(names.authors),
                publisher,
                f"https://img.libraires.example/{sku}.jpg",
                f"https://libraires.example/livre/{sku}",
                f"{price:.2f}",
                "CAD",
                iso(end - timedelta(days=400 - i % 300)),
            ]

    counts["products"] = _write_csv(
        landing / f"products_{tag}.csv",
        ["sku", "title", "author", "publisher", "image_url", "product_url", "price", "currency", "updated_at"],
        product_rows(),
    )

    customers: list[dict[str, Any]] = []
    consent_rows: list[list[Any]] = []
    for i in range(n_customers):
        cid = f"C{i:07d}"
        lang = "fr" if rng.random() < 0.75 else "en"
        institution = rng.random() < 0.05
        store = rng.choice(STORES)[0]
        if institution:
            kind, prefix = rng.choice(INSTITUTIONS)
            first, last = "", f"{prefix} {rng.choice(CITIES)}"
            email = f"achats.{i}@institution.example"
        else:
            kind = ""
            first, last = rng.choice(names.first[lang]), rng.choice(names.last[lang])
            email = "" if rng.random() < 0.02 else f"client.{i}@courriel.example"
        phone = f"+1514{rng.randrange(2000000, 9999999)}" if rng.random() < 0.4 else ""
        customers.append({"id": cid, "email": email, "institution": institution, "store": store})
        customer_row = [
            cid,
            email,
            phone,
            first,
            last,
            lang,
            "institution" if institution else "consumer",
            kind,
            store if rng.random() < 0.8 else "",
            iso(end - timedelta(days=rng.randrange(1, 900))),
        ]
        customers[-1]["row"] = customer_row
        r = rng.random()
        if r < 0.10:
            continue  # never asked: no consent record
        recorded = end - timedelta(days=rng.randrange(1, 1000))
        basis = "implied" if rng.random() < 0.3 else "express"  # implied older than 730 days has expired (E3)
        status = "withdrawn" if r > 0.96 else "granted"
        consent_rows.append([cid, "email", status, basis, iso(recorded), rng.choice(["checkout", "signup", "store"])])
        if phone and rng.random() < 0.5:
            consent_rows.append([cid, "sms", "granted", "express", iso(recorded), "checkout"])
        if rng.random() < 0.2:
            consent_rows.append([cid, "push", "granted", "express", iso(recorded), "app"])

    counts["customers"] = _write_csv(
        landing / f"customers_{tag}.csv",
        [
            "customer_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "locale",
            "customer_type",
            "institution_kind",
            "preferred_store_id",
            "updated_at",
        ],
        [c["row"] for c in customers],
    )
    counts["consents"] = _write_csv(
        landing / f"consents_{tag}.csv",
        ["customer_id", "channel", "status", "basis", "recorded_at", "source"],
        consent_rows,
    )
    counts["test_group"] = _write_csv(
        landing / f"test_group_{tag}.csv", ["customer_id"], [[c["id"]] for c in customers[:10]]
    )
    counts["coupon_codes"] = _write_csv(
        landing / f"coupon_codes_{tag}.csv",
        ["pool", "code"],
        [
            [pool, f"{pool.upper().replace('_', '')}-{rng.getrandbits(40):010X}"]
            for pool in ("value_10", "value_15", "value_20", "sms_5")
            for _ in range(max(10, int(200 * scale)))
        ],
    )
    counts["push_subscriptions"] = _write_csv(
        landing / f"push_subscriptions_{tag}.csv",
        ["customer_id", "kind", "endpoint", "p256dh", "auth", "status", "recorded_at"],
        [
            [
                c["id"],
                kind,
                f"https://push.example/{c['id']}-{kind}" if kind == "web" else f"token-{c['id']}",
                "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA" if kind == "web" else "",
                "tBHItJI5svbpez7KI4CCXg" if kind == "web" else "",
                "active",
                iso(end - timedelta(days=30)),
            ]
            for c in customers[: len(customers) // 10]
            for kind in [rng.choice(["web", "ios", "android"])]
        ],
    )

    # carts and orders, split into one file per drop (the exporter drops files twice a day)
    start = end - timedelta(days=days)
    drops = max(1, days * drops_per_day)
    events_by_drop: list[list[str]] = [[] for _ in range(drops)]
    orders_by_drop: list[list[str]] = [[] for _ in range(drops)]
    span = (end - start).total_seconds()

    def drop_of(t: datetime) -> int:
        return min(drops - 1, int((t - start).total_seconds() / span * drops))

    n_events = n_orders = 0
    for c in range(n_carts):
        customer = None if rng.random() < 0.08 else rng.choice(customers)
        cart_id = f"K{c:08d}"
        store = customer["store"] if customer else rng.choice(STORES)[0]
        device = rng.choice(DEVICES)
        t = start + timedelta(seconds=rng.random() * span * 0.98)
        items: list[dict[str, Any]] = []
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 6])):
            t += timedelta(minutes=rng.randrange(1, 15))
            if t >= end:
                break
            sku, price = rng.choice(products)
            items.append(
                {"sku": sku, "quantity": rng.choice([1, 1, 1, 2]), "unit_price": f"{price:.2f}", "added_at": iso(t)}
            )
            ev = {
                "event_id": f"E{c:08d}-{len(items)}",
                "event_type": "cart_updated",
                "occurred_at": iso(t),
                "cart_id": cart_id,
                "customer_id": customer["id"] if customer else None,
                "device": device,
                "store_id": store,
                "currency": "CAD",
                "cart_url": f"https://libraires.example/panier/{cart_id}",
                "items": list(items),
            }
            events_by_drop[drop_of(t)].append(json.dumps(ev, ensure_ascii=False))
            n_events += 1
        if not items:
            continue
        fate = rng.random()
        if fate < 0.05:  # deleted
            t_del = t + timedelta(minutes=rng.randrange(5, 120))
            if t_del < end:
                ev = {
                    "event_id": f"E{c:08d}-del",
                    "event_type": "cart_deleted",
                    "occurred_at": iso(t_del),
                    "cart_id": cart_id,
                    "customer_id": customer["id"] if customer else None,
                    "device": device,
                    "store_id": store,
                    "currency": "CAD",
                    "cart_url": None,
                    "items": [],
                }
                events_by_drop[drop_of(t_del)].append(json.dumps(ev))
                n_events += 1
        elif fate < 0.40 and customer:  # bought it (some orders later cancelled or refunded)
            placed = t + timedelta(minutes=rng.randrange(10, 600))
            if placed < end:
                total = sum(float(i["unit_price"]) * i["quantity"] for i in items)
                status = rng.choices(["completed", "cancelled", "refunded"], [90, 6, 4])[0]
                order = {
                    "event_id": f"O{c:08d}",
                    "order_id": f"CMD-{c:08d}",
                    "customer_id": customer["id"],
                    "cart_id": cart_id if rng.random() < 0.7 else None,
                    "placed_at": iso(placed),
                    "status": status,
                    "store_id": store,
                    "currency": "CAD",
                    "total": f"{total:.2f}",
                    "items": [
                        {"sku": i["sku"], "quantity": i["quantity"], "unit_price": i["unit_price"]} for i in items
                    ],
                }
                orders_by_drop[drop_of(placed)].append(json.dumps(order, ensure_ascii=False))
                n_orders += 1

    for d in range(drops):
        stamp = (start + timedelta(seconds=span * (d + 1) / drops)).strftime("%Y%m%dT%H%M")
        for kind, lines in (("cart_events", events_by_drop[d]), ("orders", orders_by_drop[d])):
            if lines:
                (landing / f"{kind}_{stamp}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts["cart_events"] = n_events
    counts["orders"] = n_orders

    if bad_rows:
        counts["bad_rows"] = _write_bad_rows(landing, tag)
    return counts


def _write_bad_rows(landing: Path, tag: str) -> int:
    """A few rows of each way to break the contract, for the quarantine demo (O4)."""
    bad_events = [
        "this is not json",
        json.dumps({"event_id": "bad-1", "event_type": "cart_updated"}),  # missing keys
        json.dumps(
            {
                "event_id": "bad-2",
                "event_type": "cart_updated",
                "occurred_at": "hier soir",
                "cart_id": "x",
                "customer_id": None,
                "items": [],
            }
        ),
        json.dumps(
            {
                "event_id": "bad-3",
                "event_type": "cart_teleported",
                "occurred_at": "2026-11-19T10:00:00Z",
                "cart_id": "x",
                "customer_id": None,
                "items": [],
            }
        ),
    ]
    bad_orders = [
        json.dumps(
            {
                "event_id": "bad-o",
                "order_id": "bad",
                "customer_id": "C0000001",
                "placed_at": "2026-11-19T10:00:00Z",
                "status": "completed",
                "total": "-12.00",
                "items": [],
            }
        )
    ]
    (landing / f"cart_events_{tag}_bad.jsonl").write_text("\n".join(bad_events) + "\n", encoding="utf-8")
    (landing / f"orders_{tag}_bad.jsonl").write_text("\n".join(bad_orders) + "\n", encoding="utf-8")
    return len(bad_events) + len(bad_orders)


def generate_cart_events_file(path: Path, n_events: int, seed: int = 7) -> int:
    """n cart_updated events (1–6 items each) in one JSONL file, for the ingest benchmark."""
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    skus = [f"978{i:010d}" for i in range(5000)]
    with path.open("w", encoding="utf-8") as f:
        for n in range(n_events):
            t = iso(t0 + timedelta(seconds=n))
            items = [
                {"sku": rng.choice(skus), "quantity": 1, "unit_price": "19.95", "added_at": t}
                for _ in range(rng.randint(1, 6))
            ]
            f.write(
                json.dumps(
                    {
                        "event_id": f"b{n}",
                        "event_type": "cart_updated",
                        "occurred_at": t,
                        "cart_id": f"k{n // 3}",
                        "customer_id": f"c{n % 100000}",
                        "device": "mobile",
                        "store_id": "S01",
                        "currency": "CAD",
                        "cart_url": "https://libraires.example/p",
                        "items": items,
                    }
                )
                + "\n"
            )
    return n_events


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--landing", type=Path, required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--end", default="2026-11-20T14:00:00+00:00", help="the latest timestamp written (ISO 8601)")
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--drops-per-day", type=int, default=2)
    ap.add_argument("--bad-rows", action="store_true")
    args = ap.parse_args(argv)
    counts = generate(
        args.landing,
        args.scale,
        args.seed,
        datetime.fromisoformat(args.end),
        args.days,
        args.bad_rows,
        args.drops_per_day,
    )
    print(", ".join(f"{k}: {v:,}" for k, v in counts.items()))
