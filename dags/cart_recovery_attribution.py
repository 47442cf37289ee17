"""
### cart_recovery_attribution

Attributes orders to messages and rolls up performance (contract §3; A2–A4), daily at 10:00
America/Toronto — an hour after `cart_recovery_daily`, so the 24 h window of yesterday's 09:00 messages
has closed — on data up to T = the run's data-interval end:

1. `load_landing_files` — new landing files into `raw` (orders and `provider_events` arrive as files too);
2. `build_models` — the models tagged `attribution` and their staging ancestors (cosmos, one task per
   model with its tests): `marts.attributed_orders` (each completed order to the latest message sent
   within the window before it, at most once), `marts.campaign_performance_daily` (and
   `…_by_segment`: coupon tier, store, language), `marts.campaign_lift` (against the holdout, 95 %
   intervals);
3. `summarize_attribution` — yesterday's figures per campaign and the lift, no personal data.

Replayable for any past date (O2): the same T gives the same rows. The incremental marts rewrite what a
run owns (the orders placed in its last `attribution_lookback_days`, the report days up to T's) and
leave the later runs' rows alone.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag
from airflow.timetables.trigger import CronTriggerTimetable

from cart_recovery import attribution, orchestration


@dag(
    dag_id="cart_recovery_attribution",
    # a one-day data interval ending at 10:00, after the daily run's 24 h attribution window closed
    schedule=CronTriggerTimetable("0 10 * * *", timezone="America/Toronto", interval=timedelta(days=1)),
    start_date=pendulum.datetime(2026, 1, 1, tz="America/Toronto"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["cart_recovery"],
)
def cart_recovery_attribution():
    (
        orchestration.load_landing_files_task()
        >> attribution.attribution_models()
        >> orchestration.as_task(attribution.summarize_attribution)
    )


cart_recovery_attribution()
