"""Run a DAG for real with `airflow dags test` in a subprocess, with the test's database and landing folder."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
AIRFLOW = PROJECT / ".venv" / "bin" / "airflow"


def run_dag(
    dag_id: str,
    logical: datetime,
    db_url: str,
    landing: Path,
    sendgrid_url: str = "http://127.0.0.1:9",
    conf: dict | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: int = 900,
) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        AIRFLOW_CONN_CART_RECOVERY_DB=db_url,
        AIRFLOW_CONN_SENDGRID_DEFAULT=json.dumps({"conn_type": "sendgrid", "host": sendgrid_url, "password": "SG.t"}),
        AIRFLOW_VAR_CART_RECOVERY_LANDING_DIR=str(landing),
        **(extra_env or {}),
    )
    args = [str(AIRFLOW), "dags", "test", dag_id, logical.isoformat()]
    if conf:
        args += ["--conf", json.dumps(conf)]
    res = subprocess.run(args, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout)
    if os.environ.get("CR_TEST_DAG_LOG"):  # debugging aid: the whole output of the last run
        Path(os.environ["CR_TEST_DAG_LOG"]).write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise AssertionError(f"{dag_id} failed (rc={res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res
