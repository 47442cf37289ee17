"""Every DAG of contract §3 runs once with the campaigns the project ships (`include/campaigns/`, only
`bookstore_daily` enabled, one step) on a small shop, under `airflow dags test`, and succeeds.

The hourly DAG has nothing to decide with that configuration: its build and send must show as skipped and
the run succeed (it used to fail every hour on an empty campaign list). The others do their job: the daily
run and the backfill send, the attribution run reports.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta

import pytest

from cart_recovery import CAMPAIGNS_DIR
from cart_recovery.campaigns import load_campaigns
from cart_recovery.devtools.sendgrid_standin import SendGridStandin
from tests.dags.runner import run_dag
from tests.dags.test_daily_and_backfill_dags import T, write_shop

pytestmark = pytest.mark.slow


def task_states(dag_id: str) -> dict[str, str]:
    """The states of the latest run's task instances, from the test's Airflow metadata database."""
    db = sqlite3.connect(os.path.join(os.environ["AIRFLOW_HOME"], "airflow.db"))
    try:
        run_id = db.execute(
            "select run_id from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
        ).fetchone()[0]
        return dict(
            db.execute(
                "select task_id, state from task_instance where dag_id = ? and run_id = ?", (dag_id, run_id)
            ).fetchall()
        )
    finally:
        db.close()


def test_every_dag_succeeds_with_the_shipped_campaigns(airflow_metadata, db_url, db, landing):
    shipped = {"AIRFLOW_VAR_CART_RECOVERY_CAMPAIGNS_DIR": str(CAMPAIGNS_DIR)}
    assert [c.name for c in load_campaigns(CAMPAIGNS_DIR) if c.enabled] == ["bookstore_daily"]
    assert len(next(c for c in load_campaigns(CAMPAIGNS_DIR) if c.enabled).steps) == 1
    write_shop(landing)
    with SendGridStandin() as sg:

        def run(dag_id, logical, **kw):
            return run_dag(dag_id, logical, db_url, landing, sendgrid_url=sg.url, extra_env=shipped, **kw)

        run("cart_recovery_ingest", T - timedelta(hours=3))
        assert db.execute("select count(*) from raw.loaded_files").fetchone()[0] == 5

        run("cart_recovery_daily", T)
        assert sorted(a.to[0] for a in sg.accepted) == ["alice@mail.example", "bob@mail.example"]

        # the hourly DAG at the next hour and at the same 09:00: nothing to decide, nothing sent, success
        for logical in (T, T + timedelta(hours=1)):
            res = run("cart_recovery_followups", logical)
            states = task_states("cart_recovery_followups")
            assert states["load_landing_files"] == "success"
            assert states["has_steps_to_decide"] == "success"
            skipped = {t for t, s in states.items() if s == "skipped"}
            assert {"assign_coupons", "send_messages", "summarize_run"} <= skipped
            assert any(t.startswith("build_models.") for t in skipped)
            assert set(states.values()) == {"success", "skipped"}
            assert "build and send skipped" in res.stdout + res.stderr
        assert len(sg.accepted) == 2

        run("cart_recovery_attribution", T + timedelta(days=1, hours=1))
        assert db.execute("select count(*) from marts.campaign_performance_daily").fetchone()[0] >= 1
        assert set(task_states("cart_recovery_attribution").values()) == {"success"}

        run("cart_recovery_backfill", T, conf={"lookback_days": 7})
        assert sorted(a.to[0] for a in sg.accepted) == ["alice@mail.example", "bob@mail.example", "olga@mail.example"]
        for dag_id in ("cart_recovery_daily", "cart_recovery_backfill"):
            assert set(task_states(dag_id).values()) == {"success"}, dag_id
