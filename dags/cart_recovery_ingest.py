"""
### cart_recovery_ingest

Loads every new file of the landing folder (Variable `cart_recovery_landing_dir`) into the `raw` schema,
twice a day (contract §3). Each file loads once, by content checksum, in name order; rows that break the
contract go to `raw.quarantine` with a reason (O4). The task log holds counts per file and kind, never an
email or phone number (O5). The daily DAG runs the same task first, so data is never older than its run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag
from airflow.timetables.trigger import CronTriggerTimetable

from cart_recovery import orchestration


@dag(
    dag_id="cart_recovery_ingest",
    schedule=CronTriggerTimetable("0 6,18 * * *", timezone="America/Toronto"),
    start_date=pendulum.datetime(2026, 1, 1, tz="America/Toronto"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["cart_recovery"],
)
def cart_recovery_ingest():
    orchestration.load_landing_files_task()


cart_recovery_ingest()
