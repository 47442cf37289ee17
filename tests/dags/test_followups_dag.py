"""`cart_recovery_followups` (contract §3): its shape and scope, then a simulated day walked with
`airflow dags test` at the hours where multi_touch's steps fall due — push 1 h after abandonment, SMS with
5 % 3 h later, email with the tiered coupon 20 h after that (F1) — building the dbt models through cosmos
with `decision_scope=followups` and sending with the real clients to the local stand-ins. The shop and the
campaign files are `make demo-followups`'s (cart_recovery.devtools.demo_followups): one world for both.

The walk needs the follow-up models (the dbt side of issue 6: `decision_scope`); until the dbt project has
them it is skipped with that reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from cart_recovery import CAMPAIGNS_DIR, DBT_PROJECT_DIR
from cart_recovery.devtools.channel_standins import ChannelStandins, make_vapid_key
from cart_recovery.devtools.demo_followups import PHONES, write_campaigns, write_shop
from cart_recovery.devtools.sendgrid_standin import SendGridStandin
from tests.dags.runner import PROJECT, run_dag


# --------------------------------------------------------------------------- shape (fast)
@pytest.fixture(scope="module")
def dag(airflow_metadata):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT / "dags" / "cart_recovery_followups.py"))
    assert bag.import_errors == {}
    return bag.get_dag("cart_recovery_followups")


def test_followups_dag_is_hourly_in_toronto_with_the_decide_and_send_chain(dag) -> None:
    assert "0 * * * *" in dag.timetable.summary
    assert str(dag.timetable._timezone) in ("America/Toronto", "Timezone('America/Toronto')")
    assert dag.timetable._interval == timedelta(hours=1), "T - 1 h .. T: consecutive runs meet"
    send = dag.get_task("send_messages")
    assert "assign_coupons" in send.upstream_task_ids
    assert "summarize_run" in send.downstream_task_ids
    assert any(t.startswith("build_models.") for t in dag.task_ids)
    assert set(dag.params.keys()) >= {"dry_run", "campaigns"}


def test_followups_scope_vars_and_campaigns(tmp_path, monkeypatch) -> None:
    """decision_scope=followups; enabled hourly campaigns and daily ones with follow-up steps only."""
    from cart_recovery import orchestration

    folder = write_campaigns(tmp_path / "campaigns")
    two_steps = yaml.safe_load((CAMPAIGNS_DIR / "bookstore_daily.yml").read_text())
    two_steps.update(
        name="daily_with_reminder", steps=[*two_steps["steps"], {"channels": ["email"], "delay_minutes": 1440}]
    )
    (folder / "daily_with_reminder.yml").write_text(yaml.safe_dump(two_steps), encoding="utf-8")
    monkeypatch.setenv("AIRFLOW_VAR_CART_RECOVERY_CAMPAIGNS_DIR", str(folder))
    t = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    context = {"data_interval_end": t, "params": {}}
    followups = orchestration.dbt_vars(context, "followups")
    assert followups["decision_scope"] == "followups"
    assert followups["evaluation_time"] == t.isoformat()
    assert sorted(c["name"] for c in followups["campaigns"]) == ["daily_with_reminder", "multi_touch"]
    daily = orchestration.dbt_vars(context)
    assert daily["decision_scope"] == "daily"
    assert sorted(c["name"] for c in daily["campaigns"]) == ["bookstore_daily", "daily_with_reminder"]
    with pytest.raises(ValueError, match="bookstore_daily"):
        orchestration.campaigns_for({**context, "params": {"campaigns": ["bookstore_daily"]}}, "followups")


# --------------------------------------------------------------------------- the simulated day (slow)
def _has_followup_models() -> bool:
    models = DBT_PROJECT_DIR / "models"
    return any("decision_scope" in p.read_text(encoding="utf-8") for p in models.rglob("*.sql"))


@pytest.mark.slow
@pytest.mark.skipif(not _has_followup_models(), reason="needs the follow-up dbt models (decision_scope, issue 6)")
def test_f1_multi_touch_push_sms_email_over_a_simulated_day(airflow_metadata, db_url, db, landing, tmp_path) -> None:
    campaigns = write_campaigns(tmp_path / "campaigns")
    with ChannelStandins() as ch, SendGridStandin() as sg:
        endpoints = write_shop(landing, ch)
        private, _ = make_vapid_key()
        env = {
            "AIRFLOW_VAR_CART_RECOVERY_CAMPAIGNS_DIR": str(campaigns),
            "AIRFLOW_CONN_TWILIO_DEFAULT": json.dumps(
                {"login": "ACday", "password": "t", "host": ch.url, "extra": {"from_number": "+15145550000"}}
            ),
            "AIRFLOW_CONN_WEBPUSH_DEFAULT": json.dumps(
                {"password": private, "extra": {"subject": "mailto:r@l.example"}}
            ),
            "AIRFLOW_CONN_FCM_DEFAULT": json.dumps({"host": ch.url, "password": json.dumps(ch.service_account_info())}),
            "CR_UNSUBSCRIBE_SECRET": "test-secret",
        }
        pushed = lambda: sorted(w.endpoint_id for w in ch.webpush)  # noqa: E731
        texted = lambda: sorted(s.to for s in ch.sms)  # noqa: E731
        mailed = lambda: sorted(m.to[0] for m in sg.accepted)  # noqa: E731

        def hour(local_day: int, local_hour: int) -> None:
            t = datetime(2026, 11, local_day, local_hour, tzinfo=ZoneInfo("America/Toronto")).astimezone(UTC)
            # airflow dags test takes the logical date; the hourly timetable's interval ends there
            run_dag("cart_recovery_followups", t, db_url, landing, sendgrid_url=sg.url, extra_env=env)

        # 12:00: ana's and ben's push (09:30 + 60 min abandon_after + 60 min delay = 11:30 <= T)
        hour(20, 12)
        assert pushed() == [endpoints["ana"], endpoints["ben"]]
        assert texted() == []
        assert db.execute("select status, skip_reason from ops.messages where customer_id = 'eve'").fetchall() == [
            ("skipped", "no_push_subscription")
        ], "eve's push step is skipped with its reason (F3)"
        # 15:00: 3 h after the push, ana's SMS; ben bought at 13:00 and leaves the sequence (F2)
        hour(20, 15)
        assert texted() == [PHONES["ana"], PHONES["eve"]], "eve's sequence went on after the skipped push"
        sms = next(s for s in ch.sms if s.to == PHONES["ana"])
        assert "PROMO5" in sms.body, "the SMS tier: 5 % (C1)"
        assert "STOP" in sms.body
        # 20:00: dee's push (17:30 + 2 h)
        hour(20, 20)
        assert pushed() == sorted(endpoints.values())
        # 23:00: dee's SMS is due but it is 23:00 in Montréal: deferred to 08:00 (F4)
        hour(20, 23)
        assert texted() == [PHONES["ana"], PHONES["eve"]]
        send_after = db.execute(
            "select send_after from ops.messages where customer_id = 'dee' and channel = 'sms'"
        ).fetchone()[0]
        assert send_after == datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
        # 08:00 the next day: the deferred SMS goes, once
        hour(21, 8)
        assert texted() == [PHONES["ana"], PHONES["dee"], PHONES["eve"]]
        # 11:00: ana's and eve's emails, 20 h after their SMS, with the tiered coupon (60 $ -> 15 %)
        hour(21, 11)
        assert mailed() == ["ana@mail.example", "eve@mail.example"]
        codes = db.execute("select coupon_code from ops.messages where step = 3 order by customer_id").fetchall()
        assert codes == [("PROMO15",), ("PROMO15",)], "the email step's value tier: 60 $ -> 15 % (C1)"

        counts = db.execute(
            "select step, channel, status, count(*) from ops.messages group by 1, 2, 3 order by 1, 2, 3"
        ).fetchall()
        print("\nsimulated day, multi_touch, messages by step, channel and status:")
        for step, channel, status, n in counts:
            print(f"  step {step} {channel:5} {status:8} {n}")
        assert counts == [
            (1, "push", "sent", 3),
            (1, "push", "skipped", 1),
            (2, "sms", "sent", 3),
            (3, "email", "sent", 2),
        ]
        assert (
            db.execute(
                "select reason from marts.recipient_exclusions where customer_id = 'ben' and step >= 2"
            ).fetchall()
            or db.execute(
                "select skip_reason from ops.messages where customer_id = 'ben' and status = 'skipped'"
            ).fetchall()
        ), "ben's exit is recorded with a reason (F2, E9)"
