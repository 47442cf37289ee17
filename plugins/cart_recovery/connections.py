"""Airflow connections (contract §1), one reader for all of them: the warehouse, SendGrid, Twilio, web push,
FCM, the webhook's key and the unsubscribe secret.

At run time only (never when a DAG file is parsed): the environment form `AIRFLOW_CONN_<ID>` is read
directly (JSON `{"conn_type": …, "login": …, "extra": {…}}` or an Airflow URI
`scheme://login:password@host:port/schema?key=value`, query parameters or `__extra__` being extras), so
CLI commands and child processes work without Airflow's metadata database; otherwise Airflow's
`BaseHook.get_connection` resolves it (secrets backends, the metadata database).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass(frozen=True)
class ConnectionFields:
    """The fields of an Airflow connection; `repr` never shows the password (O5)."""

    conn_id: str
    conn_type: str = ""
    login: str = ""
    password: str = field(default="", repr=False)
    host: str = ""
    port: int | None = None
    schema: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _extra(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    if isinstance(value, dict):
        return value
    return json.loads(value)


def parse_connection_env(conn_id: str, raw: str) -> ConnectionFields:
    """An `AIRFLOW_CONN_*` value, JSON or Airflow URI."""
    raw = raw.strip()
    if raw.startswith("{"):
        d = json.loads(raw)
        return ConnectionFields(
            conn_id=conn_id,
            conn_type=d.get("conn_type") or "",
            login=d.get("login") or "",
            password=d.get("password") or "",
            host=d.get("host") or "",
            port=int(d["port"]) if d.get("port") else None,
            schema=d.get("schema") or "",
            extra=_extra(d.get("extra")),
        )
    p = urlsplit(raw)
    query = dict(parse_qsl(p.query, keep_blank_values=True))
    extra = _extra(query.pop("__extra__", None)) or query
    return ConnectionFields(
        conn_id=conn_id,
        conn_type=p.scheme,
        login=unquote(p.username or ""),
        password=unquote(p.password or ""),
        host=unquote(p.hostname or ""),
        port=p.port,
        schema=unquote(p.path.lstrip("/")),
        extra=extra,
    )


def connection_fields(conn_id: str) -> ConnectionFields:
    """The connection `conn_id`, resolved now: its environment form first, else Airflow's."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw:
        return parse_connection_env(conn_id, raw)
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return ConnectionFields(
        conn_id=conn_id,
        conn_type=conn.conn_type or "",
        login=conn.login or "",
        password=conn.password or "",
        host=conn.host or "",
        port=conn.port,
        schema=conn.schema or "",
        extra=_extra(conn.extra_dejson if hasattr(conn, "extra_dejson") else conn.extra),
    )
