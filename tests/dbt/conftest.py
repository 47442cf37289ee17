"""Fixtures for the dbt tests: one fresh database per test module (a "world"), built once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from cart_recovery.devtools.local_pg import create_database, drop_database

# models and seeds only: the data tests run on each world separately (`test_dbt_data_tests_pass`)
MODELS_AND_SEEDS = ["build", "--quiet", "--resource-type", "model", "--resource-type", "seed"]
# models, seeds and every data test (the singular rule tests included): the build raises on a failed test
EVERYTHING = ["build", "--quiet"]


class Warehouse:
    """A fresh database with the raw/ops tables, reachable as its own connection id for run_dbt."""

    def __init__(self, url: str, conn_id: str, target_path: Path, args: list[str] | None = None) -> None:
        self.url = url
        self.conn_id = conn_id
        self.target_path = target_path
        self.args = args or MODELS_AND_SEEDS

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def build(
        self,
        evaluation_time,
        campaigns,
        select: str | None = None,
        args: list[str] | None = None,
        scope: str | None = None,
    ):
        """`scope`: the var decision_scope (`daily`, the models' default, `followups` or `backfill`); the
        campaigns' step flags are set for it as the DAGs set them."""
        from cart_recovery.dbt import run_dbt, run_vars
        from tests.dbt.world import campaigns_var

        vars_ = run_vars(evaluation_time, scope or "daily", campaigns_var(campaigns, scope))
        cli = list(args or self.args)
        if select:
            cli += ["--select", select]
        return run_dbt(cli, vars=vars_, conn_id=self.conn_id, target_path=self.target_path)


@contextmanager
def fresh_warehouse(admin_url: str, target_path: Path, args: list[str] | None = None) -> Iterator[Warehouse]:
    """A new database with the schema applied, dropped on exit; `args` is what `build` runs by default."""
    from cart_recovery.db import ensure_schema

    name = f"cr_dbt_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name)
    conn_id = f"cr_dbt_{uuid.uuid4().hex[:8]}"
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = url
    with psycopg.connect(url) as conn:
        ensure_schema(conn)
    try:
        yield Warehouse(url, conn_id, target_path, args)
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
        drop_database(admin_url, name)


@pytest.fixture(scope="module")
def warehouse(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    with fresh_warehouse(admin_url, tmp_path_factory.mktemp("dbt-target")) as wh:
        yield wh
