"""Run the dbt project in-process (dbtRunner) with a profile derived from the `cart_recovery_db` Airflow
connection: one source of credentials for Python and dbt (contract §1). Used by the CLI, the tests and
the benchmarks; the DAGs run the same project through cosmos (`orchestration.dbt_task_group`)."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from cart_recovery import DBT_PROJECT_DIR
from cart_recovery.db import CONN_ID, conn_params


class DbtError(RuntimeError):
    pass


def _profiles_yml(params: dict[str, str]) -> dict[str, Any]:
    return {
        "cart_recovery": {
            "target": "airflow",
            "outputs": {
                "airflow": {
                    "type": "postgres",
                    "host": params.get("host", "127.0.0.1"),
                    "port": int(params.get("port", 5432)),
                    "user": params.get("user", ""),
                    "password": params.get("password", ""),
                    "dbname": params.get("dbname", ""),
                    "schema": "public",
                    "threads": 4,
                }
            },
        }
    }


def run_dbt(
    args: list[str],
    vars: dict[str, Any] | None = None,
    conn_id: str = CONN_ID,
    target_path: Path | None = None,
) -> Any:
    """Run `dbt <args>`; raise DbtError naming the failed nodes. The password lives only in a temporary
    profiles.yml readable by this user, never in arguments or logs."""
    from dbt.cli.main import dbtRunner

    with tempfile.TemporaryDirectory(prefix="cr-dbt-profile-") as profiles_dir:
        (Path(profiles_dir) / "profiles.yml").write_text(yaml.safe_dump(_profiles_yml(conn_params(conn_id))))
        cli = [*args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", profiles_dir]
        if target_path is not None:
            cli += ["--target-path", str(target_path)]
        if vars:
            cli += ["--vars", json.dumps(vars, default=str)]
        result = dbtRunner().invoke(cli)
    if not result.success:
        failed = []
        for r in getattr(result.result, "results", None) or []:
            if str(getattr(r, "status", "")).lower() in ("error", "fail"):
                failed.append(f"{r.node.unique_id}: {r.message}")
        detail = "; ".join(failed) or repr(result.exception)
        raise DbtError(f"dbt {args[0]} failed: {detail}")
    return result


def build_models(
    evaluation_time: datetime,
    campaigns: list[dict[str, Any]] | None = None,
    select: str | None = None,
    conn_id: str = CONN_ID,
) -> Any:
    """`dbt build` with T and the campaigns' vars (docs/INTERFACES.md)."""
    vars: dict[str, Any] = {"evaluation_time": evaluation_time.isoformat()}
    if campaigns is not None:
        vars["campaigns"] = campaigns
    args = ["build"] + (["--select", select] if select else [])
    return run_dbt(args, vars=vars, conn_id=conn_id)
