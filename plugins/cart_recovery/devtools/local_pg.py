"""A local PostgreSQL for the demo and the tests, found or started (README: the main command).

Order: a server answering on 127.0.0.1:5432 with our role; else Debian's cluster, started with
pg_ctlcluster; else the embedded `pgserver` package if installed. Says which one it used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

ROLE = os.environ.get("CR_LOCAL_PG_ROLE", "cart_recovery")
PASSWORD = os.environ.get("CR_LOCAL_PG_PASSWORD", "cart_recovery")


def _can_connect(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5):
            return True
    except psycopg.OperationalError:
        return False


def _make_role() -> None:
    if os.geteuid() != 0 or not shutil.which("runuser"):
        return
    sql = (
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN "
        f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'; END IF; END $$"
    )
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-c", sql], capture_output=True, cwd="/")


def ensure_local_postgres(verbose: bool = True) -> str:
    """Return an admin URL (may CREATE DATABASE) for a running local PostgreSQL."""
    if os.environ.get("CR_ADMIN_PG"):
        return os.environ["CR_ADMIN_PG"]
    url = f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:5432/postgres"
    how = "already running on 127.0.0.1:5432"
    down = subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode != 0
    if down and shutil.which("pg_ctlcluster") and os.path.isdir("/etc/postgresql"):
        for version in sorted(os.listdir("/etc/postgresql")):
            subprocess.run(["pg_ctlcluster", version, "main", "start"], capture_output=True)
        how = "Debian's cluster, started with pg_ctlcluster"
    if not _can_connect(url):
        _make_role()
    if _can_connect(url):
        if verbose:
            print(f"PostgreSQL: {how} ({url.split('@')[1]})", file=sys.stderr)
        return url
    try:  # last resort: an embedded server (listens on a Unix socket)
        import pgserver  # type: ignore[import-not-found]

        srv = pgserver.get_server(os.path.join(os.getcwd(), ".airflow", "pgdata"))
        if verbose:
            print("PostgreSQL: embedded pgserver", file=sys.stderr)
        return srv.get_uri()
    except ImportError:
        pass
    raise RuntimeError(
        "no PostgreSQL found: none answers on 127.0.0.1:5432, Debian's cluster could not be started, and "
        "pgserver is not installed. Start one, or set CR_ADMIN_PG to a URL allowed to create databases."
    )


def create_database(admin_url: str, name: str, drop_first: bool = False) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if drop_first:
            conn.execute(f'drop database if exists "{name}" with (force)')
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'create database "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


if __name__ == "__main__":
    print(ensure_local_postgres())
