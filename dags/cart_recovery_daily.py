"""
### cart_recovery_daily

The bookstore case's daily run, 09:00 America/Toronto (O1), deciding at T = the run's data-interval end:

1. `load_landing_files` — new landing files into `raw` (as `cart_recovery_ingest`);
   `has_steps_to_decide` — skips the rest (shown skipped) when no enabled `daily` campaign is selected;
2. `build_models` — the dbt project, one task per model with its tests (cosmos), with T and the enabled
   `daily` campaigns as vars: abandoned carts, exclusions with one reason each (E9), eligible recipients;
3. `assign_coupons` — unique codes from the pools, at most one customer per code, ever (C2, C3);
4. `send_messages` — render and send through the outbox, exactly once per cart version and step (S2, E6);
5. `summarize_run` — counts by outcome and exclusion reason, no personal data.

Re-running a date from the UI reproduces that date's decisions (O2) and sends nothing twice.
Params: `dry_run` renders and records without sending (S3); `campaigns` narrows the run to some campaigns.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag
from airflow.timetables.trigger import CronTriggerTimetable

from cart_recovery import orchestration


@dag(
    dag_id="cart_recovery_daily",
    # a one-day data interval ending at 09:00: the previous day's carts (O1)
    schedule=CronTriggerTimetable("0 9 * * *", timezone="America/Toronto", interval=timedelta(days=1)),
    start_date=pendulum.datetime(2026, 1, 1, tz="America/Toronto"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params=orchestration.run_params(),
    tags=["cart_recovery"],
)
def cart_recovery_daily():
    o, scope = orchestration, "daily"
    build = o.decision_models(scope)
    summarize = o.as_task(o.summarize_run, scope=scope)
    (
        o.load_landing_files_task()
        >> o.as_task(o.has_steps_to_decide, short_circuit=True, scope=scope)
        >> build
        >> o.as_task(o.assign_coupons, scope=scope)
        >> o.as_task(o.send_messages, scope=scope)
        >> summarize
    )
    # F5: the retargeting audience export, beside the send (its failure never blocks a message)
    export = o.as_task(o.export_retargeting_audience)
    build >> export
    [summarize, export] >> o.as_task(o.drop_run_schema, scope=scope)


cart_recovery_daily()
