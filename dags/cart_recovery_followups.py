"""
### cart_recovery_followups

Every hour (America/Toronto), deciding at T = the run's data-interval end (contract §3): the steps that are
due — every step of the `hourly` campaigns (first steps included) and the follow-up steps (≥ 2) of the
`daily` ones (F1):

1. `load_landing_files` — new landing files into `raw`; `has_steps_to_decide` — with no enabled campaign
   step in this scope (the shipped configuration: `bookstore_daily` has one step) the rest is skipped,
   shown skipped in the UI, and the run succeeds;
2. `build_models` — the dbt project with `decision_scope=followups`: which step is due for each cart version,
   on which channel (F3), and why not (exits, engagement, no allowed channel — one reason each, E9);
3. `assign_coupons` — codes for the steps that carry one (C1–C3);
4. `send_messages` — email, SMS and push through the outbox, exactly once (E6): the exit conditions are
   checked again in the transaction that claims each message (F2), an SMS decided in the recipient's quiet
   hours waits for 08:00 there and the run whose T has reached it sends it (F4);
5. `summarize_run` — counts by step, channel and outcome, no personal data.

Re-running an hour reproduces its decisions (O2) and sends nothing twice. Params: `dry_run` (S3),
`campaigns` (narrow the run).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag
from airflow.timetables.trigger import CronTriggerTimetable

from cart_recovery import orchestration


@dag(
    dag_id="cart_recovery_followups",
    # a one-hour data interval ending on the hour: consecutive runs meet
    schedule=CronTriggerTimetable("0 * * * *", timezone="America/Toronto", interval=timedelta(hours=1)),
    start_date=pendulum.datetime(2026, 1, 1, tz="America/Toronto"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params=orchestration.run_params(),
    tags=["cart_recovery"],
)
def cart_recovery_followups():
    o, scope = orchestration, "followups"
    (
        o.load_landing_files_task()
        >> o.as_task(o.has_steps_to_decide, short_circuit=True, scope=scope)
        >> o.decision_models(scope)
        >> o.as_task(o.assign_coupons, scope=scope)
        >> o.as_task(o.send_messages, scope=scope)
        >> o.as_task(o.summarize_run, scope=scope)
        >> o.as_task(o.drop_run_schema, scope=scope)
    )


cart_recovery_followups()
