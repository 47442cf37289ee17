"""The warehouse connection (contract §1: Airflow connection `cart_recovery_db`) and schema set-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from urllib.parse import quote

import psycopg

CONN_ID = "cart_recovery_db"


def conninfo(conn_id: str = CONN_ID) -> str:
    """A libpq connection string for the warehouse, from the connection (cart_recovery.connections: its
    environment form read directly, so CLI commands work without an Airflow metadata DB)."""
    from cart_recovery.connections import connection_fields

    fields = connection_fields(conn_id)
    if fields.conn_type and fields.conn_type.replace("postgresql", "postgres").split("+")[0] != "postgres":
        raise ValueError(f"connection {conn_id}: expected a postgres connection, got type {fields.conn_type!r}")
    return psycopg.conninfo.make_conninfo(
        host=fields.host or "127.0.0.1",
        port=str(fields.port or 5432),
        user=fields.login,
        password=fields.password,
        dbname=fields.schema,
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
