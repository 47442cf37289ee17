"""
### cart_recovery_backfill

The phase-1 one-time campaign (O3): triggered by hand, it targets the carts abandoned over the last
`lookback_days` (default 7) before T instead of the last day, then runs the same steps as
`cart_recovery_daily` — same outbox idempotency keys (E6) and frequency cap (E5), so the daily run never
repeats what the backfill sent.

Trigger it with a logical date: T is the run's data-interval end.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from cart_recovery import orchestration


@dag(
    dag_id="cart_recovery_backfill",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="America/Toronto"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params=orchestration.run_params(
        lookback_days=Param(7, type="integer", minimum=1, maximum=90, description="Days of carts to look back."),
    ),
    tags=["cart_recovery"],
)
def cart_recovery_backfill():
    o, scope = orchestration, "backfill"
    (
        o.load_landing_files_task()
        >> o.as_task(o.has_steps_to_decide, short_circuit=True, scope=scope)
        >> o.decision_models(scope)
        >> o.as_task(o.assign_coupons, scope=scope)
        >> o.as_task(o.send_messages, scope=scope)
        >> o.as_task(o.summarize_run, scope=scope)
        >> o.as_task(o.drop_run_schema, scope=scope)
    )


cart_recovery_backfill()
