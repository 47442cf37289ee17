"""The README's second demo command (`make demo-followups`): the `multi_touch` sequence (F1) run for real on a
small demo shop over a simulated day — push, then SMS, then email — and each channel's messages to read.

Steps: a fresh `cart_recovery_demo_followups` database; fresh SQLite Airflow metadata in
`.airflow/home_followups` (each hour's run is a new DAG run); four customers written as landing files into
`var/landing_followups/`; the campaign files with `multi_touch` enabled (no holdout, so the day is
deterministic) in a temporary folder; the local Twilio / web push / FCM stand-ins and the SendGrid stand-in,
writing what they accept to `var/outbox_followups/` (`sms/*.txt`, `push/*.json`, `*.html` and `*.eml`); then
`airflow dags test cart_recovery_followups <T>` at the Toronto hours where the steps fall due, and what
happened. The customers (all in Montréal, every channel consented to):

- ana: abandons at 09:30 — push at 12:00, SMS at 15:00, email the next day at 11:00 (F1);
- ben: abandons at 09:30, gets the push, buys at 13:00 — leaves the sequence (F2);
- eve: abandons at 09:30 with no push subscription — her push step is skipped, the SMS comes next (F3);
- dee: abandons at 17:30 — push at 20:00; her SMS is due at 23:00, in quiet hours: sent at 08:00 (F4).

Everything is local; nothing reaches the internet.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from cart_recovery import CAMPAIGNS_DIR, PROJECT_DIR
from cart_recovery.devtools.channel_standins import ChannelStandins, make_vapid_key
from cart_recovery.devtools.demo_run import VENV_BIN, airflow_env, run_dag, step
from cart_recovery.devtools.local_pg import create_database, ensure_local_postgres
from cart_recovery.devtools.sendgrid_standin import SendGridStandin

SHOP_TZ = ZoneInfo("America/Toronto")
DATABASE = "cart_recovery_demo_followups"
# Montréal in November: UTC-5
MORNING = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)  # 09:30 local: ana's, ben's and eve's carts
EVENING = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # 17:30 local: dee's cart
PHONES = {"ana": "+15145550101", "ben": "+15145550102", "dee": "+15145550104", "eve": "+15145550105"}
# (local day of November, local hour, what falls due) — the hours the steps fall due (F1, F4)
HOURS = [
    (20, 12, "push for ana, ben (09:30 + 60 min abandonment + 60 min delay); eve has no subscription (F3)"),
    (20, 15, "SMS for ana and eve, 3 h after step 1; ben bought at 13:00 (F2)"),
    (20, 20, "push for dee (17:30 + 2 h)"),
    (20, 23, "dee's SMS is due, but it is 23:00 in Montréal: deferred to 08:00 (F4)"),
    (21, 8, "dee's deferred SMS"),
    (21, 11, "email for ana and eve with the tiered coupon, 20 h after their SMS"),
]


def write_campaigns(folder: Path, **changes: object) -> Path:
    """The shipped campaign files, multi_touch enabled without holdout (the walk is deterministic) and with
    `changes` to its keys. Also the simulated day of tests/dags/test_followups_dag.py."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("bookstore_daily", "multi_touch"):
        raw = yaml.safe_load((CAMPAIGNS_DIR / f"{name}.yml").read_text(encoding="utf-8"))
        if name == "multi_touch":
            raw.update(enabled=True, holdout_percent=0, **changes)
        (folder / f"{name}.yml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return folder


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_shop(landing: Path, ch: ChannelStandins) -> dict[str, str]:
    """One store, three books, four customers (see the module's doc), their carts and ben's order; returns
    each customer's web push endpoint id (eve has none). Also the world of tests/dags/test_followups_dag.py."""
    stamp = "2026-01-01T00:00:00Z"
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
                "image_url": "https://i.example/x.jpg",
                "product_url": "https://p.example/x",
                "price": "30.00",
                "currency": "CAD",
                "updated_at": stamp,
            }
            for i in range(1, 4)
        ],
    )
    people = list(PHONES)
    write_csv(
        landing / "customers_1.csv",
        [
            {
                "customer_id": c,
                "email": f"{c}@mail.example",
                "phone": PHONES[c],
                "first_name": c.capitalize(),
                "last_name": "Roy",
                "locale": "fr",
                "customer_type": "consumer",
                "institution_kind": "",
                "preferred_store_id": "S1",
                "updated_at": stamp,
            }
            for c in people
        ],
    )
    write_csv(
        landing / "consents_1.csv",
        [
            {
                "customer_id": c,
                "channel": channel,
                "status": "granted",
                "basis": "express",
                "recorded_at": stamp,
                "source": "signup",
            }
            for c in people
            for channel in ("email", "sms", "push")
        ],
    )
    # browser subscriptions made by the push stand-in, which keeps their keys to decrypt what it receives
    endpoints = {c: f"wp-{c}" for c in people if c != "eve"}  # eve: her push step is skipped, SMS next (F3)
    subs = [
        {
            "customer_id": c,
            "kind": "web",
            **ch.new_web_subscription(endpoint),
            "status": "active",
            "recorded_at": stamp,
        }
        for c, endpoint in endpoints.items()
    ]
    write_csv(landing / "push_subscriptions_1.csv", subs)

    def cart(c: str, at: datetime) -> dict:
        items = [{"sku": s, "quantity": 1, "unit_price": "30.00", "added_at": at.isoformat()} for s in ("B1", "B2")]
        return {
            "event_id": f"ev-{c}",
            "event_type": "cart_updated",
            "occurred_at": at.isoformat(),
            "cart_id": f"k-{c}",
            "customer_id": c,
            "device": "mobile",
            "store_id": "S1",
            "currency": "CAD",
            "cart_url": f"https://shop.example/cart/k-{c}",
            "items": items,
        }

    events = [cart("ana", MORNING), cart("ben", MORNING), cart("dee", EVENING), cart("eve", MORNING)]
    (landing / "cart_events_1.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")
    order = {
        "event_id": "oe-ben",
        "order_id": "o-ben",
        "customer_id": "ben",
        "cart_id": "k-ben",
        "placed_at": (MORNING + timedelta(hours=3, minutes=30)).isoformat(),  # 13:00 local: after the push
        "status": "completed",
        "store_id": "S1",
        "currency": "CAD",
        "total": "60.00",
        "items": [{"sku": s, "quantity": 1, "unit_price": "30.00"} for s in ("B1", "B2")],
    }
    (landing / "orders_1.jsonl").write_text(json.dumps(order) + "\n", encoding="utf-8")
    return endpoints


def print_table(header: tuple[str, ...], rows: list[tuple]) -> None:
    cells = [header, *[tuple("" if v is None else str(v) for v in r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, r in enumerate(cells):
        print("    " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            print("    " + "  ".join("-" * w for w in widths))


def local(ts: datetime | None) -> str:
    return ts.astimezone(SHOP_TZ).strftime("%d %H:%M") if ts else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--var-dir", type=Path, default=PROJECT_DIR / "var")
    args = ap.parse_args(argv)

    import psycopg

    from cart_recovery.channels import mask_email, mask_phone
    from cart_recovery.db import ensure_schema

    step("PostgreSQL")
    admin = ensure_local_postgres(verbose=True)
    db_url = create_database(admin, DATABASE, drop_first=True)
    with psycopg.connect(db_url) as conn:
        ensure_schema(conn)
    print(f"warehouse: database {DATABASE} (fresh)")

    var = args.var_dir.resolve()
    landing, outbox = var / "landing_followups", var / "outbox_followups"
    for folder in (landing, outbox):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    logs = var / "followups_logs"
    logs.mkdir(parents=True, exist_ok=True)

    # a fresh metadata DB: the hours' DAG runs are new each time the demo runs
    home = PROJECT_DIR / ".airflow" / "home_followups"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)

    exclusions: dict[tuple, str] = {}  # (customer, step, reason) -> the first hour it was seen
    with (
        tempfile.TemporaryDirectory(prefix="cr-demo-campaigns-") as tmp,
        ChannelStandins(outbox_dir=outbox) as ch,
        SendGridStandin(outbox_dir=outbox) as sg,
    ):
        campaigns = write_campaigns(Path(tmp) / "campaigns")
        step(f"demo shop (4 customers) into {landing}; multi_touch enabled in {campaigns}")
        write_shop(landing, ch)
        print(f"channel stand-ins (Twilio, web push, FCM) on {ch.url}, SendGrid stand-in on {sg.url}")
        print(f"writing {outbox}")

        private, _ = make_vapid_key()
        env = airflow_env(home, db_url, sg.url, landing)
        env.update(
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
            AIRFLOW_VAR_CART_RECOVERY_CAMPAIGNS_DIR=str(campaigns),
            AIRFLOW_CONN_TWILIO_DEFAULT=json.dumps(
                {"login": "ACdemo", "password": "t", "host": ch.url, "extra": {"from_number": "+15145550000"}}
            ),
            AIRFLOW_CONN_WEBPUSH_DEFAULT=json.dumps({"password": private, "extra": {"subject": "mailto:r@l.example"}}),
            AIRFLOW_CONN_FCM_DEFAULT=json.dumps({"host": ch.url, "password": json.dumps(ch.service_account_info())}),
            CR_UNSUBSCRIBE_SECRET=env.get("CR_UNSUBSCRIBE_SECRET", "local-demo-secret"),
        )
        step(f"Airflow metadata (SQLite) in {home}")
        subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)

        for day, hour, why in HOURS:
            t = datetime(2026, 11, day, hour, tzinfo=SHOP_TZ).astimezone(UTC)
            print(f"\n-- {day} Nov {hour:02d}:00 Montréal: {why}")
            before = (len(ch.webpush), len(ch.sms), len(sg.accepted))
            # `airflow dags test` takes the logical date; the hourly timetable's interval ends there
            if not run_dag("cart_recovery_followups", t, env, logs / f"followups_{day}_{hour:02d}.log"):
                return 1
            print(
                f"received: push {len(ch.webpush) - before[0]}, SMS {len(ch.sms) - before[1]}, "
                f"email {len(sg.accepted) - before[2]}"
            )
            # the exclusions mart is rebuilt every run: keep what each hour said about the sequence
            with psycopg.connect(db_url) as conn:
                for customer, step_no, reason in conn.execute(
                    "select customer_id, step, reason from marts.recipient_exclusions "
                    "where campaign = 'multi_touch' order by 1, 2"
                ):
                    exclusions.setdefault((customer, step_no, reason), f"{day} {hour:02d}:00")

    step("what happened (multi_touch; times in Montréal, 20-21 Nov)")
    with psycopg.connect(db_url) as conn:
        print("messages by step, channel and status:")
        print_table(
            ("step", "channel", "status", "skip_reason", "count"),
            conn.execute(
                "select step, channel, status, skip_reason, count(*) from ops.messages "
                "where campaign = 'multi_touch' group by 1, 2, 3, 4 order by 1, 2, 3, 4"
            ).fetchall(),
        )
        contacts = {c: (mask_email(f"{c}@mail.example"), mask_phone(p)) for c, p in PHONES.items()}
        print("\neach customer's messages:")
        rows = conn.execute(
            "select customer_id, step, channel, status, skip_reason, decided_at, send_after, coupon_code "
            "from ops.messages where campaign = 'multi_touch' order by customer_id, step"
        ).fetchall()
        print_table(
            ("customer", "to", "step", "channel", "status", "skip_reason", "decided", "send_after", "coupon"),
            [
                (
                    c,
                    contacts[c][1] if ch_ == "sms" else contacts[c][0] if ch_ == "email" else "",
                    s,
                    ch_,
                    st,
                    sr,
                    local(dec),
                    local(sa),
                    cc,
                )
                for c, s, ch_, st, sr, dec, sa, cc in rows
            ],
        )
    print("\nnot messaged further, with the reason (marts.recipient_exclusions, first hour seen):")
    print_table(("customer", "step", "reason", "seen at"), [(*k, v) for k, v in sorted(exclusions.items())])

    print(f"\nwhat each channel received, in {outbox}:")
    for title, pattern in (
        ("SMS (Twilio stand-in)", "sms/*.txt"),
        ("push payloads (web push stand-in)", "push/*.json"),
        ("emails (SendGrid stand-in)", "*.html"),
        ("", "*.eml"),
    ):
        files = sorted(outbox.glob(pattern))
        if title:
            print(f"  {title}: {len(files)}")
        for path in files:
            print(f"    {path}")
    print(f"DAG logs: {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
