"""Task bodies and task-group builders the DAG files wire together (the DAG files stay wiring only).

Time: every decision uses the run's data-interval end T (O1, O2); nothing here reads the wall clock to
decide. Heavy imports (cosmos, dbt, psycopg, sendgrid) happen inside functions, at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

DBT_CONN_ID = "cart_recovery_db"


def run_params(**extra: Any) -> dict[str, Any]:
    """Typed params shared by the deciding DAGs, so a run can be re-triggered safely from the UI."""
    from airflow.sdk import Param

    return {
        "dry_run": Param(False, type="boolean", description="Render and record every message, send none (S3)."),
        "campaigns": Param(
            [], type="array", items={"type": "string"}, description="Only these campaigns (empty: every enabled one)."
        ),
        **extra,
    }


def evaluation_time(context: Any) -> datetime:
    """T: the data-interval end of the run (contract §3)."""
    end = context["data_interval_end"]
    if end is None:  # an asset-triggered or unscheduled run has no interval
        raise RuntimeError("this run has no data interval: trigger it with a logical date")
    return end


def campaigns_for(context: Any, scope: str = "daily") -> list[Any]:
    """The enabled campaigns with a step the scope decides (`cart_recovery.campaigns.in_scope`), optionally
    narrowed by the run's `campaigns` param."""
    from cart_recovery.campaigns import in_scope, load_campaigns

    wanted = set((context.get("params") or {}).get("campaigns") or [])
    chosen = [c for c in load_campaigns() if c.enabled and in_scope(c, scope) and (not wanted or c.name in wanted)]
    unknown = wanted - {c.name for c in chosen}
    if unknown:
        raise ValueError(f"param campaigns names campaigns that are not enabled {scope} campaigns: {sorted(unknown)}")
    return chosen


def dbt_vars(context: Any, scope: str = "daily") -> dict[str, Any]:
    """The vars every model of a run sees: T, the scope, its schema and the campaigns (docs/INTERFACES.md)."""
    from cart_recovery.campaigns import to_dbt_vars
    from cart_recovery.dbt import run_vars

    campaigns = to_dbt_vars(campaigns_for(context, scope), scope)
    lookback = (context.get("params") or {}).get("lookback_days")
    if lookback is not None:  # O3: the phase-1 backfill looks back `lookback_days` instead of one day
        for c in campaigns:
            c["max_cart_age_hours"] = int(lookback) * 24
    return run_vars(evaluation_time(context), scope, campaigns)


def vars_interceptor(scope: str) -> Callable[[Any, Any], None]:
    """A cosmos interceptor that sets the run's vars (T, `scope`, campaigns) on each dbt task just before its
    command is built; module-level functions, one per scope, so the operators stay importable by name."""
    return {"daily": set_dbt_vars, "followups": set_followups_dbt_vars, "backfill": set_backfill_dbt_vars}[scope]


def set_dbt_vars(context: Any, operator: Any) -> None:
    operator.vars = dbt_vars(context, "daily")


def set_followups_dbt_vars(context: Any, operator: Any) -> None:
    operator.vars = dbt_vars(context, "followups")


def set_backfill_dbt_vars(context: Any, operator: Any) -> None:
    operator.vars = dbt_vars(context, "backfill")


# The attribution models (A2–A4) are built by cart_recovery_attribution only: the decision path leaves them out.
ATTRIBUTION_TAG = "tag:attribution"
RETARGETING_TAG = "tag:retargeting"


def dbt_task_group(
    group_id: str = "build_models",
    select: Sequence[str] = (),
    exclude: Sequence[str] = (ATTRIBUTION_TAG,),
    interceptor: Callable[[Any, Any], None] | None = None,
    partial: bool = False,
) -> Any:
    """The dbt project as an Airflow task group, one task per model with its tests (cosmos, manifest mode).

    `select` / `exclude`: dbt selectors of the nodes to render (default: every node but the attribution
    models); `interceptor`: sets the run's vars on each task (default `set_dbt_vars`).
    `partial`: the group builds a part of the project that the other DAGs do not keep up to date for it;
    a test over several models then runs only inside a model's build with all its models selected (dbt's
    cautious indirect selection, no task of its own), because cosmos renders a test over several models
    in every group that builds one of them, and another DAG's test must not run on models not built."""
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior, TestIndirectSelection
    from cosmos.profiles import PostgresUserPasswordProfileMapping

    from cart_recovery import DBT_PROJECT_DIR

    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest} is missing: run ./scripts/setup.sh (it runs `dbt parse`)")
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            manifest_path=manifest,
            project_name="cart_recovery",
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name="cart_recovery",
            target_name="airflow",
            # one source of credentials: dbt's profile is derived from the Airflow connection (contract §1)
            profile_mapping=PostgresUserPasswordProfileMapping(conn_id=DBT_CONN_ID, profile_args={"schema": "public"}),
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.BUILD,
            # a test over two models (relationships) runs as its own task once both are built
            should_detach_multiple_parents_tests=not partial,
            select=list(select),
            exclude=list(exclude),
            # no asset lineage: without dbt's artifacts (below) cosmos has none to emit; no DAG is asset-scheduled
            emit_datasets=False,
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            invocation_mode=InvocationMode.DBT_RUNNER,
            test_indirect_selection=TestIndirectSelection.CAUTIOUS if partial else TestIndirectSelection.EAGER,
        ),
        operator_args={
            "interceptors": [freeze_heap, interceptor or set_dbt_vars],
            # dbt writes manifest.json twice per invocation (after parsing and at the end; ~1 s each with
            # 217 tests) and run_results.json: nothing of ours reads them in a task, and the partial parse
            # file (what makes the next task's start-up fast) is written regardless. ~2 s of every task.
            "dbt_cmd_global_flags": ["--no-write-json"],
        },
    )


def freeze_heap(context: Any, operator: Any) -> None:
    """A cosmos interceptor: moves the objects alive before the dbt command out of the garbage collector's reach
    (`gc.freeze`). cosmos ends every dbtRunner call with a full `gc.collect()` (cosmos#2334: adapters' leaked
    semaphores), which otherwise walks Airflow's, cosmos's and the loaded DAGs' whole heap: measured ~0.75 s of
    every dbt task under `airflow dags test`. It still collects whatever the dbt command left behind."""
    import gc

    gc.collect()  # what is garbage now goes now, not into the permanent generation
    gc.freeze()


def assign_coupons(context: Any, scope: str = "daily") -> dict[str, Any]:
    """Pool codes for the run's coupon tiers (C1–C3)."""
    from cart_recovery.coupons import assign_coupons as allocate
    from cart_recovery.db import connect

    with connect() as conn:
        return allocate(conn, evaluation_time(context), scope)


def send_messages(context: Any, scope: str = "daily") -> dict[str, Any]:
    """Every channel (email, SMS, push), quiet hours honoured: this run's decisions and the earlier runs'
    deferred SMS whose 08:00 has come by T (F4), each after the exit re-check (F2)."""
    from cart_recovery.sending import send_messages as send

    params = context.get("params") or {}
    return send(
        decided_at=evaluation_time(context),
        run_id=context["run_id"],
        campaigns=campaigns_for(context, scope),
        dry_run=bool(params.get("dry_run", False)),
        scope=scope,
    )


def summarize_run(context: Any, scope: str = "daily") -> dict[str, Any]:
    """Counts by outcome and by exclusion reason for the run (T, scope) — ids and numbers only, never PII (O5)."""
    from psycopg import sql

    from cart_recovery.db import connect
    from cart_recovery.dbt import run_schema

    t = evaluation_time(context)
    with connect() as conn:
        outcomes = dict(
            conn.execute(
                "select campaign || ':' || status, count(*) from ops.messages where decided_at = %s group by 1",
                (t,),
            ).fetchall()
        )
        reasons = dict(
            conn.execute(
                "select campaign || ':' || reason, count(*) from marts.decision_history "
                "where decided_at = %s and scope = %s and reason is not null group by 1",
                (t, scope),
            ).fetchall()
        )
        carts = conn.execute(
            sql.SQL("select count(*), count(*) filter (where is_targetable) from {}.int_abandoned_carts").format(
                sql.Identifier(run_schema(t, scope))
            )
        ).fetchone()
        alerts = conn.execute("select kind, count(*) from ops.alerts where decided_at = %s group by 1", (t,)).fetchall()
        # F1: what each step did on each channel in this run (deferred SMS of earlier runs count where sent)
        by_step = dict(
            conn.execute(
                "select campaign || ':' || step || ':' || channel || ':' || status, count(*) from ops.messages "
                "where decided_at = %s and idempotency_key not like 'dry\\_run:%%' group by 1 order by 1",
                (t,),
            ).fetchall()
        )
    summary = {
        "evaluation_time": t.isoformat(),
        "scope": scope,
        "abandoned_carts": carts[0],
        "targetable_carts": carts[1],
        "messages_by_outcome": outcomes,
        "messages_by_step_and_channel": by_step,
        "exclusions_by_reason": reasons,
        "alerts": dict(alerts),
    }
    log.info("run summary: %s", summary)
    unresolved = {k: v for k, v in outcomes.items() if k.endswith((":unknown", ":failed"))}
    if unresolved:
        log.warning("messages needing an operator's look (unknown = may have been sent; never resent): %s", unresolved)
    return summary


def load_landing_files() -> dict[str, Any]:
    from cart_recovery.ingest import run_ingest

    return run_ingest()


def has_steps_to_decide(context: Any, scope: str = "daily") -> bool:
    """Whether the scope holds an enabled campaign step this run decides (contract §3, §6). The shipped
    configuration enables one daily one-step campaign only: every hourly run has nothing to decide, and its
    build and send are skipped (shown skipped in the UI) instead of building empty decisions every hour."""
    campaigns = campaigns_for(context, scope)
    if not campaigns:
        log.info("no enabled campaign has a step the %s scope decides: build and send skipped", scope)
        return False
    log.info("%s scope: %s", scope, ", ".join(c.name for c in campaigns))
    return True


def as_task(fn: Callable[..., Any], *, short_circuit: bool = False, **kwargs: Any) -> Any:
    """`fn(context, **kwargs)` as a task of the DAG being defined, named after `fn`. `short_circuit`: a falsy
    result skips every task downstream (the run still succeeds)."""
    from airflow.sdk import get_current_context, task

    def run() -> Any:
        return fn(get_current_context(), **kwargs)

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    decorator = task.short_circuit if short_circuit else task
    return decorator(task_id=fn.__name__)(run)()


def load_landing_files_task() -> Any:
    """The `load_landing_files` task (no context needed)."""
    from airflow.sdk import task

    return task(task_id="load_landing_files")(load_landing_files)()


def decision_models(scope: str = "daily") -> Any:
    """The dbt task group that decides for a scope (`build_models`), its vars set on every task. The
    retargeting models (F5) are the daily run's: the hourly run leaves them out."""
    exclude = (ATTRIBUTION_TAG,) + ((RETARGETING_TAG,) if scope == "followups" else ())
    return dbt_task_group(interceptor=vars_interceptor(scope), exclude=exclude)


def export_retargeting_audience(context: Any) -> dict[str, Any]:
    """F5: the run's retargeting audience changes, exported beside the send (cart_recovery.retargeting)."""
    from cart_recovery.retargeting import export_retargeting_audience as export

    return export(context)


def drop_run_schema(context: Any, scope: str = "daily") -> str:
    """The run's own schema (its T- and scope-dependent models) once it has sent: the ledgers keep what it
    decided. Only after every task succeeded: a failed run keeps it for a look, and its rerun rebuilds it."""
    from cart_recovery.db import connect
    from cart_recovery.dbt import drop_run_schema as drop

    with connect() as conn:
        name = drop(conn, evaluation_time(context), scope)
    log.info("dropped the run's schema %s", name)
    return name
