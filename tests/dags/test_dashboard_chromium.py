"""A5 in a real browser: a demo shop's daily run (`airflow dags test cart_recovery_daily`, sending to the
local SendGrid stand-in), the customers' simulated responses (cart_recovery.demo.responses), the attribution
run the next morning, then the dashboard served over HTTP by the plugin's app (uvicorn) and the static report
file, each loaded in headless Chromium (Debian's `chromium`); the figures in the rendered DOM must be the
ones the warehouse holds, counted here straight from the outbox, the raw events and the attributed orders."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from cart_recovery.devtools.demo_run import attribution_t
from cart_recovery.devtools.sendgrid_standin import SendGridStandin
from tests.dags.runner import run_dag

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # the daily run: 09:00 in Montréal
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after Chromium has loaded and rendered `url` (no network beyond 127.0.0.1 and files)."""
    res = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return res.stdout


def figure(dom: str, key: str, scope: str = "day") -> str:
    found = re.findall(rf'<span data-figure="{key}" data-scope="{scope}">([^<]*)</span>', dom)
    assert len(found) == 1, (key, scope, found)
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The plugin's FastAPI app on a free local port (uvicorn in a thread); the dashboard public, as behind a
    proxy that authenticates (the Airflow JWT path has its own test in test_dashboard.py)."""
    import uvicorn

    from cart_recovery.api.app import create_app

    monkeypatch.setenv("CR_DASHBOARD_PUBLIC", "true")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_a5_dashboard_in_headless_chromium_after_a_real_run(
    airflow_metadata, db_url, db, landing, served, tmp_path: Path
) -> None:
    from cart_recovery.demo.generate import generate
    from cart_recovery.demo.responses import write_responses
    from cart_recovery.reporting.dashboard import write_report

    generate(landing, scale=0.1, seed=42, end=T, days=3)
    with SendGridStandin() as sg:
        run_dag("cart_recovery_daily", T, db_url, landing, sendgrid_url=sg.url)
    with psycopg.connect(db_url) as conn:
        responses = write_responses(conn, landing, T, seed=7)
    run_dag("cart_recovery_attribution", attribution_t(T), db_url, landing)

    # the truth, counted from the sources rather than from the marts the page reads
    sent, day = db.execute(
        "select count(*), min((decided_at at time zone 'America/Toronto')::date) from ops.messages "
        "where decided_at = %s and status = 'sent'",
        (T,),
    ).fetchone()
    assert sent == responses["sent"] > 10
    delivered, clicked = db.execute(
        "select count(distinct e.message_id) filter (where e.event = 'delivered'), "
        "count(distinct e.message_id) filter (where e.event = 'click') "
        "from raw.provider_events as e join ops.messages as m on e.message_id = m.message_id::text "
        "where m.decided_at = %s and m.status = 'sent'",
        (T,),
    ).fetchone()
    assert delivered == responses["delivered"]
    orders, revenue = db.execute(
        "select count(*), coalesce(sum(a.revenue), 0) from marts.attributed_orders as a "
        "join ops.messages as m on a.message_id = m.message_id where m.decided_at = %s",
        (T,),
    ).fetchone()
    assert orders > 0  # the responses bought something: the page has revenue to show
    completed = db.execute(
        "select coalesce(sum(total), 0) from raw.orders where event_id like 'rsp-%%' and status = 'completed'"
    ).fetchone()[0]
    assert revenue <= completed  # attributed revenue: some of the responses' completed orders, never more

    dom = dump_dom(f"{served}/dashboard", tmp_path / "profile-live")
    assert f"<strong>{day}</strong>" in dom  # the period ends on the run's report day
    assert figure(dom, "sent") == f"{sent:,}"
    assert figure(dom, "delivered") == f"{delivered:,}"
    assert figure(dom, "clicked") == f"{clicked:,}"
    assert figure(dom, "orders") == f"{orders:,}"
    assert figure(dom, "revenue") == f"{Decimal(revenue):,.2f}"
    assert 'id="by-store"' in dom
    assert 'id="lift-table"' in dom
    assert "not enough data (no held-out customers)" in dom  # bookstore_daily ships with holdout_percent 0
    assert dom.count("<svg") >= 4  # the charts are in the rendered page
    assert "@" not in re.sub(r"<style>.*?</style>", "", dom, flags=re.S)  # O5: no address on the page

    report = tmp_path / "report" / "index.html"
    with psycopg.connect(db_url) as conn:
        write_report(conn, report)
    static = dump_dom(report.as_uri(), tmp_path / "profile-file")
    for key in ("sent", "delivered", "opened", "clicked", "orders", "revenue"):
        assert figure(static, key) == figure(dom, key)
    assert '<form class="filters"' not in static
