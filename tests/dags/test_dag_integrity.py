"""Every DAG file imports cleanly and follows the DAG conventions of STYLE.md (Astronomer's
tests/dags/test_dag_integrity.py pattern)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

T_RUN = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)

PROJECT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((PROJECT / "dags").glob("*.py"))
CONTRACT_DAGS = {
    "cart_recovery_ingest",
    "cart_recovery_daily",
    "cart_recovery_backfill",
    "cart_recovery_attribution",
    "cart_recovery_followups",
}


@pytest.fixture(scope="module")
def dagbag(airflow_metadata):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT / "dags"))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= CONTRACT_DAGS, "contract §3 DAG ids"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_one_dag_per_file_named_after_it(dagbag, path):
    ids = [d for d, dag in dagbag.dags.items() if Path(dag.fileloc).resolve() == path.resolve()]
    assert ids == [path.stem]


@pytest.mark.parametrize("dag_id", sorted(CONTRACT_DAGS))
def test_dag_conventions(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert dag.doc_md, "doc_md=__doc__ describes the DAG"
    assert dag_id in dag.doc_md
    assert dag.catchup is False
    assert "cart_recovery" in dag.tags
    assert dag.default_args.get("retries", 0) >= 1, "tasks are transactions, safe to retry"
    for t in dag.tasks:
        name = t.task_id.split(".")[-1]
        assert name == name.lower()
        assert " " not in name


def test_daily_dag_chain_and_schedule(dagbag):
    dag = dagbag.get_dag("cart_recovery_daily")
    ids = set(dag.task_ids)
    assert {"load_landing_files", "assign_coupons", "send_messages", "summarize_run"} <= ids
    models = [i for i in ids if i.startswith("build_models.")]
    assert models, "one task per dbt model (cosmos)"
    send = dag.get_task("send_messages")
    assert "assign_coupons" in send.upstream_task_ids
    summary = dag.timetable.summary
    assert "0 9 * * *" in summary
    assert str(dag.timetable._timezone) in ("America/Toronto", "Timezone('America/Toronto')")
    assert set(dag.params.keys()) >= {"dry_run", "campaigns"}


@pytest.mark.parametrize("dag_id", ["cart_recovery_daily", "cart_recovery_followups", "cart_recovery_attribution"])
def test_dbt_tasks_skip_the_json_artifacts(dagbag, dag_id):
    """Each dbt task writes no manifest.json / run_results.json (two ~1 s manifest writes per task, read by
    nobody) and emits no assets; the run's vars are still set by the interceptor, after the heap is frozen
    (cosmos's full gc.collect() after each dbt command walks only what the command created)."""
    from cart_recovery.orchestration import freeze_heap

    dbt_tasks = [t for t in dagbag.get_dag(dag_id).tasks if t.task_id.startswith("build_models.")]
    assert dbt_tasks
    for t in dbt_tasks:
        assert "--no-write-json" in t.dbt_cmd_global_flags, t.task_id
        assert t.emit_datasets is False, t.task_id
        assert t.interceptors[0] is freeze_heap, t.task_id
        assert len(t.interceptors) == 2, t.task_id  # and the DAG's vars


def test_freeze_heap_puts_live_objects_out_of_the_collectors_reach():
    import gc

    from cart_recovery.orchestration import freeze_heap

    gc.unfreeze()
    try:
        freeze_heap({}, object())
        assert gc.get_freeze_count() > 1000  # the interpreter's, pytest's and airflow's objects
    finally:
        gc.unfreeze()


def test_backfill_has_typed_lookback_param(dagbag):
    dag = dagbag.get_dag("cart_recovery_backfill")
    assert dag.params["lookback_days"] == 7
    assert type(dag.timetable).__name__ == "NullTimetable", "manual only (O3)"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_no_connection_variable_or_heavy_import_at_parse_time(path):
    """apache/airflow best practice: nothing reads a Variable or a connection at top level."""
    tree = ast.parse(path.read_text())
    top_level = [n for n in tree.body if not isinstance(n, ast.FunctionDef)]
    text = "\n".join(ast.unparse(n) for n in top_level)
    for banned in ("Variable.get", "get_connection", "BaseHook", "psycopg", "sendgrid", "import dbt"):
        assert banned not in text, f"{banned} at the top level of {path.name}"


@pytest.mark.parametrize(
    ("dag_id", "scope"),
    [
        ("cart_recovery_daily", "daily"),
        ("cart_recovery_followups", "followups"),
        ("cart_recovery_backfill", "backfill"),
    ],
)
def test_deciding_dags_gate_build_and_drop_their_run_schema(dagbag, dag_id, scope):
    """Contract §3, O6: each deciding DAG skips its build when its scope has nothing to decide, builds and
    sends for its own scope, and drops its own schema last, after the summary (and the daily's export)."""
    dag = dagbag.get_dag(dag_id)
    gate = dag.get_task("has_steps_to_decide")
    assert gate.upstream_task_ids == {"load_landing_files"}
    first_models = set(gate.downstream_task_ids)
    assert first_models
    assert all(t.startswith("build_models.") for t in first_models)
    drop = dag.get_task("drop_run_schema")
    assert "summarize_run" in drop.upstream_task_ids
    assert drop.trigger_rule == "all_success", "a failed run keeps its schema for a look"
    assert not drop.downstream_task_ids
    if dag_id == "cart_recovery_daily":
        assert "export_retargeting_audience" in drop.upstream_task_ids
    retargeting = [t for t in dag.task_ids if "retargeting" in t and t.startswith("build_models.")]
    assert bool(retargeting) == (scope != "followups"), "F5 is the daily run's"
    build = next(t for t in dag.tasks if t.task_id.startswith("build_models."))
    operator = type("Op", (), {})()
    build.interceptors[1]({"data_interval_end": T_RUN, "params": {}}, operator)
    assert operator.vars["decision_scope"] == scope
    assert operator.vars["run_schema"] == f"run_{scope}_20261120t140000"
