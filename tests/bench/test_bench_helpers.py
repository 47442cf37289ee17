"""Helpers of the benchmarks (bench/): how figures are merged and how a day's run is split into phases.
The benchmarks themselves are not tests (`make bench`)."""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_day  # noqa: E402
from results import record  # noqa: E402


def test_record_merges_drops_renamed_keys_and_stamps_the_machine(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"models_scale": 1.0, "old_name": 3, "send_n": 10}))
    data = record({"send_n": 100_000, "new_name": 4}, path=path, drop=["old_name", "never_there"])
    on_disk = json.loads(path.read_text())
    assert on_disk == data
    assert on_disk["models_scale"] == 1.0  # another benchmark's key is kept
    assert on_disk["send_n"] == 100_000
    assert "old_name" not in on_disk
    assert on_disk["new_name"] == 4
    assert on_disk["machine"]
    assert on_disk["updated_at"]


def test_day_phases_span_their_tasks_and_dbt_detail_names_the_slowest(tmp_path: Path) -> None:
    db = tmp_path / "airflow.db"
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    tasks = [  # (task_id, start offset s, duration s); Airflow writes naive UTC into SQLite
        ("load_landing_files", 2, 30),
        ("build_models.stg_a_model_build", 33, 3),
        ("build_models.int_b_model_build", 37, 10),
        ("build_models.some_test", 48, 2),
        ("assign_coupons", 51, 1),
        ("send_messages", 53, 100),
        ("export_retargeting_audience", 52, 4),
        ("summarize_run", 154, 1),
        ("a_new_task", 156, 2),
        ("send_messages", 200, None),  # never ended: not counted
    ]
    with sqlite3.connect(db) as conn:
        conn.execute("create table task_instance (dag_id text, task_id text, start_date text, end_date text)")
        for task_id, start, seconds in tasks:
            s = (t0 + timedelta(seconds=start)).replace(tzinfo=None)
            e = None if seconds is None else str(s + timedelta(seconds=seconds))
            conn.execute("insert into task_instance values ('cart_recovery_daily', ?, ?, ?)", (task_id, str(s), e))
        conn.execute("insert into task_instance values ('other', 'send_messages', '2026-01-01', '2026-01-02')")
    spans = bench_day.task_spans(db, "cart_recovery_daily")
    assert len(spans) == 9
    assert spans[0][1] == t0 + timedelta(seconds=2)  # read back as UTC
    assert bench_day.phases(spans) == {
        "ingest": 30.0,
        "dbt": 17.0,
        "coupons": 1.0,
        "send": 100.0,
        "export": 4.0,
        "summary": 1.0,
        "other_tasks": 2.0,
    }
    detail = bench_day.dbt_detail(spans)
    assert detail["tasks"] == 3
    assert detail["task_seconds_sum"] == 15.0
    assert list(detail["slowest"]) == ["int_b_model_build", "stg_a_model_build", "some_test"]
