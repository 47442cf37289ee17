"""A5: the dashboard and the static report, against the attribution marts the real `cart_recovery_attribution`
DAG builds (`airflow dags test`) from outbox rows, orders and provider events whose figures are known here;
the empty state; the `report` command; the route's access rules (CR_DASHBOARD_PUBLIC, Airflow's JWT).

The world (report days 2026-11-18 and 2026-11-19, attribution run TA = 2026-11-20 10:00 in Montréal):
- D (11-19 09:00) bookstore_daily, step 1, email: 40 treated customers t00..t39 (t00..t29 of store S1,
  t30..t39 of S2; t00..t09 with the static code PROMO10 → tier under_50) and 40 held out h00..h39 (E8).
  Delivered t00..t37, bounced t38 and t39; open events for t00..t04 and t08..t19, clicks t00..t07 (t05..t07
  click without an open: still opened, A3) → opened 20, clicked 8. Completed orders of 30.00 for t00..t15,
  a second one of 15.00 for t00, a cancelled one for t16 → 17 orders, 16 conversions, 495.00.
  Held out: h00..h04 buy (30.00 each) → lift 40 % vs 12.5 %: +27.50 pts [+9.18, +45.82] (A4).
- D-1 (11-18 09:00) bookstore_daily: y00..y09 sent and delivered, y00..y03 opened, y00 buys 25.00.
  multi_touch: m0..m4 step 1 push, then step 2 SMS 3 h later; m0 buys 40.00 after the SMS (A2: latest).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cart_recovery.api.app import create_app
from cart_recovery.devtools.local_pg import create_database, drop_database
from cart_recovery.reporting.dashboard import Dashboard, load_dashboard, render_dashboard, write_report
from tests.dags.runner import PROJECT, run_dag
from tests.dbt.world import message_keys

TA = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # the attribution run: 10:00 in Montréal
D = datetime(2026, 11, 19, 14, 0, tzinfo=UTC)  # the daily run: 09:00 in Montréal
Y = D - timedelta(days=1)
DAY_D, DAY_Y = date(2026, 11, 19), date(2026, 11, 18)


# --------------------------------------------------------------------------- the world


def _message(conn: psycopg.Connection, campaign: str, customer: str, at: datetime, **kw: Any) -> str:
    step, channel = kw.get("step", 1), kw.get("channel", "email")
    status = kw.get("status", "sent")
    key, message_id = message_keys(conn, campaign, step, f"k-{customer}", f"v-{customer}")
    conn.execute(
        "insert into ops.messages (message_id, idempotency_key, campaign, step, channel, customer_id, cart_id, "
        "cart_version, status, skip_reason, provider_message_id, decided_at, coupon_code) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            message_id,
            key,
            campaign,
            step,
            channel,
            customer,
            f"k-{customer}",
            f"v-{customer}",
            status,
            "holdout" if status == "skipped" else None,
            f"pm-{message_id[:12]}" if status == "sent" else None,
            at,
            kw.get("coupon_code"),
        ),
    )
    return message_id


def _order(order_id: str, customer: str, at: datetime, total: str, status: str = "completed") -> dict:
    return {
        "event_id": f"oe-{order_id}-{status}",
        "order_id": order_id,
        "customer_id": customer,
        "cart_id": f"k-{customer}",
        "placed_at": at.isoformat(),
        "status": status,
        "store_id": "S1",
        "currency": "CAD",
        "total": total,
        "items": [{"sku": "B1", "quantity": 1, "unit_price": total}],
    }


def _event(kind: str, message_id: str, at: datetime) -> dict:
    return {
        "sg_event_id": uuid.uuid4().hex,
        "event": kind,
        "email": "reader@mail.example",
        "timestamp": int(at.timestamp()),
        "sg_message_id": f"pm-{message_id[:12]}.filter0001.1.1",
        "message_id": message_id,
        "campaign": "bookstore_daily",
    }


def _csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_world(conn: psycopg.Connection, landing: Path) -> None:
    """The outbox rows in `conn` and the shop's files in `landing` (see the module's docstring)."""
    _csv(
        landing / "stores_1.csv",
        [
            {
                "store_id": sid,
                "name": name,
                "email": f"{sid.lower()}@l.example",
                "phone": "+14186942262",
                "address": "1100 rue Saint-Jean",
                "city": "Québec",
                "region": "QC",
                "url": "https://s.example",
            }
            for sid, name in (("S1", "Librairie Pantoute"), ("S2", "Librairie Monet"))
        ],
    )
    people = [f"t{i:02d}" for i in range(40)] + [f"h{i:02d}" for i in range(40)]
    people += [f"y{i:02d}" for i in range(10)] + [f"m{i}" for i in range(5)]
    _csv(
        landing / "customers_1.csv",
        [
            {
                "customer_id": c,
                "email": f"{c}@mail.example",
                "phone": "",
                "first_name": c,
                "last_name": "Gagnon",
                "locale": "en" if c in {"t35", "t36", "t37", "t38", "t39"} else "fr",
                "customer_type": "consumer",
                "institution_kind": "",
                "preferred_store_id": "S2" if c.startswith("t") and int(c[1:]) >= 30 else "S1",
                "updated_at": "2026-01-01T00:00:00Z",
            }
            for c in people
        ],
    )
    ids: dict[str, str] = {}
    for i in range(40):
        c = f"t{i:02d}"
        ids[c] = _message(conn, "bookstore_daily", c, D, coupon_code="PROMO10" if i < 10 else None)
        _message(conn, "bookstore_daily", f"h{i:02d}", D, status="skipped")
    for i in range(10):
        ids[f"y{i:02d}"] = _message(conn, "bookstore_daily", f"y{i:02d}", Y)
    for i in range(5):
        _message(conn, "multi_touch", f"m{i}", Y, channel="push")
        _message(conn, "multi_touch", f"m{i}", Y + timedelta(hours=3), step=2, channel="sms")

    events = []
    for i in range(40):
        m, at = ids[f"t{i:02d}"], D + timedelta(minutes=5)
        events.append(_event("delivered" if i < 38 else "bounce", m, at))
        if i < 5 or 8 <= i < 20:
            events.append(_event("open", m, at + timedelta(hours=1)))
        if i < 8:
            events.append(_event("click", m, at + timedelta(hours=2)))
    for i in range(10):
        m = ids[f"y{i:02d}"]
        events.append(_event("delivered", m, Y + timedelta(minutes=5)))
        if i < 4:
            events.append(_event("open", m, Y + timedelta(hours=1)))
    (landing / "provider_events_1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))

    orders = [_order(f"o-t{i:02d}", f"t{i:02d}", D + timedelta(hours=3), "30.00") for i in range(16)]
    orders += [
        _order("o-t00-b", "t00", D + timedelta(hours=8), "15.00"),
        _order("o-t16", "t16", D + timedelta(hours=2), "50.00"),
        _order("o-t16", "t16", D + timedelta(hours=2), "50.00", status="cancelled"),
        _order("o-y00", "y00", Y + timedelta(hours=2), "25.00"),
        _order("o-m0", "m0", Y + timedelta(hours=5), "40.00"),
    ]
    orders += [_order(f"o-h{i:02d}", f"h{i:02d}", D + timedelta(hours=4), "30.00") for i in range(5)]
    (landing / "orders_1.jsonl").write_text("".join(json.dumps(o) + "\n" for o in orders))


@dataclass(frozen=True)
class World:
    url: str
    landing: Path


@pytest.fixture(scope="module")
def world(admin_url: str, airflow_metadata: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A warehouse after a real `cart_recovery_attribution` run at TA (built once for the module)."""
    from cart_recovery.db import ensure_schema

    name = f"cr_dash_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name)
    landing = tmp_path_factory.mktemp("landing")
    try:
        with psycopg.connect(url) as conn:
            ensure_schema(conn)
        with psycopg.connect(url, autocommit=True) as conn:
            write_world(conn, landing)
        run_dag("cart_recovery_attribution", TA, url, landing)
        yield World(url, landing)
    finally:
        drop_database(admin_url, name)


@pytest.fixture
def dash(world: World) -> Dashboard:
    with psycopg.connect(world.url) as conn:
        return load_dashboard(conn)


def figures(page: str, key: str, scope: str) -> str:
    """The text of the `data-figure` span of the headline card (what an analyst reads)."""
    marker = f'data-figure="{key}" data-scope="{scope}">'
    assert marker in page, marker
    return page.split(marker, 1)[1].split("<", 1)[0]


# --------------------------------------------------------------------------- loader and page, real marts


@pytest.mark.slow
def test_a5_headline_is_the_latest_report_day_and_the_period(dash: Dashboard) -> None:
    assert dash.day == DAY_D  # the latest report day in the marts, never the wall clock
    assert dash.campaigns == ["bookstore_daily", "multi_touch"]
    day, period = dash.headline["day"], dash.headline["period"]
    got = {k: day[k] for k in ("sent", "delivered", "opened", "clicked", "bounced", "orders", "conversions")}
    assert got == {
        "sent": 40,
        "delivered": 38,
        "opened": 20,
        "clicked": 8,
        "bounced": 2,
        "orders": 17,
        "conversions": 16,
    }
    assert (day["revenue"], day["eligible"], day["held_out"]) == (Decimal("495.00"), 80, 40)
    assert day["conversion_rate"] == Decimal("0.4")
    assert day["revenue_per_recipient"] == Decimal("12.375")
    # the whole period adds 11-18: bookstore_daily's 10 and multi_touch's 5 pushes and 5 SMS
    assert (period["sent"], period["orders"], period["revenue"]) == (60, 19, Decimal("560.00"))
    assert day["share_of_attributed_revenue"] == Decimal(1)  # the only campaign with sales on 11-19


@pytest.mark.slow
def test_a5_per_day_rows_cover_the_period_with_zeros(dash: Dashboard) -> None:
    assert len(dash.daily) == 30
    by_day = {r["report_date"]: r for r in dash.daily}
    assert {k: by_day[DAY_Y][k] for k in ("sent", "delivered", "opened", "clicked", "orders", "revenue")} == {
        "sent": 20,
        "delivered": 10,
        "opened": 4,
        "clicked": 0,
        "orders": 2,
        "revenue": Decimal("65.00"),
    }
    assert by_day[DAY_D]["revenue"] == Decimal("495.00")
    assert by_day[date(2026, 11, 1)]["sent"] == 0  # a day without messages is a zero, not a gap


@pytest.mark.slow
def test_a5_breakdowns_by_step_channel_tier_store_and_language(dash: Dashboard) -> None:
    def rows(dimension: str) -> dict[str, tuple]:
        return {r["value"]: (r["sent"], r["orders"], r["revenue"]) for r in dash.breakdowns[dimension]}

    assert rows("step") == {"1": (55, 18, Decimal("520.00")), "2": (5, 1, Decimal("40.00"))}
    assert rows("channel") == {
        "email": (50, 18, Decimal("520.00")),
        "push": (5, 0, Decimal("0.00")),
        "sms": (5, 1, Decimal("40.00")),
    }
    assert rows("coupon_tier") == {"none": (50, 8, Decimal("245.00")), "under_50": (10, 11, Decimal("315.00"))}
    assert rows("store") == {"S1": (50, 19, Decimal("560.00")), "S2": (10, 0, Decimal("0.00"))}
    assert {r["value"]: r["label"] for r in dash.breakdowns["store"]} == {
        "S1": "Librairie Pantoute",
        "S2": "Librairie Monet",
    }
    assert rows("language")["en"] == (5, 0, Decimal("0.00"))
    campaign_share = {r["value"]: r["share_of_revenue"] for r in dash.breakdowns["campaign"]}
    assert round(campaign_share["multi_touch"], 6) == Decimal("0.071429")  # 40.00 / 560.00 (A3)


@pytest.mark.slow
def test_a4_lift_with_its_interval_and_not_enough_data(dash: Dashboard) -> None:
    lift = {(r["campaign"], r["period"]): r for r in dash.lift}
    day = lift[("bookstore_daily", "day")]
    assert (day["treated_recipients"], day["treated_conversions"]) == (40, 16)
    assert (day["holdout_recipients"], day["holdout_conversions"]) == (40, 5)
    assert day["has_enough_data"]
    assert day["lift_status"] == "positive"
    assert round(float(day["absolute_lift_pts"]), 2) == 27.5
    assert round(float(day["absolute_lift_ci_low_pts"]), 2) == 9.18
    assert round(float(day["absolute_lift_ci_high_pts"]), 2) == 45.82
    assert lift[("multi_touch", "all_time")]["lift_status"] == "not_enough_data"


@pytest.mark.slow
def test_a5_page_shows_the_figures_charts_and_lift(dash: Dashboard) -> None:
    page = render_dashboard(dash)
    assert [figures(page, k, "day") for k in ("sent", "delivered", "opened", "clicked", "orders", "revenue")] == [
        "40",
        "38",
        "20",
        "8",
        "17",
        "495.00",
    ]
    assert figures(page, "conversion_rate", "day") == "40.0 %"
    assert figures(page, "revenue", "period") == "560.00"
    assert "<tr><td>2026-11-18</td><td>20</td><td>10</td><td>4</td><td>0</td><td>2</td><td>65.00</td>" in page
    for dimension in ("step", "channel", "coupon_tier", "store", "language"):
        assert f'<section id="by-{dimension}">' in page
    assert "S1 Librairie Pantoute" in page
    assert "+27.50 pts [+9.18 pts, +45.82 pts]" in page  # A4: the lift with its 95 % interval
    assert "beat the holdout" in page
    assert "not enough data (no held-out customers)" in page  # multi_touch has no holdout
    assert page.count("<svg") >= 2 + 2 * 5  # per-day charts, two per breakdown, the lift chart
    assert "@mail.example" not in page  # O5: aggregates only
    assert '<form class="filters"' in page


@pytest.mark.slow
def test_a5_period_and_campaign_filters(world: World) -> None:
    with psycopg.connect(world.url) as conn:
        one_day = load_dashboard(conn, day=DAY_Y, days=1, campaign="multi_touch")
        nothing = load_dashboard(conn, day=date(2026, 10, 1), days=7)
    assert one_day.day == DAY_Y
    assert one_day.start == DAY_Y
    assert (one_day.headline["day"]["sent"], one_day.headline["day"]["revenue"]) == (10, Decimal("40.00"))
    assert [r["value"] for r in one_day.breakdowns["step"]] == ["1", "2"]
    page = render_dashboard(nothing)
    assert 'id="no-selection"' in page
    assert "bookstore_daily, multi_touch" in page


@pytest.mark.slow
def test_a5_report_command_writes_the_static_page(world: World, tmp_path: Path) -> None:
    out = tmp_path / "report" / "index.html"
    env = dict(os.environ, AIRFLOW_CONN_CART_RECOVERY_DB=world.url)
    res = subprocess.run(
        [str(PROJECT / ".venv" / "bin" / "cart-recovery"), "report", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert f"{out} (report days 2026-10-21 to 2026-11-19, all campaigns)" in res.stdout
    page = out.read_text(encoding="utf-8")
    assert figures(page, "revenue", "day") == "495.00"
    assert '<form class="filters"' not in page  # static: no filter form pointing at a server


@pytest.mark.slow
def test_a5_route_serves_the_page_when_public(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CART_RECOVERY_DB", world.url)
    monkeypatch.setenv("CR_DASHBOARD_PUBLIC", "true")
    with TestClient(create_app()) as client:
        response = client.get("/dashboard", params={"day": "2026-11-19", "days": 7})
        assert response.status_code == 200
        assert figures(response.text, "sent", "day") == "40"
        assert "(7 days)" in response.text
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
        assert client.get("/dashboard", params={"days": 0}).status_code == 422
        evil = client.get("/dashboard", params={"campaign": '<script>alert("x")</script>'})
        assert evil.status_code == 200
        assert "<script>" not in evil.text
        assert "&lt;script&gt;" in evil.text  # the unknown campaign is named, escaped


# --------------------------------------------------------------------------- empty state, access


def test_a5_empty_marts_say_no_data_yet(db, tmp_path: Path) -> None:
    d = load_dashboard(db)
    assert not d.has_any_data
    assert d.day is None
    page = render_dashboard(d)
    assert 'id="no-data"' in page
    assert "No data yet — run cart_recovery_attribution." in page
    out = tmp_path / "r.html"
    assert not write_report(db, out).has_any_data
    assert "No data yet" in out.read_text(encoding="utf-8")


def test_a5_route_without_a_user_is_refused(db, monkeypatch: pytest.MonkeyPatch, airflow_metadata) -> None:
    """Through Airflow's own API server app: no token → 401 with a sign-in link, no figures."""
    from airflow.api_fastapi.app import create_app as create_airflow_app

    monkeypatch.delenv("CR_DASHBOARD_PUBLIC", raising=False)
    with TestClient(create_airflow_app(apps="core")) as api:
        response = api.get("/cart-recovery/dashboard")
        assert response.status_code == 401
        assert "Sign in to Airflow first" in response.text
        assert 'data-figure="sent"' not in response.text
        bad = api.get("/cart-recovery/dashboard", headers={"Authorization": "Bearer not-a-jwt"})
        assert bad.status_code == 403


@pytest.mark.slow
def test_a5_route_with_an_airflow_jwt(world: World, monkeypatch: pytest.MonkeyPatch, airflow_metadata) -> None:
    """A real JWT from Airflow's auth manager (the simple one, as configured here): as a Bearer header or as
    the `_token` cookie the UI sets at login (the frame's request carries it); a user without any role is
    refused (no read access to cart_recovery_attribution)."""
    from airflow.api_fastapi.app import create_app as create_airflow_app
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    monkeypatch.delenv("CR_DASHBOARD_PUBLIC", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_CART_RECOVERY_DB", world.url)
    with TestClient(create_airflow_app(apps="core")) as api:
        manager = get_auth_manager()
        viewer = manager.generate_jwt(SimpleAuthManagerUser(username="ana", role="viewer"))
        nobody = manager.generate_jwt(SimpleAuthManagerUser(username="zed", role=None))

        by_header = api.get("/cart-recovery/dashboard", headers={"Authorization": f"Bearer {viewer}"})
        assert by_header.status_code == 200
        assert figures(by_header.text, "revenue", "day") == "495.00"
        api.cookies.set("_token", viewer)
        by_cookie = api.get("/cart-recovery/dashboard", params={"campaign": "multi_touch", "day": "2026-11-18"})
        api.cookies.clear()
        assert by_cookie.status_code == 200
        assert figures(by_cookie.text, "revenue", "day") == "40.00"
        refused = api.get("/cart-recovery/dashboard", headers={"Authorization": f"Bearer {nobody}"})
        assert refused.status_code == 403
        assert "read access to the DAG cart_recovery_attribution" in refused.text


def test_a5_airflow_ui_lists_the_dashboard(airflow_metadata) -> None:
    """The plugin's external view: a "Cart recovery" nav entry framing /cart-recovery/dashboard."""
    from airflow import plugins_manager

    info = {p["name"]: p for p in plugins_manager.get_plugin_info()}
    views = info["cart_recovery"]["external_views"]
    assert [(v["name"], v["href"], v["destination"], v["url_route"]) for v in views] == [
        ("Cart recovery", "/cart-recovery/dashboard", "nav", "cart-recovery")
    ]
