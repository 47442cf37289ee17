"""The README's main command (`make demo`): a demo bookstore cooperative, its daily run end to end, emails
you can open, the customers' responses and the performance report.

Steps: find or start a local PostgreSQL; create a fresh `cart_recovery_demo` database; prepare Airflow with
SQLite metadata in `.airflow/home`; generate the demo shop into `var/landing`; start the local SendGrid
stand-in (writes `var/outbox/*.eml` and `*.html`); run `airflow dags test cart_recovery_daily <T>`; simulate
the customers' responses to the messages sent (`cart_recovery.demo.responses`: SendGrid events and orders
within 24 h, as landing files); run `airflow dags test cart_recovery_attribution <T'>` with T' the next
day's 10:00 America/Toronto; write the static report (`var/report/index.html`, A5); print what happened.
Everything is local; nothing reaches the internet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cart_recovery import PROJECT_DIR
from cart_recovery.devtools.local_pg import create_database, ensure_local_postgres
from cart_recovery.devtools.sendgrid_standin import standin_subprocess

VENV_BIN = PROJECT_DIR / ".venv" / "bin"
DEFAULT_T = "2026-11-20T14:00:00+00:00"  # 09:00 in Montréal
SHOP_TZ = ZoneInfo("America/Toronto")


def attribution_t(t: datetime) -> datetime:
    """The attribution run after the daily run at T: the next day's 10:00 in Toronto, when the 24 h window
    of T's messages has closed (dags/cart_recovery_attribution.py)."""
    next_day = t.astimezone(SHOP_TZ).date() + timedelta(days=1)
    return datetime.combine(next_day, datetime.min.time().replace(hour=10), SHOP_TZ).astimezone(UTC)


def run_dag(dag_id: str, t: datetime, env: dict[str, str], log_path: Path) -> bool:
    """`airflow dags test <dag_id> <t>`; its output goes to `log_path`; False (and the tail printed) on failure."""
    step(f"airflow dags test {dag_id} {t.isoformat()}")
    started = time.monotonic()
    res = subprocess.run(
        [str(VENV_BIN / "airflow"), "dags", "test", dag_id, t.isoformat()], env=env, capture_output=True, text=True
    )
    log_path.write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        print(res.stdout[-3000:], res.stderr[-3000:], sep="\n", file=sys.stderr)
        print(f"{dag_id} failed; its full log is {log_path}", file=sys.stderr)
        return False
    print(f"done in {time.monotonic() - started:.0f} s; log: {log_path}")
    return True


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

        if not run_dag("cart_recovery_daily", t, env, var / "daily_run.log"):
            return 1

    step("the customers respond (simulated): provider events and orders within 24 h")
    import psycopg

    from cart_recovery.demo.responses import write_responses

    with psycopg.connect(db_url) as conn:
        responses = write_responses(conn, landing, t, seed=7)
    files = responses.pop("files")
    print(", ".join(f"{k}: {v}" for k, v in responses.items()))
    for path in files.values():
        print(f"    {path}")

    t_attr = attribution_t(t)
    if not run_dag("cart_recovery_attribution", t_attr, env, var / "attribution_run.log"):
        return 1

    step("what happened")
    report(db_url, outbox)
    step("performance report (A5)")
    report_path = var / "report" / "index.html"
    performance_report(db_url, report_path)
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


def performance_report(db_url: str, path: Path) -> None:
    """Write the static report and print its headline figures (the same numbers the page shows)."""
    import psycopg

    from cart_recovery.reporting.dashboard import fmt_count, fmt_money, fmt_percent, write_report

    with psycopg.connect(db_url) as conn:
        d = write_report(conn, path)
    day = d.headline.get("day") or {}
    if not day:
        print("no attribution figures yet")
    else:
        print(
            f"report day {d.day}: sent {fmt_count(day['sent'])}, delivered {fmt_count(day['delivered'])}, "
            f"opened {fmt_count(day['opened'])}, clicked {fmt_count(day['clicked'])}, "
            f"orders {fmt_count(day['orders'])}, revenue {fmt_money(day['revenue'])}, "
            f"conversion rate {fmt_percent(day['conversion_rate'])}, "
            f"revenue per recipient {fmt_money(day['revenue_per_recipient'])}"
        )
        for row in d.lift:
            if row["period"] == "all_time":
                verdict = row["lift_status"].replace("_", " ")
                print(f"lift of {row['campaign']} against its holdout (all time): {verdict}")
    print(f"report: file://{path}")
    print("in the Airflow UI: the 'Cart recovery' entry (/cart-recovery/dashboard), see docs/DASHBOARD.md")


if __name__ == "__main__":
    sys.exit(main())
