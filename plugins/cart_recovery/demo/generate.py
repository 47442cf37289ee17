"""Generate a demo bookstore cooperative into a landing folder, in the formats of contract §2.

    python -m cart_recovery.demo --landing var/landing --scale 1 --seed 42 --end 2026-11-20T14:00:00Z --days 3

At scale 1: 6 member bookstores, 3,000 books, 5,000 customers (≈5 % institutions, ≈10 % without any
consent record, some withdrawn, some with implied consent older than CASL's 730 days, a few without an
email or with a broken one), 1,000 coupon codes, ≈550 push subscriptions, 4,000 carts over `days` days
with one `cart_updated` event per change (≈12 % anonymous, some deleted, some re-sent twice): ≈10,500
events; and ≈1,400 orders (most converting a cart, some partial, cancelled or refunded, some unrelated to
any cart). Counts scale linearly with `--scale` (stores: 6 up to the cooperative's 150).

Fast and bounded: Faker fills small pools of names once; rows sample from them with one
`random.Random(seed)`, and every file is streamed: scale 100 (2.8M rows, 750 MB) takes 1 to 1.5 minutes
in 170 MB of memory. The same seed writes the same bytes. Timestamps carry the shop's offset
(America/Toronto), as the exporter writes them, and none is later than `end`.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import csv
import json
import random
import unicodedata
from array import array
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from cart_recovery.ingest.kinds import KINDS

SHOP_TZ = ZoneInfo("America/Toronto")
DEFAULT_END = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # 09:00 in Montréal: the daily run's T (O1)
SITE = "https://leslibraires.example"  # .example (RFC 2606): demo links and addresses can never reach anyone

# the contract's fields (§2), as the ingest checks them: one definition for writer and reader
HEADERS: dict[str, list[str]] = {k.name: list(k.columns) for k in KINDS.values() if k.fmt == "csv"}
JSONL_KEYS: dict[str, list[str]] = {name: list(KINDS[name].columns) for name in ("cart_events", "orders")}
COUPON_POOLS = ("value_10", "value_15", "value_20", "sms_5")

# Fictional member stores (555-01xx numbers are reserved for fiction); more are made up at larger scales.
STORES = [
    ("S01", "Librairie du Vieux-Quartier", "112, rue Saint-Jean", "Québec", "+14185550101"),
    ("S02", "Librairie Saint-Denis", "4380, rue Saint-Denis", "Montréal", "+15145550102"),
    ("S03", "Librairie La Grande Ourse", "27, rue Wellington Nord", "Sherbrooke", "+18195550103"),
    ("S04", "Librairie du Fjord", "380, rue Racine Est", "Saguenay", "+14185550104"),
    ("S05", "Librairie Le Phare", "145, avenue de la Cathédrale", "Rimouski", "+14185550105"),
    ("S06", "L'Harricana, librairie", "651, 3e Avenue", "Val-d'Or", "+18195550106"),
]
CITIES = [
    ("Montréal", "514"),
    ("Québec", "418"),
    ("Laval", "450"),
    ("Gatineau", "819"),
    ("Longueuil", "450"),
    ("Sherbrooke", "819"),
    ("Saguenay", "418"),
    ("Lévis", "581"),
    ("Trois-Rivières", "819"),
    ("Rimouski", "418"),
    ("Rouyn-Noranda", "819"),
    ("Val-d'Or", "819"),
    ("Joliette", "450"),
    ("Saint-Jérôme", "579"),
    ("Drummondville", "819"),
    ("Granby", "450"),
    ("Baie-Comeau", "418"),
    ("Gaspé", "418"),
    ("Montréal", "438"),
    ("Québec", "581"),
]
STORE_WORDS = [
    "Le Bouquin",
    "La Page",
    "Les Mots",
    "L'Encrier",
    "Le Signet",
    "La Plume",
    "Le Marque-page",
    "Côté Livres",
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
    "Les Éditions de la Pastèque",
    "XYZ",
    "Libre Expression",
    "Les Herbes rouges",
    "Fides",
    "Éditions du Noroît",
    "Gallimard",
]
PUBLISHERS_EN = [
    "Penguin",
    "House of Anansi",
    "McClelland & Stewart",
    "Drawn & Quarterly",
    "Coach House Books",
    "ECW Press",
    "Arsenal Pulp Press",
    "Véhicule Press",
]
# (noun, gender) and (masculine, feminine) adjectives, so French titles agree: "La nuit boréale"
NOUNS_FR = [
    ("nuit", "f"),
    ("fleuve", "m"),
    ("hiver", "m"),
    ("mémoire", "f"),
    ("maison", "f"),
    ("silence", "m"),
    ("forêt", "f"),
    ("lumière", "f"),
    ("route", "f"),
    ("neige", "f"),
    ("jardin", "m"),
    ("île", "f"),
    ("enfance", "f"),
    ("chemin", "m"),
    ("ville", "f"),
    ("océan", "m"),
    ("secret", "m"),
    ("voyage", "m"),
    ("saison", "f"),
    ("été", "m"),
    ("rivière", "f"),
    ("chalet", "m"),
    ("tempête", "f"),
    ("baleine", "f"),
    ("territoire", "m"),
    ("ruelle", "f"),
    ("érable", "m"),
    ("aurore", "f"),
]
ADJECTIVES_FR = [
    ("boréal", "boréale"),
    ("dernier", "dernière"),
    ("blanc", "blanche"),
    ("perdu", "perdue"),
    ("sauvage", "sauvage"),
    ("lointain", "lointaine"),
    ("secret", "secrète"),
    ("ancien", "ancienne"),
    ("immense", "immense"),
    ("bleu", "bleue"),
    ("infini", "infinie"),
    ("fragile", "fragile"),
]
TITLE_FORMS_FR = [
    "{the} {adj}",
    "{the} de {name}",
    "{a} {adj}",
    "Les {noun}s de {place}",
    "Retour {to_the}",
    "Ce qui reste {of_the}",
    "{the} et {the2}",
    "Petit traité {of_the}",
    "{the} {adj}, tome {n}",
    "Chroniques {of_the} {adj}",
]
WORDS_EN = ["River", "Winter", "House", "Silence", "Forest", "Light", "Road", "Snow", "Garden", "Island", "North"]
WORDS_EN += ["Ocean", "Secret", "Journey", "Letters", "Season", "Fire", "Stone", "Harbour", "Prairie", "Lake"]
TITLE_FORMS_EN = [
    "The {w} and the {w2}",
    "A {w} of {w2}s",
    "The Last {w}",
    "{w}s",
    "Notes from {place}",
    "The {w} Keeper",
    "What the {w} Knew",
    "{w} Road, Book {n}",
]
BOOK_PRICES = [9.95, 12.95, 14.95, 16.95, 19.95, 22.95, 24.95, 27.95, 29.95, 32.95, 34.95, 39.95, 44.95, 49.95]
BOOK_PRICES += [54.95, 59.95, 69.95, 79.95, 89.95]
BIG_PRICES = [109.95, 124.95, 149.95, 189.95]  # coffrets and beaux livres: the 20 % coupon tier needs some (C1)
INSTITUTIONS = [
    ("library", "Bibliothèque municipale de {city}", "biblio"),
    ("school", "École secondaire de {city}", "ecole"),
    ("cegep", "Cégep de {city}", "cegep"),
    ("university", "Université du Québec à {city}", "uq"),
    ("other", "Centre de services scolaire de {city}", "css"),
]
EMAIL_DOMAINS = ["courriel.example", "videotron.example", "bell.example", "gmail.example", "hotmail.example"]
EMAIL_DOMAINS += ["outlook.example", "sympatico.example", "cooptel.example"]
DEVICES = ["mobile"] * 55 + ["desktop"] * 35 + ["tablet"] * 8 + ["unknown"] * 2
# local hour of a cart's first add: quiet nights, lunch and evening peaks (cumulative weights for bisect)
_HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 8, 9, 11, 10, 8, 8, 8, 9, 11, 14, 15, 13, 8, 3]
_HOUR_CUM = [sum(_HOUR_WEIGHTS[: h + 1]) for h in range(24)]
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: codes get typed by hand


@dataclass(frozen=True)
class Sizes:
    """Row counts for a scale; everything but the stores is linear in it."""

    stores: int
    products: int
    customers: int
    carts: int
    codes_per_pool: int
    unrelated_orders: int

    @classmethod
    def for_scale(cls, scale: float) -> Sizes:
        if scale <= 0:
            raise ValueError("scale must be positive")
        return cls(
            stores=min(150, max(len(STORES), round(len(STORES) * scale))),
            products=max(20, round(3000 * scale)),
            customers=max(40, round(5000 * scale)),
            carts=max(40, round(4000 * scale)),
            codes_per_pool=max(10, round(250 * scale)),
            unrelated_orders=max(2, round(300 * scale)),
        )


_ISO_MINUTES: dict[int, tuple[str, str]] = {}


def iso(t: datetime) -> str:
    """ISO 8601 with the shop's offset, to the second, e.g. 2026-11-19T20:14:03-05:00.

    Converting through the time zone is the generator's hottest call: the local minute and its offset
    are cached per UTC minute (a bounded cache), the seconds are appended."""
    epoch = int(t.timestamp())
    minute, second = divmod(epoch, 60)
    cached = _ISO_MINUTES.get(minute)
    if cached is None:
        if len(_ISO_MINUTES) > 200_000:
            _ISO_MINUTES.clear()
        local = datetime.fromtimestamp(minute * 60, SHOP_TZ).isoformat()  # 2026-11-19T20:14:00-05:00
        cached = _ISO_MINUTES[minute] = (local[:17], local[19:])
    return f"{cached[0]}{second:02d}{cached[1]}"


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in _ascii(text)).split())


def _isbn13(prefix: str, body: int) -> str:
    """A valid ISBN-13: 978-2 for French-language books, 978-1 for English ones."""
    digits = f"{prefix}{body:08d}"
    total = sum(map(int, digits[0::2])) + 3 * sum(map(int, digits[1::2]))
    check = (10 - total % 10) % 10
    return f"{digits}{check}"


def _b64url(rng: random.Random, n: int) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(n)).rstrip(b"=").decode()


class _Pools:
    """Faker is slow per call (tens of µs): draw small pools once, then sample them with the seeded rng."""

    def __init__(self, seed: int) -> None:
        from faker import Faker  # only the generator needs it

        fr, en = Faker("fr_CA"), Faker("en_CA")
        fr.seed_instance(seed)
        en.seed_instance(seed + 1)
        self.first = {"fr": [fr.first_name() for _ in range(400)], "en": [en.first_name() for _ in range(300)]}
        self.last = {"fr": [fr.last_name() for _ in range(400)], "en": [en.last_name() for _ in range(300)]}
        self.authors = {
            "fr": [f"{fr.first_name()} {fr.last_name()}" for _ in range(600)],
            "en": [f"{en.first_name()} {en.last_name()}" for _ in range(250)],
        }


def _the(noun: str, gender: str) -> str:
    return f"l’{noun}" if noun[0] in "aeiouéèêîôâh" else f"{'le' if gender == 'm' else 'la'} {noun}"


def _title(rng: random.Random, lang: str, pools: _Pools) -> str:
    place = rng.choice(CITIES)[0]
    n = rng.randint(2, 4)
    if lang == "en":
        w, w2 = rng.sample(WORDS_EN, 2)
        return rng.choice(TITLE_FORMS_EN).format(w=w, w2=w2, place=place, n=n)
    (noun, g), (noun2, g2) = rng.sample(NOUNS_FR, 2)
    the = _the(noun, g)
    text = rng.choice(TITLE_FORMS_FR).format(
        the=the,
        of_the=f"du {noun}" if the.startswith("le ") else f"de {the}",
        to_the=f"au {noun}" if the.startswith("le ") else f"à {the}",
        a=f"{'un' if g == 'm' else 'une'} {noun}",
        noun=noun,
        the2=_the(noun2, g2),
        adj=rng.choice(ADJECTIVES_FR)[0 if g == "m" else 1],
        name=rng.choice(pools.first["fr"]),
        place=place,
        n=n,
    )
    return text[0].upper() + text[1:]


class _Drops:
    """The event files: one per kind, or one per drop when the exporter drops files several times a day.

    A drop is named by the local time it was exported (the end of the span it covers), so name order is
    time order, which is the order the loader reads files in (contract §2)."""

    def __init__(self, landing: Path, stack: ExitStack, start: datetime, end: datetime, per_day: int, tag: str):
        self.landing, self.stack, self.end, self.tag = landing, stack, end, tag
        self.files: dict[str, IO[str]] = {}
        self.bounds: list[datetime] = []  # drop k holds the span ending at bounds[k]
        if per_day > 1:
            step = timedelta(hours=24 / per_day)
            day = start.astimezone(SHOP_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
            while day < end:
                for k in range(1, per_day + 1):
                    bound = day + k * step  # wall-clock arithmetic: drops stay at 12:00 and 00:00 across DST
                    if start < bound < end:
                        self.bounds.append(bound)
                day += timedelta(days=1)
            self.bounds.append(end)
        self.names: list[str] = [f"{b.astimezone(SHOP_TZ):%Y%m%dT%H%M}" for b in self.bounds] or [tag]

    def index(self, t: datetime) -> int:
        return bisect.bisect_left(self.bounds, t) if self.bounds else 0

    def file(self, kind: str, t: datetime) -> IO[str]:
        i = min(self.index(t), len(self.names) - 1)
        key = f"{kind}_{self.names[i]}"
        if key not in self.files:
            self.files[key] = self.stack.enter_context(
                (self.landing / f"{key}.jsonl").open("w", encoding="utf-8", newline="\n")
            )
        return self.files[key]


def _csv(landing: Path, stack: ExitStack, kind: str, tag: str) -> Any:
    f = stack.enter_context((landing / f"{kind}_{tag}.csv").open("w", newline="", encoding="utf-8"))
    w = csv.writer(f, lineterminator="\n")
    w.writerow(HEADERS[kind])
    return w


def _write(f: IO[str], row: dict[str, Any]) -> None:
    f.write(json.dumps(row, ensure_ascii=False, separators=(", ", ": ")) + "\n")


def generate(
    landing: Path,
    scale: float = 1.0,
    seed: int = 42,
    end: datetime | None = None,
    days: int = 3,
    bad_rows: bool = False,
    drops_per_day: int = 1,
    tag: str | None = None,
    abandon_share: float | None = None,
) -> dict[str, int]:
    """Write the demo cooperative into `landing` as `<kind>_<tag>.csv|jsonl`; return rows written per kind.

    `tag` defaults to the end date (`cart_events_20261120.jsonl`). With `drops_per_day` ≥ 2, cart events and
    orders are split into one file per drop (`cart_events_20261119T1200.jsonl`, …), like the real exporter.
    `bad_rows` appends a handful of contract-breaking rows to each file for the quarantine demo (O4).
    `abandon_share` (default: about 0.6) is the share of customers' carts neither bought nor deleted (at most
    0.94: 6 % are always deleted; guests rarely buy either way); bench_day.py raises it to size a 100k-message
    day with a smaller shop."""
    end = end or DEFAULT_END
    if end.tzinfo is None:
        raise ValueError("end needs an offset")
    end = end.astimezone(UTC)
    if days < 1:
        raise ValueError("days must be at least 1")
    if abandon_share is not None and not 0.0 <= abandon_share <= 1.0:
        raise ValueError("abandon_share is a share of carts: between 0 and 1")
    landing = Path(landing)
    landing.mkdir(parents=True, exist_ok=True)
    tag = tag or f"{end.astimezone(SHOP_TZ):%Y%m%d}"
    size = Sizes.for_scale(scale)
    rng = random.Random(seed)
    pools = _Pools(seed)
    counts: dict[str, int] = {}
    start = end - timedelta(days=days)

    with ExitStack() as stack:
        # ---------------------------------------------------------------- stores
        w = _csv(landing, stack, "stores", tag)
        store_ids: list[str] = []
        for i in range(size.stores):
            if i < len(STORES):
                sid, name, address, city, phone = STORES[i]
            else:
                city, area = rng.choice(CITIES)
                sid, name = f"S{i + 1:02d}", f"{rng.choice(STORE_WORDS)} – librairie de {city}"
                address = f"{rng.randint(10, 2999)}, rue {rng.choice(pools.last['fr'])}"
                phone = f"+1{area}5550{rng.randint(100, 199)}"
            w.writerow(
                [
                    sid,
                    name,
                    f"bonjour.{sid.lower()}@leslibraires.example",
                    phone,
                    address,
                    city,
                    "QC",
                    f"{SITE}/librairies/{sid.lower()}-{_slug(name)}",
                ]
            )
            store_ids.append(sid)
        counts["stores"] = len(store_ids)

        # ---------------------------------------------------------------- products
        w = _csv(landing, stack, "products", tag)
        skus: list[str] = []
        prices: list[str] = []
        for i in range(size.products):
            lang = "fr" if rng.random() < 0.78 else "en"
            sku = _isbn13("9782" if lang == "fr" else "9781", (i * 7919 + 1_204_511) % 100_000_000)
            price = rng.choice(BIG_PRICES) if rng.random() < 0.03 else rng.choice(BOOK_PRICES)
            title = _title(rng, lang, pools)
            publisher = rng.choice(PUBLISHERS_FR if lang == "fr" else PUBLISHERS_EN)
            updated = end - timedelta(days=rng.uniform(days + 1, 800))
            w.writerow(
                [
                    sku,
                    title,
                    rng.choice(pools.authors[lang]),
                    publisher,
                    f"https://images.leslibraires.example/couvertures/{sku}.jpg",
                    f"{SITE}/livre/{_slug(title)}-{sku}",
                    f"{price:.2f}",
                    "CAD",
                    iso(updated),
                ]
            )
            skus.append(sku)
            prices.append(f"{price:.2f}")
        counts["products"] = len(skus)

        # ---------------------------------------------------------------- customers, consents, push, test group
        cw = _csv(landing, stack, "customers", tag)
        kw = _csv(landing, stack, "consents", tag)
        pw = _csv(landing, stack, "push_subscriptions", tag)
        tw = _csv(landing, stack, "test_group", tag)
        n_customers = size.customers
        home_store = array("H", [0] * n_customers)  # index into store_ids: bounded memory at any scale
        n_consents = n_push = n_tests = 0
        later_versions: list[list[Any]] = []  # a later `updated_at` supersedes: written at the end of the file
        for i in range(n_customers):
            cid = f"C{i + 1:07d}"
            lang = "fr" if rng.random() < 0.75 else "en"
            city, area = rng.choice(CITIES)
            store = rng.randrange(len(store_ids))
            home_store[i] = store
            institution = rng.random() < 0.05
            if institution:  # E1: libraries, schools, CEGEPs… buy too, and must never get a reminder
                kind, label, short = rng.choice(INSTITUTIONS)
                first, last = "", label.format(city=city)
                email = f"acquisitions@{short}-{_slug(city)}.example"
                lang = "fr"
            else:
                kind = ""
                first, last = rng.choice(pools.first[lang]), rng.choice(pools.last[lang])
                email = (
                    f"{_slug(first).replace('-', '')}.{_slug(last)}{rng.randint(1, 999)}@{rng.choice(EMAIL_DOMAINS)}"
                )
            r = rng.random()
            if r < 0.015:
                email = ""  # D4: no email, never targeted
            elif r < 0.022:
                email = rng.choice([email.replace("@", " @"), email.split("@")[0] + "@", email.replace("@", ".")])
            phone = ""
            if rng.random() < 0.45:
                number = f"{area}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
                # mostly E.164 (E2 for SMS); some exported as typed, which the SMS channel must refuse
                phone = f"+1{number}" if rng.random() < 0.85 else f"({number[:3]}) {number[3:6]}-{number[6:]}"
            updated = end - timedelta(days=rng.uniform(days + 1, 900))
            row = [
                cid,
                email,
                phone,
                first,
                last,
                lang if rng.random() > 0.01 else "",
                "institution" if institution else "consumer",
                kind,
                store_ids[store] if rng.random() < 0.85 else "",
                iso(updated),
            ]
            cw.writerow(row)
            if rng.random() < 0.01:  # the customer edited their profile during the window
                later = list(row)
                later[5] = "en" if lang == "fr" else "fr"
                later[9] = iso(end - timedelta(hours=rng.uniform(1, 24 * days)))
                later_versions.append(later)

            # consents (E3): ≈10 % never asked; implied ones older than 730 days have expired
            has_consent = rng.random() >= 0.10
            express = False
            if has_consent:
                recorded = end - timedelta(days=rng.uniform(1, 1100))
                express = rng.random() < 0.7
                kw.writerow(
                    [
                        cid,
                        "email",
                        "granted",
                        "express" if express else "implied",
                        iso(recorded),
                        rng.choice(["checkout", "signup", "in_store", "newsletter"] if express else ["purchase"]),
                    ]
                )
                n_consents += 1
                if rng.random() < 0.04:  # withdrawn later: the latest record wins
                    withdrawn = recorded + (end - recorded) * rng.uniform(0.1, 0.99)
                    kw.writerow([cid, "email", "withdrawn", "express", iso(withdrawn), "preference_center"])
                    n_consents += 1
                    express = False
                if phone and rng.random() < 0.5:
                    kw.writerow([cid, "sms", "granted", "express", iso(recorded), "checkout"])
                    n_consents += 1
            if rng.random() < 0.12 and not institution:
                sub_kind = rng.choices(["web", "ios", "android"], [60, 20, 20])[0]
                if sub_kind == "web":
                    endpoint = f"https://push.services.example/wpush/v2/{_b64url(rng, 48)}"
                    p256dh = base64.urlsafe_b64encode(b"\x04" + rng.randbytes(64)).rstrip(b"=").decode()
                    auth = _b64url(rng, 16)
                else:  # APNs tokens are 64 hex digits; FCM tokens are longer opaque strings
                    endpoint = (
                        rng.randbytes(32).hex() if sub_kind == "ios" else f"{_b64url(rng, 16)}:{_b64url(rng, 105)}"
                    )
                    p256dh = auth = ""
                sub_at = end - timedelta(days=rng.uniform(1, 400))
                pw.writerow(
                    [cid, sub_kind, endpoint, p256dh, auth, "revoked" if rng.random() < 0.1 else "active", iso(sub_at)]
                )
                n_push += 1
                if rng.random() < 0.85:
                    kw.writerow([cid, "push", "granted", "express", iso(sub_at), "app" if sub_kind != "web" else "web"])
                    n_consents += 1
            # E7: the test group is staff-like, reachable customers (≈0.5 %, at least 5)
            if (
                not institution
                and "@" in email
                and " " not in email
                and express
                and (n_tests < 5 or rng.random() < 0.005)
            ):
                tw.writerow([cid])
                n_tests += 1
        for later in later_versions:
            cw.writerow(later)
        counts["customers"] = n_customers + len(later_versions)
        counts["consents"] = n_consents
        counts["push_subscriptions"] = n_push
        counts["test_group"] = n_tests

        # ---------------------------------------------------------------- coupon codes (C2: unique, single use)
        w = _csv(landing, stack, "coupon_codes", tag)
        seen: set[str] = set()
        for pool in COUPON_POOLS:
            prefix = "TEXTO5" if pool == "sms_5" else f"LIB{pool.split('_')[1]}"
            made = 0
            while made < size.codes_per_pool:
                code = (
                    f"{prefix}-{''.join(rng.choices(_CODE_ALPHABET, k=4))}-{''.join(rng.choices(_CODE_ALPHABET, k=4))}"
                )
                if code not in seen:
                    seen.add(code)
                    w.writerow([pool, code])
                    made += 1
        counts["coupon_codes"] = len(seen)
        del seen

        # ---------------------------------------------------------------- carts and orders
        drops = _Drops(landing, stack, start, end, drops_per_day, tag)
        buy_below = 0.42 if abandon_share is None else max(0.06, 1.0 - abandon_share)  # 6 % deleted first
        n_events, n_orders = _carts_and_orders(
            rng, drops, size, start, end, days, skus, prices, store_ids, home_store, buy_below
        )
        counts["cart_events"] = n_events
        counts["orders"] = n_orders
    if bad_rows:  # appended once every file is closed, so no buffered writer interleaves with them
        counts["bad_rows"] = _bad_rows(landing, tag, drops.names[-1], end)
    return counts


def _cart_start(rng: random.Random, start: datetime, end: datetime, days: int) -> datetime:
    """A first add: a day of the window and a local hour by the site's daily rhythm."""
    last_midnight = end.astimezone(SHOP_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    while True:
        day = last_midnight - timedelta(days=rng.randrange(days + 1))
        hour = bisect.bisect_right(_HOUR_CUM, rng.random() * _HOUR_CUM[-1])
        t = (day + timedelta(hours=hour, seconds=rng.randrange(3600))).astimezone(UTC)
        if start <= t < end - timedelta(minutes=2):
            return t


def _carts_and_orders(
    rng: random.Random,
    drops: _Drops,
    size: Sizes,
    start: datetime,
    end: datetime,
    days: int,
    skus: list[str],
    prices: list[str],
    store_ids: list[str],
    home_store: array,
    buy_below: float = 0.42,
) -> tuple[int, int]:
    n_customers, n_products = len(home_store), len(skus)
    hot = max(1, n_customers // 20)  # regulars: a few customers leave several carts (D5)
    # carts in time order, so each file reads roughly chronologically, as an exporter writes it
    starts = sorted(_cart_start(rng, start, end, days) for _ in range(size.carts))
    n_events = n_orders = 0
    duplicates: list[tuple[datetime, dict[str, Any]]] = []

    def emit(kind: str, t: datetime, row: dict[str, Any]) -> None:
        nonlocal n_events, n_orders
        _write(drops.file(kind, t), row)
        if kind == "cart_events":
            n_events += 1
        else:
            n_orders += 1

    for c, t in enumerate(starts):
        cart_id = f"PAN-{c + 1:08d}"
        anonymous = rng.random() < 0.12  # D4: counted, never targeted
        who = None if anonymous else (rng.randrange(hot) if rng.random() < 0.25 else rng.randrange(n_customers))
        customer_id = None if who is None else f"C{who + 1:07d}"
        store = store_ids[home_store[who]] if who is not None and rng.random() < 0.8 else rng.choice(store_ids)
        device = rng.choice(DEVICES)
        base = {
            "cart_id": cart_id,
            "customer_id": customer_id,
            "device": device,
            "store_id": store,
            "currency": "CAD",
            "cart_url": f"{SITE}/panier/{cart_id}",
        }
        items: list[dict[str, Any]] = []
        n_adds = rng.choices([1, 2, 3, 4, 5, 6, 8], [35, 25, 15, 10, 7, 5, 3])[0]
        seq = 0
        for a in range(n_adds):
            if a:
                gap = rng.uniform(20, 1200) if rng.random() < 0.9 else rng.uniform(2 * 3600, 30 * 3600)
                t += timedelta(seconds=gap)  # most adds minutes apart; some carts resumed the next day
            if t >= end:
                break
            p = int(n_products * rng.random() ** 2)  # bestsellers sit in more carts
            if any(i["sku"] == skus[p] for i in items):
                items = [dict(i, quantity=i["quantity"] + 1) if i["sku"] == skus[p] else i for i in items]
            else:
                items.append(
                    {
                        "sku": skus[p],
                        "quantity": 1 if rng.random() < 0.9 else 2,
                        "unit_price": prices[p],
                        "added_at": iso(t),
                    }
                )
            if len(items) > 2 and rng.random() < 0.05:  # changed their mind: the next event lacks it
                items.pop(rng.randrange(len(items) - 1))
            seq += 1
            event = {
                "event_id": f"ev-{c + 1:08d}-{seq:02d}",
                "event_type": "cart_updated",
                "occurred_at": iso(t),
                **base,
                "items": [dict(i) for i in items],
            }
            emit("cart_events", t, event)
            if rng.random() < 0.01:  # D1: the exporter sometimes sends an event twice, in a later drop
                duplicates.append((min(end, t + timedelta(hours=12)), event))
        if not items:
            continue
        fate = rng.random()
        if fate < 0.06:  # deleted (D1)
            t_del = t + timedelta(minutes=rng.uniform(5, 240))
            if t_del < end:
                seq += 1
                emit(
                    "cart_events",
                    t_del,
                    {
                        "event_id": f"ev-{c + 1:08d}-{seq:02d}",
                        "event_type": "cart_deleted",
                        "occurred_at": iso(t_del),
                        **base,
                        "cart_url": None,
                        "items": [],
                    },
                )
        elif fate < buy_below and (customer_id or rng.random() < 0.1):  # bought (D3), guests included
            placed = t + timedelta(minutes=rng.uniform(5, 1200))
            if placed < end:
                bought = items if rng.random() < 0.85 else items[: max(1, len(items) // 2)]  # partial purchase
                linked = customer_id is None or rng.random() < 0.8  # some orders come without their cart id
                emit("orders", placed, _order(rng, c, customer_id, cart_id if linked else None, placed, store, bought))
    # orders with no cart behind them: in-store pickups, phone orders, another device
    for o in range(size.unrelated_orders):
        placed = _cart_start(rng, start, end, days)
        who = rng.randrange(n_customers)
        bought = []
        for p in {int(n_products * rng.random() ** 2) for _ in range(rng.randint(1, 3))}:
            bought.append({"sku": skus[p], "quantity": 1, "unit_price": prices[p]})
        emit(
            "orders",
            placed,
            _order(rng, size.carts + o, f"C{who + 1:07d}", None, placed, store_ids[home_store[who]], bought),
        )
    for t_dup, event in duplicates:
        emit("cart_events", t_dup, event)
    return n_events, n_orders


def _order(
    rng: random.Random,
    n: int,
    customer_id: str | None,
    cart_id: str | None,
    placed: datetime,
    store: str,
    items: Iterable[dict[str, Any]],
) -> dict[str, Any]:
    lines = [{"sku": i["sku"], "quantity": i["quantity"], "unit_price": i["unit_price"]} for i in items]
    total = sum(round(float(i["unit_price"]) * 100) * i["quantity"] for i in lines) / 100
    return {
        "event_id": f"or-{n + 1:08d}",
        "order_id": f"CMD-{placed.astimezone(SHOP_TZ):%Y}-{n + 1:07d}",
        "customer_id": customer_id,
        "cart_id": cart_id,
        "placed_at": iso(placed),
        "status": rng.choices(["completed", "cancelled", "refunded"], [92, 5, 3])[0],
        "store_id": store,
        "currency": "CAD",
        "total": f"{total:.2f}",
        "items": lines,
    }


def _bad_rows(landing: Path, tag: str, last_drop: str, end: datetime) -> int:
    """A handful of rows per kind that break contract §2 in each way O4 quarantines, appended after the good
    rows: bad JSON, missing keys, bad timestamps, negative amounts, unknown enum values."""
    when = iso(end - timedelta(hours=3))
    good_item = {"sku": "9782000000019", "quantity": 1, "unit_price": "19.95", "added_at": when}
    event = {
        "event_id": "bad-ev",
        "event_type": "cart_updated",
        "occurred_at": when,
        "cart_id": "PAN-BAD",
        "customer_id": "C0000001",
        "device": "mobile",
        "store_id": "S01",
        "currency": "CAD",
        "cart_url": f"{SITE}/panier/PAN-BAD",
        "items": [good_item],
    }
    order = {
        "event_id": "bad-or",
        "order_id": "CMD-BAD",
        "customer_id": "C0000001",
        "cart_id": None,
        "placed_at": when,
        "status": "completed",
        "store_id": "S01",
        "currency": "CAD",
        "total": "19.95",
        "items": [{"sku": "9782000000019", "quantity": 1, "unit_price": "19.95"}],
    }

    def without(row: dict[str, Any], key: str, n: int) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k != key} | {"event_id": f"{row['event_id']}-{n}"}

    def with_(row: dict[str, Any], n: int, **kw: Any) -> dict[str, Any]:
        return row | kw | {"event_id": f"{row['event_id']}-{n}"}

    jsonl = {
        "cart_events": [
            '{"event_id": "bad-ev-1", "event_type": "cart_updated", "occurred_at": ',  # truncated JSON
            "ceci n'est pas du JSON",
            json.dumps(without(event, "cart_id", 2)),
            json.dumps(with_(event, 3, occurred_at="hier soir")),
            json.dumps(with_(event, 4, occurred_at="2026-11-19T10:00:00")),  # no offset
            json.dumps(with_(event, 5, event_type="cart_teleported")),
            json.dumps(with_(event, 6, device="fridge")),
            json.dumps(with_(event, 7, items=[good_item | {"unit_price": "-19.95"}])),
            json.dumps(with_(event, 8, items=[good_item | {"quantity": 0}])),
            json.dumps(with_(event, 9, items="9782000000019")),
        ],
        "orders": [
            "{not json",
            json.dumps(with_(order, 1, total="-12.00")),
            json.dumps(with_(order, 2, status="lost_in_mail")),
            json.dumps(with_(order, 3, placed_at="20/11/2026")),
            json.dumps(without(order, "order_id", 4)),
        ],
    }
    csv_rows: dict[str, list[list[str]]] = {
        "stores": [["", "Librairie sans identifiant", "", "", "", "Laval", "QC", ""]],
        "products": [
            ["9782999999990", "Prix négatif", "Anonyme", "Boréal", "", "", "-4.95", "CAD", when],
            ["9782999999991", "Prix en lettres", "Anonyme", "Alto", "", "", "gratuit", "CAD", when],
            ["", "Sans ISBN", "Anonyme", "Alto", "", "", "19.95", "CAD", when],
            ["9782999999992", "Date illisible", "Anonyme", "Alto", "", "", "19.95", "CAD", "bientôt"],
        ],
        "customers": [
            ["", "sans.id@courriel.example", "", "Sans", "Identifiant", "fr", "consumer", "", "S01", when],
            ["C9999901", "robot@courriel.example", "", "Robo", "T", "fr", "robot", "", "S01", when],
            ["C9999902", "hans@courriel.example", "", "Hans", "Müller", "de", "consumer", "", "S01", when],
            [
                "C9999903",
                "date@courriel.example",
                "",
                "Date",
                "Floue",
                "fr",
                "consumer",
                "",
                "S01",
                "la semaine passée",
            ],
            ["C9999904", "colonnes@courriel.example"],  # a short row: missing fields
        ],
        "consents": [
            ["C0000001", "fax", "granted", "express", when, "signup"],
            ["C0000001", "email", "peut-être", "express", when, "signup"],
            ["C0000001", "email", "granted", "express", "2026-11-19 10:00", "signup"],  # no offset
        ],
        "test_group": [["C0000001", "en trop"]],  # one column too many
        "coupon_codes": [["value_10", ""], ["", "LIB10-ORPH-ELIN"]],
        "push_subscriptions": [
            ["C0000001", "blackberry", "pin:2a3b4c5d", "", "", "active", when],
            ["C0000001", "web", "https://push.services.example/x", "k", "a", "paused", when],
        ],
    }
    n = 0
    for kind, rows in csv_rows.items():
        with (landing / f"{kind}_{tag}.csv").open("a", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerows(rows)
            n += len(rows)
    for kind, lines in jsonl.items():
        with (landing / f"{kind}_{last_drop}.jsonl").open("a", encoding="utf-8", newline="\n") as f:
            f.writelines(line + "\n" for line in lines)
        n += len(lines)
    return n


def generate_cart_events_file(path: Path, n_events: int, seed: int = 7) -> int:
    """`n_events` valid `cart_updated` events in one JSONL file, for the ingest benchmark.

    Carts grow one book per event (1–6), like the demo's, but lines are assembled from pre-serialised
    pieces rather than `json.dumps`, so a million rows take a few seconds."""
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    skus = [_isbn13("9782", i * 7919 % 100_000_000) for i in range(5000)]
    # each book's item object up to its added_at value, serialised once
    item_head = [
        f'{{"sku": "{sku}", "quantity": 1, "unit_price": "{rng.choice(BOOK_PRICES):.2f}", "added_at": "' for sku in skus
    ]
    devices = ["mobile", "desktop", "tablet"]
    rand = rng.random
    # one second per event: timestamps from a per-minute prefix (strftime per row would dominate)
    prefix, prefix_minute = "", -1
    written = cart = 0
    with Path(path).open("w", encoding="utf-8", newline="\n") as f:
        buf: list[str] = []
        while written < n_events:
            cart += 1
            n_items = min(1 + int(rand() * 6), n_events - written)
            head = f'{{"event_id": "bench-{cart}-'
            tail = (
                f'", "cart_id": "PAN-{cart:09d}", "customer_id": "C{1 + int(rand() * 999_999):07d}", '
                f'"device": "{devices[cart % 3]}", "store_id": "S{cart % 6 + 1:02d}", "currency": "CAD", '
                f'"cart_url": "{SITE}/panier/PAN-{cart:09d}", "items": ['
            )
            items = ""
            for k in range(1, n_items + 1):
                minute, second = divmod(written, 60)
                if minute != prefix_minute:
                    prefix_minute = minute
                    prefix = (t0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:")
                stamp = f"{prefix}{second:02d}Z"
                item = f'{item_head[int(rand() * 5000)]}{stamp}"}}'
                items = f"{items}, {item}" if items else item
                buf.append(f'{head}{k}", "event_type": "cart_updated", "occurred_at": "{stamp}{tail}{items}]}}\n')
                written += 1
            if len(buf) >= 10_000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m cart_recovery.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--landing", type=Path, required=True, help="the landing folder to write into")
    ap.add_argument("--scale", type=float, default=1.0, help="1.0: thousands of customers; 100: a million rows")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--end", default=DEFAULT_END.isoformat(), help="latest timestamp written, ISO 8601 with offset")
    ap.add_argument("--days", type=int, default=3, help="days of cart activity before --end")
    ap.add_argument("--drops-per-day", type=int, default=1, help="2: morning and evening event files")
    ap.add_argument("--tag", default=None, help="file name tag (default: the end date, YYYYMMDD)")
    ap.add_argument("--bad-rows", action="store_true", help="append malformed rows to every file (O4 demo)")
    ap.add_argument("--abandon-share", type=float, default=None, help="share of carts left (default: about 0.6)")
    ap.add_argument("--bench-events", type=int, default=0, help="instead: write N benchmark cart events")
    args = ap.parse_args(argv)
    if args.bench_events:
        args.landing.mkdir(parents=True, exist_ok=True)
        n = generate_cart_events_file(args.landing / f"cart_events_{args.tag or 'bench'}.jsonl", args.bench_events)
        print(f"cart_events: {n:,}")
        return
    end = datetime.fromisoformat(args.end.replace("Z", "+00:00"))
    if end.tzinfo is None:
        ap.error("--end needs an offset, e.g. 2026-11-20T14:00:00Z")
    counts = generate(
        args.landing,
        args.scale,
        args.seed,
        end,
        args.days,
        args.bad_rows,
        args.drops_per_day,
        args.tag,
        args.abandon_share,
    )
    print(", ".join(f"{k}: {v:,}" for k, v in counts.items()))
