"""A whole day end to end (issue 4: "a 100k-message day end to end in under 5 minutes on this machine").

A demo cooperative sized so that its daily run sends about `--target` emails (default 100k) is generated
into a landing folder (not timed: the exporter's work), then `airflow dags test cart_recovery_daily T` runs,
as `make demo` does: load the landing files -> dbt models (cosmos) -> coupons -> render and send every
message to the SendGrid stand-in in its own process (0 ms latency, writing no files: SendGrid is a remote
server) -> the run summary. Timed from the command's start to its end, i.e. from landing files to the last
message; the phases come from Airflow's task instances (each phase is the span from its first task's start
to its last task's end).

The shop: `generate(scale, days=1, abandon_share=…)` — one day of carts, most of them left in the cart
(the generator's `abandon_share`), so that ~100k eligible carts need a shop of about 1M customers rather
than several. Figures merged into bench/results/latest.json: `day_100k_s` (the DAG run, seconds),
`day_100k_messages` (messages sent), `day_100k_phases_s`, the load average next to them.

    .venv/bin/python bench/bench_day.py                 # ~100k messages
    .venv/bin/python bench/bench_day.py --scale 2       # a quick look (~2.8k messages), results not recorded
    .venv/bin/python bench/bench_day.py --compare       # then ingest + one dbt build outside Airflow
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from results import record  # noqa: E402

from cart_recovery import PROJECT_DIR  # noqa: E402
from cart_recovery.devtools.demo_run import airflow_env  # noqa: E402
from cart_recovery.devtools.local_pg import create_database, drop_database, ensure_local_postgres  # noqa: E402
from cart_recovery.devtools.sendgrid_standin import standin_subprocess  # noqa: E402

T = "2026-11-20T14:00:00+00:00"  # 09:00 in Montréal
AIRFLOW = PROJECT_DIR / ".venv" / "bin" / "airflow"
# eligible emails per unit of scale with --abandon-share 0.9 and one day (measured: 98,929 at scale 70.8,
# 5,648 at scale 4)
ELIGIBLE_PER_SCALE = 1397

STALE_KEYS = ("day_100k_airflow_overhead_s", "day_100k_cart_events")  # an earlier draft's names
PHASES = {
    "ingest": ("load_landing_files",),
    "dbt": ("build_models.",),
    "coupons": ("assign_coupons",),
    "send": ("send_messages",),
    "export": ("export_retargeting_audience",),  # F5, beside the send
    "summary": ("summarize_run",),
}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def task_spans(airflow_db: Path, dag_id: str) -> list[tuple[str, datetime, datetime]]:
    """(task_id, start, end) of every task instance of the (only) run in this Airflow home, in start order."""
    with sqlite3.connect(airflow_db) as db:
        rows = db.execute(
            "select task_id, start_date, end_date from task_instance "
            "where dag_id = ? and start_date is not null and end_date is not null order by start_date",
            (dag_id,),
        ).fetchall()
    return [(t, _utc(s), _utc(e)) for t, s, e in rows]


def _utc(value: str) -> datetime:
    d = datetime.fromisoformat(value)
    return d if d.tzinfo else d.replace(tzinfo=UTC)  # Airflow stores UTC in SQLite without an offset


def phases(spans: list[tuple[str, datetime, datetime]]) -> dict[str, float]:
    """Wall span of each phase: from its first task's start to its last task's end."""
    bounds: dict[str, list[datetime]] = {}
    other = 0.0
    for task_id, s, e in spans:
        phase = next((p for p, prefixes in PHASES.items() if task_id.startswith(prefixes)), None)
        if phase is None:  # a task this benchmark does not know yet: its own time, not lost in "between"
            other += (e - s).total_seconds()
            continue
        span = bounds.setdefault(phase, [s, e])
        span[0], span[1] = min(span[0], s), max(span[1], e)
    out = {p: round((bounds[p][1] - bounds[p][0]).total_seconds(), 1) for p in PHASES if p in bounds}
    if other:
        out["other_tasks"] = round(other, 1)
    return out


def dbt_detail(spans: list[tuple[str, datetime, datetime]]) -> dict[str, Any]:
    """Where the dbt phase goes: its tasks' own time against the phase's span, and the slowest tasks."""
    dbt = [(t.removeprefix("build_models."), (e - s).total_seconds()) for t, s, e in spans if t.startswith("build_")]
    if not dbt:
        return {}
    durations = sorted(d for _, d in dbt)
    return {
        "tasks": len(dbt),
        "task_seconds_sum": round(sum(durations), 1),
        "task_seconds_median": round(durations[len(durations) // 2], 1),
        "slowest": {t: round(d, 1) for t, d in sorted(dbt, key=lambda x: -x[1])[:6]},
    }


def snapshot(dest: Path, rev: str = "HEAD") -> tuple[Path, str]:
    """A commit as files (`git archive`), run with the checkout's virtualenv; returns (folder, commit)."""
    dest.mkdir(parents=True)
    commit = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    tar = subprocess.run(["git", "-C", str(PROJECT_DIR), "archive", "--format=tar", rev], capture_output=True)
    tar.check_returncode()
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar.stdout, check=True)
    return dest, commit


def project_env(env: dict[str, str], project: Path) -> dict[str, str]:
    """Point Airflow and Python at `project`'s DAGs and package (the checkout's, or a snapshot's)."""
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(project / "dags")
    env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(project / "plugins")
    env["PYTHONPATH"] = os.pathsep.join([str(project / "plugins"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def outside_airflow(admin: str, landing: Path) -> dict[str, Any]:
    """The same day's ingest and dbt build outside Airflow, in a fresh database: `load_landing` in this
    process, then one `dbt build` invocation of the nodes the DAG renders (every node but the attribution
    models), with the same vars. What the DAG's ingest and dbt phases would cost without Airflow's task
    start-up and cosmos's one task (one dbt start-up, one parse) per model and test."""

    from cart_recovery.campaigns import load_campaigns, to_dbt_vars
    from cart_recovery.dbt import run_dbt, run_vars
    from cart_recovery.ingest import load_landing

    name = f"cr_bench_day_cmp_{uuid.uuid4().hex[:6]}"
    url = create_database(admin, name)
    saved = os.environ.get("AIRFLOW_CONN_CART_RECOVERY_DB")
    os.environ["AIRFLOW_CONN_CART_RECOVERY_DB"] = url
    target = Path(tempfile.mkdtemp(prefix="cr_bench_day_dbt_"))
    try:
        t0 = time.perf_counter()
        with psycopg.connect(url) as conn:
            report = load_landing(landing, conn)
        ingest_s = time.perf_counter() - t0
        campaigns = to_dbt_vars([c for c in load_campaigns() if c.enabled and c.cadence == "daily"])
        t0 = time.perf_counter()
        run_dbt(
            ["build", "--quiet", "--exclude", "tag:attribution"],
            vars=run_vars(datetime.fromisoformat(T), "daily", campaigns),
            target_path=target,
        )
        dbt_s = time.perf_counter() - t0
        results = json.loads((target / "run_results.json").read_text())["results"]
        with psycopg.connect(url) as conn:
            eligible = conn.execute("select count(*) from marts.eligible_recipients").fetchone()[0]
        return {
            "ingest_s": round(ingest_s, 1),
            "ingest_rows": report.rows_loaded,
            "dbt_build_s": round(dbt_s, 1),
            "dbt_nodes": len(results),
            "dbt_nodes_execution_s_sum": round(sum(r["execution_time"] for r in results), 1),
            "dbt_slowest": {
                r["unique_id"].split(".")[-1]: round(r["execution_time"], 1)
                for r in sorted(results, key=lambda r: -r["execution_time"])[:6]
            },
            "eligible_recipients": eligible,
            "load_avg_after": load(),
        }
    finally:
        if saved is None:
            os.environ.pop("AIRFLOW_CONN_CART_RECOVERY_DB", None)
        else:
            os.environ["AIRFLOW_CONN_CART_RECOVERY_DB"] = saved
        drop_database(admin, name)
        shutil.rmtree(target, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=int, default=100_000, help="emails the day should send (sets the scale)")
    ap.add_argument("--scale", type=float, default=None, help="the generator's scale (overrides --target)")
    ap.add_argument("--abandon-share", type=float, default=0.9, help="the generator's share of carts left")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--keep", action="store_true", help="keep the database and the landing folder")
    ap.add_argument("--no-record", action="store_true", help="print the figures, leave latest.json alone")
    ap.add_argument(
        "--compare",
        action="store_true",
        help="then the same ingest and one dbt build outside Airflow, in a fresh database (minutes more)",
    )
    ap.add_argument(
        "--head",
        action="store_const",
        const="HEAD",
        dest="rev",
        help="run the committed HEAD (a `git archive` snapshot) instead of the working tree: edits in progress "
        "in a shared checkout then cannot leak into the run",
    )
    ap.add_argument("--rev", help="run this commit (a `git archive` snapshot) instead of the working tree")
    ap.add_argument("--compare-only", type=Path, help=argparse.SUPPRESS)  # internal: the --compare child
    args = ap.parse_args()
    if args.compare_only:
        print(json.dumps(outside_airflow(ensure_local_postgres(verbose=False), args.compare_only)))
        return 0
    scale = args.scale or args.target / ELIGIBLE_PER_SCALE
    from cart_recovery.demo.generate import generate

    admin = ensure_local_postgres(verbose=False)
    name = f"cr_bench_day_{uuid.uuid4().hex[:6]}"
    db_url = create_database(admin, name)
    work = Path(tempfile.mkdtemp(prefix="cr_bench_day_"))
    landing, home = work / "landing", work / "airflow"
    home.mkdir(parents=True)
    ok = False
    try:
        project, commit = PROJECT_DIR, "working tree"
        if args.rev:
            project, commit = snapshot(work / "src", args.rev)
        t0 = time.perf_counter()
        counts = generate(
            landing,
            scale=scale,
            seed=args.seed,
            end=datetime.fromisoformat(T),
            days=1,
            abandon_share=args.abandon_share,
        )
        print(f"demo shop at scale {scale:g}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        print(f"generated in {time.perf_counter() - t0:.0f} s (not timed: the exporter's work)", flush=True)

        with standin_subprocess("--no-files", "--latency-ms", "0") as sendgrid_url:
            env = project_env(airflow_env(home, db_url, sendgrid_url, landing), project)
            if args.rev:  # cosmos renders from the manifest: the snapshot's own
                subprocess.run(
                    [sys.executable, "-m", "cart_recovery.dbt"], env=env, cwd=project, check=True, capture_output=True
                )
            subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True)
            before = load()
            print(f"airflow dags test cart_recovery_daily {T} (load average {before})", flush=True)
            started_at = datetime.now(UTC)  # only to split the run's wall time into phases, never a decision
            t0 = time.perf_counter()
            res = subprocess.run(
                [str(AIRFLOW), "dags", "test", "cart_recovery_daily", T],
                env=env,
                cwd=project,
                capture_output=True,
                text=True,
            )
            day_s = time.perf_counter() - t0
            after = load()
        (work / "daily_run.log").write_text(res.stdout + res.stderr)
        if res.returncode != 0:
            print(res.stdout[-3000:], res.stderr[-3000:], sep="\n", file=sys.stderr)
            print(f"the daily run failed; log: {work / 'daily_run.log'}", file=sys.stderr)
            return 1
        with psycopg.connect(db_url) as conn:
            by_status = dict(
                conn.execute(
                    "select status, count(*) from ops.messages where decided_at = %s group by 1", (T,)
                ).fetchall()
            )
            cart_events = conn.execute("select count(*) from raw.cart_events").fetchone()[0]
        sent = by_status.get("sent", 0)
        spans = task_spans(home / "airflow.db", "cart_recovery_daily")
        by_phase = phases(spans)
        dbt = dbt_detail(spans)
        start_up = (spans[0][1] - started_at).total_seconds() if spans else 0.0
        between = day_s - start_up - sum(by_phase.values())
        send_rate = sent / by_phase["send"] if by_phase.get("send") else 0.0
        print(f"day: {day_s:.0f} s for {sent:,} messages sent ({by_status}); {cart_events:,} cart events loaded")
        print("phases (s): " + ", ".join(f"{k} {v}" for k, v in by_phase.items()))
        print(f"  code: {commit}; before the first task (Airflow start-up, DAG parsing): {start_up:.1f} s")
        print(f"  between and around the phases: {between:.1f} s")
        print(f"  send: {send_rate:.0f} msg/s inside the DAG run")
        if dbt:
            print(
                f"  dbt: {dbt['tasks']} tasks, their own time {dbt['task_seconds_sum']} s of the phase's "
                f"{by_phase.get('dbt')} s, median {dbt['task_seconds_median']} s per task; slowest: "
                + ", ".join(f"{k} {v}" for k, v in dbt["slowest"].items())
            )
        print(f"load average before {before}, after {after}")
        figures: dict[str, Any] = {
            "day_100k_s": round(day_s, 1),
            "day_100k_messages": sent,
            "day_100k_phases_s": {**by_phase, "airflow_start_up": round(start_up, 1), "between": round(between, 1)},
            "day_100k_send_msgs_per_s": round(send_rate),
            "day_100k_dbt": dbt,
            "day_100k_scale": round(scale, 2),
            "day_100k_input_rows": counts,
            "day_100k_cart_events_loaded": cart_events,
            "day_100k_load_avg_before_after": f"{before} / {after}",
            "day_100k_code": commit,
        }
        if args.compare:
            print("the same ingest and one dbt build outside Airflow, in a fresh database", flush=True)
            child = subprocess.run(  # a child, so that it imports the same code as the DAG run (--head)
                [sys.executable, __file__, "--compare-only", str(landing)],
                env=project_env(dict(os.environ), project),
                capture_output=True,
                text=True,
                check=True,
            )
            cmp = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"  ingest {cmp['ingest_s']} s ({cmp['ingest_rows']:,} rows; in the DAG {by_phase.get('ingest')} s), "
                f"one dbt build {cmp['dbt_build_s']} s for {cmp['dbt_nodes']} nodes (their own time "
                f"{cmp['dbt_nodes_execution_s_sum']} s; in the DAG {by_phase.get('dbt')} s); slowest: "
                + ", ".join(f"{k} {v}" for k, v in cmp["dbt_slowest"].items())
            )
            figures["day_100k_outside_airflow"] = cmp
        if args.scale is None and not args.no_record:  # only a run sized by --target is "the 100k day"
            record(figures, drop=STALE_KEYS)
        print(json.dumps(figures, indent=2))
        ok = True
        return 0
    finally:
        if not args.keep:
            drop_database(admin, name)
            # the shop and Airflow's home go; the run's log stays when the run failed, to read why
            shutil.rmtree(landing, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
            if not (work / "daily_run.log").exists() or ok:
                shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept: database {name}, {work}")


if __name__ == "__main__":
    sys.exit(main())
