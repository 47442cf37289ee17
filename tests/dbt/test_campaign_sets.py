"""Every model that reads the `campaigns` var builds for any campaign set (contract §6): none, daily only,
hourly only, both — in each decision scope, with every data test, and the attribution models too.

The shipped configuration enables `bookstore_daily` alone (one step), so the hourly scope has no campaign
at all: its build must give empty decisions, not a syntax error. One world, one cart a customer; each case
checks the decisions it should hold, so an empty project fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from cart_recovery.dbt import run_schema
from tests.dbt.conftest import EVERYTHING
from tests.dbt.world import T, World, campaign, h, rows

DAILY = campaign("daily_one")
HOURLY = campaign("hourly_one", cadence="hourly", steps=[{"channels": ["email"], "delay_minutes": 0}])


@pytest.fixture(scope="module")
def world(warehouse) -> Any:
    with warehouse.connect() as conn:
        w = World(conn)
        w.store("s1")
        w.product("sku-1")
        w.customer("ann")
        w.cart("ann-e1", "ann-cart", T - h(3), "ann")
    return warehouse


def decisions(conn, schema: str) -> dict[str, Any]:
    return {
        "campaigns": sorted(r["campaign"] for r in rows(conn, f"select campaign from {schema}.int_campaigns")),
        "steps": rows(conn, f"select campaign, step, is_decided from {schema}.int_campaign_steps"),
        "eligible": sorted(
            (r["campaign"], r["step"], r["cart_id"])
            for r in rows(conn, "select campaign, step, cart_id from marts.eligible_recipients")
        ),
        "exclusions": rows(conn, "select campaign, reason from marts.recipient_exclusions"),
    }


CASES = [
    # (id, campaigns, scope, campaigns in int_campaigns, eligible rows)
    ("none-daily", [], "daily", [], []),
    ("none-followups", [], "followups", [], []),
    ("daily-only-daily", [DAILY], "daily", ["daily_one"], [("daily_one", 1, "ann-cart")]),
    ("daily-only-followups", [DAILY], "followups", ["daily_one"], []),
    ("hourly-only-daily", [HOURLY], "daily", ["hourly_one"], []),
    ("hourly-only-followups", [HOURLY], "followups", ["hourly_one"], [("hourly_one", 1, "ann-cart")]),
    ("both-daily", [DAILY, HOURLY], "daily", ["daily_one", "hourly_one"], [("daily_one", 1, "ann-cart")]),
    ("both-followups", [DAILY, HOURLY], "followups", ["daily_one", "hourly_one"], [("hourly_one", 1, "ann-cart")]),
    # O3: the backfill decides as the daily run, in a scope (and ledger partition) of its own
    ("both-backfill", [DAILY, HOURLY], "backfill", ["daily_one", "hourly_one"], [("daily_one", 1, "ann-cart")]),
]


@pytest.mark.parametrize(("campaigns", "scope", "names", "eligible"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_models_build_for_any_campaign_set(world, campaigns, scope, names, eligible):
    # models, seeds and every data test of the decision path: the build raises on an error or a failed test
    world.build(T, campaigns, args=[*EVERYTHING, "--exclude", "tag:attribution"], scope=scope)
    schema = run_schema(T, scope)
    with world.connect() as conn:
        got = decisions(conn, schema)
        # the placeholder row of an empty set keeps the columns' types
        types = rows(
            conn,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = 'int_campaign_steps'",
            (schema,),
        )
    assert got["campaigns"] == names
    assert got["eligible"] == eligible
    assert got["exclusions"] == []
    assert {r["column_name"]: r["data_type"] for r in types}["channels"] == "ARRAY"
    if not campaigns:
        assert got["steps"] == []


@pytest.mark.parametrize("campaigns", [[], [DAILY, HOURLY]], ids=["none", "both"])
def test_attribution_models_build_for_any_campaign_set(world, campaigns):
    # as the attribution DAG builds: its models and their ancestors, cautious tests (orchestration.dbt_task_group)
    world.build(
        T + h(20), campaigns, args=[*EVERYTHING, "--select", "+tag:attribution", "--indirect-selection", "cautious"]
    )
    with world.connect() as conn:
        names = sorted(r["campaign"] for r in rows(conn, "select campaign from intermediate.int_attribution_campaigns"))
    assert names == sorted(c["name"] for c in campaigns)
