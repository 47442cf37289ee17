"""`cart_recovery_attribution` run by Airflow (`airflow dags test`): orders and provider events arrive as
landing files, the outbox holds the daily run's messages of the day before, the DAG loads the files,
builds the attribution models through cosmos and logs yesterday's figures; then a replay of the same date
gives the same rows (O2)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.dags.runner import PROJECT, run_dag

pytestmark = pytest.mark.slow

TA = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # the attribution run: 10:00 in Montréal
D = datetime(2026, 11, 19, 14, 0, tzinfo=UTC)  # yesterday's daily run: 09:00 in Montréal


def message(db, customer_id: str, status: str = "sent", skip_reason: str | None = None) -> str:
    """The outbox row the daily run of D left for this customer (bookstore_daily, step 1, email)."""
    key = f"bookstore_daily:1:k-{customer_id}:v-{customer_id}"
    message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, key))
    db.execute(
        "insert into ops.messages (message_id, idempotency_key, campaign, step, channel, customer_id, cart_id, "
        "cart_version, status, skip_reason, provider_message_id, decided_at) "
        "values (%s, %s, 'bookstore_daily', 1, 'email', %s, %s, %s, %s, %s, %s, %s)",
        (
            message_id,
            key,
            customer_id,
            f"k-{customer_id}",
            f"v-{customer_id}",
            status,
            skip_reason,
            f"pm{customer_id.capitalize()}" if status == "sent" else None,
            D,
        ),
    )
    return message_id


def order(order_id: str, customer_id: str, placed_at: datetime, total: str, status: str = "completed") -> dict:
    return {
        "event_id": f"oe-{order_id}-{status}",
        "order_id": order_id,
        "customer_id": customer_id,
        "cart_id": f"k-{customer_id}",
        "placed_at": placed_at.isoformat(),
        "status": status,
        "store_id": "S1",
        "currency": "CAD",
        "total": total,
        "items": [{"sku": "B1", "quantity": 1, "unit_price": total}],
    }


def sg_event(event: str, customer_id: str, at: datetime, message_id: str | None = None) -> dict:
    e: dict[str, Any] = {
        "sg_event_id": uuid.uuid4().hex,
        "event": event,
        "email": f"{customer_id}@mail.example",
        "timestamp": int(at.timestamp()),
        "sg_message_id": f"pm{customer_id.capitalize()}.filter0001.16648.5515E0B88.0",
    }
    if message_id:
        e.update(message_id=message_id, campaign="bookstore_daily")
    return e


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def marts(db) -> dict[str, list[tuple]]:
    return {
        table: sorted(tuple(str(v) for v in r) for r in db.execute(f"select * from marts.{table}").fetchall())
        for table in (
            "attributed_orders",
            "campaign_performance_daily",
            "campaign_performance_daily_by_segment",
            "campaign_lift",
        )
    }


def test_attribution_dag_attributes_rolls_up_and_replays(airflow_metadata, db_url, db, landing):
    ids = {c: message(db, c) for c in ("alice", "bob", "carol")}
    ids["dan"] = message(db, "dan", status="skipped", skip_reason="holdout")  # E8
    write_jsonl(
        landing / "orders_1.jsonl",
        [
            order("o-alice", "alice", D + timedelta(hours=3), "25.00"),
            order("o-carol", "carol", D + timedelta(hours=2), "40.00"),
            order("o-carol", "carol", D + timedelta(hours=2), "40.00", status="cancelled"),
            order("o-dan", "dan", D + timedelta(hours=4), "15.00"),  # held out: converts, but not attributed
            order("o-eve", "eve", D + timedelta(hours=1), "30.00"),  # no message
        ],
    )
    delivered = sg_event("delivered", "alice", D + timedelta(minutes=5), ids["alice"])
    write_jsonl(
        landing / "provider_events_1.jsonl",
        [
            delivered,
            {**delivered, "sg_event_id": uuid.uuid4().hex},  # re-delivered under a new id (A1)
            sg_event("open", "alice", D + timedelta(hours=1), ids["alice"]),
            sg_event("delivered", "bob", D + timedelta(minutes=6)),  # no custom arg: by SendGrid's id
        ],
    )

    res = run_dag("cart_recovery_attribution", TA, db_url, landing)

    attributed = db.execute(
        "select order_id, message_id::text, campaign, revenue, attributed_at from marts.attributed_orders"
    ).fetchall()
    assert attributed == [("o-alice", ids["alice"], "bookstore_daily", Decimal("25.00"), D + timedelta(hours=3))]
    perf = db.execute(
        "select eligible, held_out, sent, delivered, opened, clicked, orders, conversions, revenue, conversion_rate, "
        "revenue_per_recipient, share_of_attributed_revenue, is_final from marts.campaign_performance_daily "
        "where report_date = %s and campaign = 'bookstore_daily' and step = 1 and channel = 'email'",
        (date(2026, 11, 19),),
    ).fetchall()
    assert perf == [
        (4, 1, 3, 2, 1, 0, 1, 1, Decimal("25.00"), Decimal("0.333333"), Decimal("8.3333"), Decimal("1.000000"), True)
    ]
    lift = db.execute(
        "select treated_recipients, treated_conversions, holdout_recipients, holdout_conversions, lift_status "
        "from marts.campaign_lift where campaign = 'bookstore_daily' and period = 'day'"
    ).fetchall()
    assert lift == [(3, 1, 1, 1, "not_enough_data")]
    log = res.stdout + res.stderr
    assert "attribution summary" in log
    assert "'report_date': '2026-11-19'" in log
    assert "@mail.example" not in log, "O5: no email address in the run's logs"

    # O2: the same date again gives the same rows
    before = marts(db)
    run_dag("cart_recovery_attribution", TA, db_url, landing)
    assert marts(db) == before


def test_attribution_dag_renders_only_the_attribution_models(airflow_metadata):
    """The daily decision path never builds the attribution models; the attribution DAG builds them with
    the staging models they read, and no test of a model it does not build."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT / "dags"))
    attribution = set(bag.get_dag("cart_recovery_attribution").task_ids)
    daily = set(bag.get_dag("cart_recovery_daily").task_ids)
    marts_ = {"attributed_orders", "campaign_performance_daily", "campaign_performance_daily_by_segment"}
    assert {f"build_models.{m}_model_build" for m in [*marts_, "campaign_lift"]} <= attribution
    assert {"load_landing_files", "build_models.stg_shop__order_events_model_build", "summarize_attribution"} <= (
        attribution
    )
    assert not any("abandoned_carts" in t or "eligible" in t for t in attribution)
    assert not any("attribut" in t or "campaign_performance" in t or "lift" in t for t in daily)
    assert "build_models.abandoned_carts_model_build" in daily
    summary = bag.get_dag("cart_recovery_attribution").timetable.summary
    assert "0 10 * * *" in summary
