"""D1 / A2 / O2 in the incremental staging: a re-read load never takes an entity back to an older state.

The load overlap (`load_overlap_hours`) re-reads recent loads and skips those the model already holds. An
order placed in one load and cancelled in the next keeps only the cancellation's `_loaded_at`, so the first
load can be read again while the second is skipped: the cancellation must stay.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dbt.world import T, World, campaign, d, h, rows

SELECT = "+stg_shop__orders"


def statuses(conn) -> dict[str, str]:
    return {r["order_id"]: r["status"] for r in rows(conn, "select order_id, status from staging.stg_shop__orders")}


@pytest.fixture(scope="module")
def builds(warehouse) -> dict[str, Any]:
    found: dict[str, Any] = {}
    with warehouse.connect() as conn:
        # every insert commits on its own: each row is its own load (its own `_loaded_at`)
        w = World(conn, file_name="orders_1.jsonl")
        w.order("o-cancel", "ann", T - h(5), ["x"])
        w.order("o-keep", "ann", T - h(4), ["x"])
        warehouse.build(T, [campaign()], select=SELECT)
        found["first"] = statuses(conn)

        w = World(conn, file_name="orders_2.jsonl")
        w.order("o-cancel", "ann", T - h(5), ["x"], status="cancelled")
        warehouse.build(T, [campaign()], select=SELECT)
        found["cancelled"] = statuses(conn)

        w = World(conn, file_name="orders_3.jsonl")
        w.order("o-other", "bob", T + h(1), ["y"])
        warehouse.build(T + d(1), [campaign()], select=SELECT)
        found["next_day"] = statuses(conn)
        warehouse.build(T + d(1), [campaign()], select=SELECT)
        found["rebuilt"] = statuses(conn)
    return found


def test_a2_a_cancellation_replaces_the_completed_order(builds):
    assert builds["first"] == {"o-cancel": "completed", "o-keep": "completed"}
    assert builds["cancelled"]["o-cancel"] == "cancelled"


def test_o2_rebuilds_within_the_overlap_keep_the_latest_status(builds):
    expected = {"o-cancel": "cancelled", "o-keep": "completed", "o-other": "completed"}
    assert builds["next_day"] == expected
    assert builds["rebuilt"] == expected, "the cancelled order's first load was re-read: it reverted"
