"""The README's main command (`make demo`): a demo bookstore cooperative, its daily run end to end, and
emails you can open.

Steps: find or start a local PostgreSQL; create a fresh `cart_recovery_demo` database; prepare Airflow with
SQLite metadata in `.airflow/home`; generate the demo shop into `var/landing`; start the local SendGrid
stand-in (writes `var/outbox/*.eml` and `*.html`); run `airflow dags test cart_recovery_daily <T>`; print
what happened. Everything is local; nothing reaches the internet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from cart_recovery import PROJECT_DIR
from cart_recovery.devtools.local_pg import create_database, ensure_local_postgres
from cart_recovery.devtools.sendgrid_standin import standin_subprocess

VENV_BIN = PROJECT_DIR / ".venv" / "bin"
DEFAULT_T = "2026-11-20T14:00:00+00:00"  # 09:00 in Montréal


def airflow_env(home: Path, db_url: str, sendgrid_url: str, landing: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_DIR / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(PROJECT_DIR / "plugins"),
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__COSMOS__ENABLE_TELEMETRY="False",
        AIRFLOW_CONN_CART_RECOVERY_DB=db_url,
        AIRFLOW_CONN_SENDGRID_DEFAULT=json.dumps(
            {"conn_type": "sendgrid", "host": sendgrid_url, "password": "SG.local-demo"}
        ),
        AIRFLOW_VAR_CART_RECOVERY_LANDING_DIR=str(landing),
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    return env


def step(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--date", default=DEFAULT_T, help="T, the daily run's data-interval end (default: %(default)s)")
    ap.add_argument("--scale", type=float, default=1.0, help="demo shop size (1.0: thousands of customers)")
    ap.add_argument("--var-dir", type=Path, default=PROJECT_DIR / "var")
    args = ap.parse_args(argv)
    t = datetime.fromisoformat(args.date).astimezone(UTC)

    step("PostgreSQL")
    admin = ensure_local_postgres(verbose=True)
    db_url = create_database(admin, "cart_recovery_demo", drop_first=True)
    print("warehouse: database cart_recovery_demo (fresh)")

    var = args.var_dir.resolve()
    landing, outbox = var / "landing", var / "outbox"
    for folder in (landing, outbox):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    step(f"demo shop into {landing}")
    from cart_recovery.demo.generate import generate

    counts = generate(landing, scale=args.scale, seed=42, end=t, days=3)
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))

    step("local SendGrid stand-in")
    with standin_subprocess("--outbox-dir", str(outbox)) as sendgrid_url:
        print(f"listening on {sendgrid_url}, writing {outbox}")

        home = PROJECT_DIR / ".airflow" / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = airflow_env(home, db_url, sendgrid_url, landing)
        step(f"Airflow metadata (SQLite) in {home}")
        subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)

        step(f"airflow dags test cart_recovery_daily {t.isoformat()}")
        started = time.monotonic()
        res = subprocess.run(
            [str(VENV_BIN / "airflow"), "dags", "test", "cart_recovery_daily", t.isoformat()],
            env=env,
            capture_output=True,
            text=True,
        )
        log_path = var / "daily_run.log"
        log_path.write_text(res.stdout + res.stderr)
        if res.returncode != 0:
            print(res.stdout[-3000:], res.stderr[-3000:], sep="\n", file=sys.stderr)
            print(f"the daily run failed; its full log is {log_path}", file=sys.stderr)
            return 1
        print(f"done in {time.monotonic() - started:.0f} s; log: {log_path}")

    step("what happened")
    report(db_url, outbox)
    return 0


def report(db_url: str, outbox: Path) -> None:
    import psycopg

    with psycopg.connect(db_url) as conn:
        for title, sql in (
            (
                "files loaded",
                "select kind, count(*), sum(rows_loaded), sum(rows_quarantined) from raw.loaded_files "
                "group by kind order by kind",
            ),
            ("abandoned carts", "select count(*), count(*) filter (where is_targetable) from marts.abandoned_carts"),
            ("messages", "select campaign, status, count(*) from ops.messages group by 1, 2 order by 1, 2"),
            (
                "not messaged, by reason",
                "select reason, count(*) from marts.recipient_exclusions group by 1 order by 2 desc",
            ),
        ):
            print(f"{title}:")
            for row in conn.execute(sql).fetchall():
                print("   ", " | ".join(str(v) for v in row))
    emails = sorted(outbox.glob("*.html"))
    print(f"\n{len(emails)} emails in {outbox} — open one in a browser, e.g.:")
    for path in emails[:3]:
        print(f"    file://{path}")
    print("Why did customer X get nothing?  select * from marts.recipient_exclusions where customer_id = 'X';")


if __name__ == "__main__":
    sys.exit(main())
