"""C1–C3: coupon tiers by remaining cart value, unique pool codes, exhaustion (one world, a few builds)."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from tests.dbt.world import T, World, campaign, d, h, rows

VALUE = campaign("value_coupons", coupon_tiers="value_tiers")
SMS = campaign("sms_coupons", coupon_tiers="value_tiers", steps=[{"channels": ["sms"]}])
NO_COUPON = campaign()
CAMPAIGNS = [VALUE, SMS, NO_COUPON]
T2 = T + d(1)
T3 = T + d(2)

# cart value -> expected percent (C1: < 50 -> 10, 50..100 inclusive -> 15, > 100 -> 20)
VALUES = {"v10": 10.00, "v20": 20.00, "v4999": 49.99, "v50": 50.00, "v100": 100.00, "v10001": 100.01, "v250": 250.00}
EXPECTED = {"v10": 10, "v20": 10, "v4999": 10, "v50": 15, "v100": 15, "v10001": 20, "v250": 20}


def eligible(conn: psycopg.Connection, name: str) -> dict[str, dict[str, Any]]:
    return {r["cart_id"]: r for r in rows(conn, "select * from marts.eligible_recipients where campaign = %s", (name,))}


def allocations(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return rows(conn, "select * from ops.coupon_allocations order by code")


@pytest.fixture(scope="module")
def world(warehouse) -> dict[str, Any]:
    from cart_recovery.coupons import assign_coupons

    conn = warehouse.connect()
    w = World(conn)
    w.store("s1")
    for name, value in VALUES.items():
        w.customer(name, phone="+1514555" + str(1000 + len(name)))
        w.consent(name, channel="sms")
        w.cart(f"{name}-e1", f"{name}-cart", T - h(3), name, [("sku-1", 1, value)])
    # two codes for the three carts of the 10 % tier: one falls back to PROMO10 (C3)
    w.coupon_codes("value_10", ["TEN-A", "TEN-B"])
    w.coupon_codes("value_15", ["FIFTEEN-A", "FIFTEEN-B", "FIFTEEN-B"])  # listed twice: one code
    w.coupon_codes("value_20", [f"TWENTY-{i:03d}" for i in range(200)])
    w.coupon_codes("sms_5", [f"FIVE-{i:03d}" for i in range(200)])

    warehouse.build(T, CAMPAIGNS)
    first_counts = assign_coupons(conn, T)
    state: dict[str, Any] = {
        "conn": conn,
        "assignments": {(r["campaign"], r["cart_id"]): r for r in rows(conn, "select * from marts.coupon_assignments")},
        "first_counts": first_counts,
        "first_eligible": eligible(conn, "value_coupons"),
        "first_sms": eligible(conn, "sms_coupons"),
        "first_no_coupon": eligible(conn, "bookstore_daily"),
        "first_allocations": allocations(conn),
        "first_alerts": rows(conn, "select * from ops.alerts order by alert_id"),
    }
    # rerun the same T: same decisions, no new code, no duplicate alert
    warehouse.build(T, CAMPAIGNS)
    state["rerun_counts"] = assign_coupons(conn, T)
    state["rerun_eligible"] = eligible(conn, "value_coupons")
    state["rerun_allocations"] = allocations(conn)
    state["rerun_alerts"] = rows(conn, "select * from ops.alerts order by alert_id")

    # the next day: new carts from new customers get new codes, never yesterday's
    for i in range(3):
        name = f"day2-{i}"
        w.customer(name)
        w.cart(f"{name}-e1", f"{name}-cart", T2 - h(3), name, [("sku-1", 1, 150.0)])
    warehouse.build(T2, [VALUE])
    assign_coupons(conn, T2)
    state["day2_eligible"] = eligible(conn, "value_coupons")
    state["day2_allocations"] = allocations(conn)

    # T3: many carts in one pool, two allocators at once
    for i in range(60):
        name = f"conc-{i:02d}"
        w.customer(name)
        w.cart(f"{name}-e1", f"{name}-cart", T3 - h(3), name, [("sku-1", 1, 300.0)])
    warehouse.build(T3, [VALUE])
    errors: list[BaseException] = []
    results: list[dict[str, Any]] = []

    def allocate() -> None:
        try:
            with psycopg.connect(warehouse.url) as c:
                results.append(assign_coupons(c, T3))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=allocate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state["concurrent_errors"] = errors
    state["concurrent_results"] = results
    state["concurrent_eligible"] = eligible(conn, "value_coupons")
    state["final_allocations"] = allocations(conn)
    yield state
    conn.close()


def test_c1_tier_boundaries(world):
    a = world["assignments"]
    for name, percent in EXPECTED.items():
        assert a[("value_coupons", f"{name}-cart")]["coupon_percent"] == percent, name
        assert world["first_eligible"][f"{name}-cart"]["coupon_percent"] == percent, name
    # an SMS step carries the 5 % tier whatever the value
    for name in VALUES:
        assert a[("sms_coupons", f"{name}-cart")]["coupon_percent"] == 5
        assert world["first_sms"][f"{name}-cart"]["channel"] == "sms"
    # a campaign without coupons: no assignment, no code
    assert not any(camp == "bookstore_daily" for camp, _ in a)
    assert all(r["coupon_percent"] is None and r["coupon_code"] is None for r in world["first_no_coupon"].values())


def test_c2_code_once_ever_and_stable_across_reruns(world):
    first = world["first_eligible"]
    codes = [r["coupon_code"] for r in first.values()]
    pool_codes = [c for c in codes if not c.startswith("PROMO")]
    assert len(pool_codes) == len(set(pool_codes))
    assert {first["v50-cart"]["coupon_code"], first["v100-cart"]["coupon_code"]} == {"FIFTEEN-A", "FIFTEEN-B"}
    # rerun: the same code for the same cart version, nothing new allocated
    assert {k: r["coupon_code"] for k, r in world["rerun_eligible"].items()} == {
        k: r["coupon_code"] for k, r in first.items()
    }
    assert world["rerun_allocations"] == world["first_allocations"]
    assert all(c["allocated"] == 0 for c in world["rerun_counts"].values())
    # the next day: new codes only, yesterday's still with their cart versions
    day1 = {r["code"] for r in world["first_allocations"]}
    day2_codes = {r["coupon_code"] for r in world["day2_eligible"].values()}
    assert len(day2_codes) == 3
    assert not day2_codes & day1
    assert [r for r in world["day2_allocations"] if r["code"] in day1] == world["first_allocations"]


def test_c2_concurrent_runs_never_share_a_code(world):
    assert world["concurrent_errors"] == []
    conc = world["concurrent_eligible"]
    assert len(conc) == 60
    codes = [r["coupon_code"] for r in conc.values()]
    assert len(set(codes)) == 60
    assert all(c.startswith("TWENTY-") for c in codes)
    # between them, the two runs allocated each cart version once
    assert sum(r["value_20"]["allocated"] for r in world["concurrent_results"]) == 60
    allocated = world["final_allocations"]
    assert len({a["code"] for a in allocated}) == len(allocated)
    keys = [(a["campaign"], a["step"], a["cart_id"], a["cart_version"]) for a in allocated]
    assert len(set(keys)) == len(keys)


def test_c3_exhausted_pool_falls_back_and_alerts(world):
    first = world["first_eligible"]
    ten = sorted(first[f"{n}-cart"]["coupon_code"] for n in ("v10", "v20", "v4999"))
    assert ten == ["PROMO10", "TEN-A", "TEN-B"]  # never a reused code: the third gets the static code
    assert first["v10-cart"]["coupon_tier"] is not None
    assert world["first_counts"]["value_10"] == {"needed": 3, "allocated": 2, "fell_back_to_static": 1}
    exhausted = [a for a in world["first_alerts"] if a["kind"] == "coupon_pool_exhausted"]
    assert [(a["detail"], a["decided_at"]) for a in exhausted] == [
        ({"pool": "value_10", "campaign": "value_coupons", "missing": 1}, T)
    ]
    # a rerun that is just as short raises no second alert, and the fallback stays the static code
    assert world["rerun_alerts"] == world["first_alerts"]
    assert sorted(world["rerun_eligible"][f"{n}-cart"]["coupon_code"] for n in ("v10", "v20", "v4999")) == ten
