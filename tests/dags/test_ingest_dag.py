"""`cart_recovery_ingest` run by Airflow (`airflow dags test`), on a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.cart_recovery.test_ingest import CART, write_world
from tests.dags.runner import run_dag

pytestmark = pytest.mark.slow


def test_ingest_dag_loads_the_landing_folder_and_a_rerun_loads_nothing(airflow_metadata, db_url, db, landing):
    write_world(landing)
    with (landing / "cart_events_0002.jsonl").open("w") as f:
        f.write(json.dumps({**CART, "event_id": "e9", "occurred_at": "yesterday"}) + "\n")
    t = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    res = run_dag("cart_recovery_ingest", t, db_url, landing)
    assert "cart_events_0002.jsonl (cart_events): 0 rows loaded, 1 quarantined" in res.stdout + res.stderr
    assert db.execute("select count(*) from raw.loaded_files").fetchone()[0] == 11
    assert db.execute("select reason from raw.quarantine").fetchall() == [("bad timestamp in occurred_at",)]
    assert "alice@mail.example" not in res.stdout + res.stderr, "O5"

    run_dag("cart_recovery_ingest", t, db_url, landing)
    assert db.execute("select count(*) from raw.cart_events").fetchone()[0] == 1
