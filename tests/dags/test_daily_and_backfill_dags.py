"""`cart_recovery_daily` and `cart_recovery_backfill` run by Airflow (`airflow dags test`), building the dbt
models through cosmos on a real PostgreSQL and sending through the real sendgrid client to the local
stand-in: the whole chain, then reruns, a backfill and a dry run against the same outbox."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cart_recovery.devtools.sendgrid_standin import SendGridStandin
from tests.dags.runner import run_dag

pytestmark = pytest.mark.slow

T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # 09:00 in Montréal


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def customer(cid: str, locale: str = "fr", kind: str = "consumer") -> dict:
    return {
        "customer_id": cid,
        "email": f"{cid}@mail.example",
        "phone": "",
        "first_name": cid.capitalize(),
        "last_name": "Gagnon",
        "locale": locale,
        "customer_type": kind,
        "institution_kind": "library" if kind == "institution" else "",
        "preferred_store_id": "S1",
        "updated_at": "2026-01-01T00:00:00Z",
    }


def cart(cid: str | None, cart_id: str, at: datetime, skus: list[str]) -> dict:
    items = [
        {
            "sku": s,
            "quantity": 1,
            "unit_price": "25.00",
            "added_at": (at - timedelta(minutes=len(skus) - i)).isoformat(),
        }
        for i, s in enumerate(skus)
    ]
    return {
        "event_id": f"ev-{cart_id}-{at:%d%H%M}",
        "event_type": "cart_updated",
        "occurred_at": at.isoformat(),
        "cart_id": cart_id,
        "customer_id": cid,
        "device": "mobile",
        "store_id": "S1",
        "currency": "CAD",
        "cart_url": f"https://shop.example/cart/{cart_id}",
        "items": items,
    }


def write_people(landing: Path, people: list[dict], without_consent: tuple[str, ...] = ("nocons",)) -> None:
    """The customers file, and an express email consent for each but `without_consent`."""
    write_csv(landing / "customers_1.csv", people)
    write_csv(
        landing / "consents_1.csv",
        [
            {
                "customer_id": p["customer_id"],
                "channel": "email",
                "status": "granted",
                "basis": "express",
                "recorded_at": "2026-01-01T00:00:00Z",
                "source": "signup",
            }
            for p in people
            if p["customer_id"] not in without_consent
        ],
    )


def write_shop(landing: Path) -> None:
    write_csv(
        landing / "stores_1.csv",
        [
            {
                "store_id": "S1",
                "name": "Librairie Pantoute",
                "email": "s1@l.example",
                "phone": "+14186942262",
                "address": "1100 rue Saint-Jean",
                "city": "Québec",
                "region": "QC",
                "url": "https://s1.example",
            }
        ],
    )
    write_csv(
        landing / "products_1.csv",
        [
            {
                "sku": f"B{i}",
                "title": f"Roman {i}",
                "author": "Anne Hébert",
                "publisher": "Boréal",
                "image_url": "https://i/x.jpg",
                "product_url": "https://p/x",
                "price": "25.00",
                "currency": "CAD",
                "updated_at": "2026-01-01T00:00:00Z",
            }
            for i in range(1, 8)
        ],
    )
    people = [
        customer("alice"),
        customer("bob", "en"),
        customer("biblio", kind="institution"),
        customer("nocons"),
        customer("olga"),
        customer("carol"),
    ]
    write_people(landing, people)
    evening = T - timedelta(hours=18)
    events = [
        cart("alice", "k-alice", evening, ["B1"]),
        cart("bob", "k-bob", evening, ["B6", "B5", "B4", "B3", "B2", "B1"]),
        cart("biblio", "k-biblio", evening, ["B2"]),
        cart("nocons", "k-nocons", evening, ["B3"]),
        cart(None, "k-anon", evening, ["B4"]),
        cart("olga", "k-olga", T - timedelta(days=4), ["B5"]),  # outside the daily window, inside 7 days
        cart("carol", "k-carol", T + timedelta(hours=6), ["B7"]),  # tomorrow's cart
    ]
    (landing / "cart_events_1.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")


def test_daily_rerun_backfill_and_dry_run(airflow_metadata, db_url, db, landing):
    write_shop(landing)
    with SendGridStandin() as sg:
        # the daily run: ingest, models (cosmos), coupons, send, summary
        res = run_dag("cart_recovery_daily", T, db_url, landing, sendgrid_url=sg.url)
        assert sorted(a.to[0] for a in sg.accepted) == ["alice@mail.example", "bob@mail.example"]
        assert {a.custom_args["campaign"] for a in sg.accepted} == {"bookstore_daily"}
        assert db.execute("select status, count(*) from ops.messages group by 1").fetchall() == [("sent", 2)]
        reasons = dict(
            db.execute(
                "select customer_id, reason from marts.recipient_exclusions where customer_id is not null"
            ).fetchall()
        )
        assert reasons == {"biblio": "institutional", "nocons": "no_consent"}
        log = res.stdout + res.stderr
        assert "run summary" in log
        assert "@mail.example" not in log, "O5: no email address in the run's logs"

        # E6 / O2: clearing and re-running the same date sends nothing and decides the same, row for row
        history = "select * from marts.decision_history where decided_at = %s and scope = 'daily' order by cart_id"
        first = db.execute(history, (T,)).fetchall()
        run_dag("cart_recovery_daily", T, db_url, landing, sendgrid_url=sg.url)
        assert len(sg.accepted) == 2
        assert db.execute(history, (T,)).fetchall() == first
        assert {r[0] for r in db.execute("select customer_id from marts.eligible_recipients").fetchall()} == {
            "alice",
            "bob",
        }
        # the run's own schema is dropped once it has sent; the ledger keeps its decisions
        assert db.execute("select count(*) from pg_namespace where nspname like 'run\\_%%'").fetchone()[0] == 0

        # O3: the phase-1 backfill reaches olga's 4-day-old cart; alice and bob are not messaged again
        run_dag("cart_recovery_backfill", T, db_url, landing, sendgrid_url=sg.url, conf={"lookback_days": 7})
        assert sorted(a.to[0] for a in sg.accepted) == ["alice@mail.example", "bob@mail.example", "olga@mail.example"]

        # S3: a dry run the next day renders and records carol's message without sending it ...
        t2 = T + timedelta(days=1)
        run_dag("cart_recovery_daily", t2, db_url, landing, sendgrid_url=sg.url, conf={"dry_run": True})
        assert len(sg.accepted) == 3
        assert db.execute("select customer_id from ops.messages where status = 'dry_run'").fetchall() == [("carol",)]
        # ... and the real run still sends it, once
        run_dag("cart_recovery_daily", t2, db_url, landing, sendgrid_url=sg.url)
        assert [a.to[0] for a in sg.accepted].count("carol@mail.example") == 1
        assert db.execute("select count(*) from ops.messages where status = 'sent'").fetchone()[0] == 4
