"""Run the dbt project in-process (dbtRunner) with a profile derived from the `cart_recovery_db` Airflow
connection: one source of credentials for Python and dbt (contract §1). Used by the CLI, the tests and
the benchmarks; the DAGs run the same project through cosmos (`orchestration.dbt_task_group`)."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cart_recovery import DBT_PROJECT_DIR
from cart_recovery.db import CONN_ID, conn_params


class DbtError(RuntimeError):
    """A dbt command failed; the message names the failed nodes (never a credential)."""


def profile_mapping(conn_id: str = CONN_ID) -> Any:
    """The cosmos profile mapping for the DAGs: the same `cart_recovery_db` connection, schema `public`
    (the models' custom schemas are used as named, see macros/generate_schema_name.sql)."""
    from cosmos.profiles import PostgresUserPasswordProfileMapping

    return PostgresUserPasswordProfileMapping(conn_id=conn_id, profile_args={"schema": "public"})


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
    """Run `dbt <args>` (target path: a temporary folder unless given); raise DbtError naming the failed
    nodes. The password lives only in a temporary profiles.yml readable by this user, never in arguments
    or logs."""
    from dbt.cli.main import dbtRunner

    with tempfile.TemporaryDirectory(prefix="cr-dbt-profile-") as profiles_dir:
        (Path(profiles_dir) / "profiles.yml").write_text(yaml.safe_dump(_profiles_yml(conn_params(conn_id))))
        # dbt_project/target holds the manifest the DAGs render from: only an explicit target writes there,
        # so tests and CLI runs never race with a DAG run over it
        target = target_path or Path(profiles_dir) / "target"
        cli = [
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            profiles_dir,
            "--target-path",
            str(target),
        ]
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


def run_schema(evaluation_time: datetime, scope: str) -> str:
    """The schema a deciding run builds its T- and scope-dependent models in (dbt var `run_schema`,
    macros/run_schema.sql): one per (scope, T), so overlapping runs never share them (O6)."""
    return f"run_{scope}_{evaluation_time.astimezone(UTC):%Y%m%dt%H%M%S}"


def run_vars(evaluation_time: datetime, scope: str, campaigns: list[dict[str, Any]]) -> dict[str, Any]:
    """The vars every model of a deciding run sees (docs/INTERFACES.md): T, the scope, its schema and the
    campaigns (`cart_recovery.campaigns.to_dbt_vars`)."""
    return {
        "evaluation_time": evaluation_time.isoformat(),
        "decision_scope": scope,
        "run_schema": run_schema(evaluation_time, scope),
        "campaigns": campaigns,
    }


def drop_run_schema(conn: Any, evaluation_time: datetime, scope: str) -> str:
    """Drop a run's schema once it has sent: its tables served the build and the send; the ledgers keep
    what it decided."""
    from psycopg import sql

    name = run_schema(evaluation_time, scope)
    conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(name)))
    conn.commit()
    return name


def build_models(
    evaluation_time: datetime,
    campaigns: list[dict[str, Any]] | None = None,
    select: str | None = None,
    conn_id: str = CONN_ID,
    scope: str = "daily",
) -> Any:
    """`dbt build` with the run's vars (docs/INTERFACES.md)."""
    vars = run_vars(evaluation_time, scope, campaigns or [])
    args = ["build"] + (["--select", select] if select else [])
    return run_dbt(args, vars=vars, conn_id=conn_id)


def write_manifest() -> Path:
    """`dbt parse` into dbt_project/target: the manifest.json cosmos renders the DAGs from. Parsing needs
    no database, so a placeholder connection serves when none is configured."""
    import os

    os.environ.setdefault("AIRFLOW_CONN_CART_RECOVERY_DB", "postgresql://parse:parse@127.0.0.1:5432/parse")
    target = DBT_PROJECT_DIR / "target"
    run_dbt(["parse"], target_path=target)
    return target / "manifest.json"


if __name__ == "__main__":
    print(write_manifest())
