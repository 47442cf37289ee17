"""Shared fixtures. Airflow reads its settings at import time, so they are set here, first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="cr-test-airflow-"))
os.environ.update(
    AIRFLOW_HOME=str(_HOME),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT / "dags"),
    AIRFLOW__CORE__PLUGINS_FOLDER=str(PROJECT / "plugins"),
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
    AIRFLOW__COSMOS__ENABLE_TELEMETRY="False",
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{_HOME / 'airflow.db'}",
)
sys.path.insert(0, str(PROJECT / "plugins"))

import psycopg  # noqa: E402
import pytest  # noqa: E402

from cart_recovery.devtools.local_pg import create_database, drop_database, ensure_local_postgres  # noqa: E402


@pytest.fixture(scope="session")
def admin_url() -> str:
    return ensure_local_postgres(verbose=False)


@pytest.fixture
def db_url(admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty database, also set as the `cart_recovery_db` connection."""
    name = f"cr_test_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name)
    monkeypatch.setenv("AIRFLOW_CONN_CART_RECOVERY_DB", url)
    yield url
    drop_database(admin_url, name)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the fresh database, with the raw and ops tables created."""
    from cart_recovery.db import ensure_schema

    with psycopg.connect(db_url) as conn:
        ensure_schema(conn)
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    monkeypatch.setenv("AIRFLOW_VAR_CART_RECOVERY_LANDING_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def airflow_metadata() -> Path:
    """Airflow's SQLite metadata DB, migrated once per session (dag.test() needs it)."""
    airflow = shutil.which("airflow", path=str(PROJECT / ".venv" / "bin")) or "airflow"
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return _HOME
