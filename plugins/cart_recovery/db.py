"""The warehouse connection (contract §1: Airflow connection `cart_recovery_db`) and schema set-up."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from urllib.parse import quote, unquote, urlsplit

import psycopg

CONN_ID = "cart_recovery_db"


def _conninfo_from_airflow(conn_id: str) -> str:
    # Read at run time only (never at DAG parse time): tasks, CLI commands and tests all come here.
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return psycopg.conninfo.make_conninfo(
        host=conn.host or "127.0.0.1",
        port=str(conn.port or 5432),
        user=conn.login or "",
        password=conn.password or "",
        dbname=conn.schema or "",
    )


def conninfo(conn_id: str = CONN_ID) -> str:
    """A libpq connection string for the warehouse.

    The environment form of the connection (AIRFLOW_CONN_CART_RECOVERY_DB, a URI or JSON) is read
    directly so that CLI commands work without an Airflow metadata DB; otherwise Airflow resolves it.
    """
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw:
        return conninfo_from_env_value(raw)
    return _conninfo_from_airflow(conn_id)


def conninfo_from_env_value(raw: str) -> str:
    raw = raw.strip()
    if raw.startswith("{"):
        d = json.loads(raw)
        return psycopg.conninfo.make_conninfo(
            host=d.get("host") or "127.0.0.1",
            port=str(d.get("port") or 5432),
            user=d.get("login") or "",
            password=d.get("password") or "",
            dbname=d.get("schema") or "",
        )
    parts = urlsplit(raw)
    scheme = parts.scheme.replace("postgresql", "postgres")
    if scheme not in ("postgres", "postgres+psycopg2", "postgres+psycopg"):
        raise ValueError(f"connection {CONN_ID}: expected a postgres URI, got scheme {parts.scheme!r}")
    return psycopg.conninfo.make_conninfo(
        host=parts.hostname or "127.0.0.1",
        port=str(parts.port or 5432),
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        dbname=parts.path.lstrip("/"),
    )


def conn_params(conn_id: str = CONN_ID) -> dict[str, str]:
    """host/port/user/password/dbname for dbt's profile (one source of credentials)."""
    return psycopg.conninfo.conninfo_to_dict(conninfo(conn_id))  # type: ignore[return-value]


def url_of(params: dict[str, str]) -> str:
    user = quote(params.get("user", ""), safe="")
    pw = quote(params.get("password", ""), safe="")
    auth = f"{user}:{pw}@" if pw else (f"{user}@" if user else "")
    return f"postgresql://{auth}{params.get('host', '127.0.0.1')}:{params.get('port', '5432')}/{params['dbname']}"


@contextmanager
def connect(conn_id: str = CONN_ID, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    with psycopg.connect(conninfo(conn_id), autocommit=autocommit) as conn:
        yield conn


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the raw and ops tables if missing. Safe to run concurrently and on every task start."""
    ddl = resources.files("cart_recovery").joinpath("sql/schema.sql").read_text(encoding="utf-8")
    with conn.cursor() as cur:
        # serialise concurrent first runs: `create ... if not exists` races on the catalog
        cur.execute("select pg_advisory_xact_lock(hashtext('cart_recovery.ensure_schema'))")
        cur.execute(ddl)
    conn.commit()
