"""A1–A4 against the real dbt project: attribution of orders to messages (A2), the daily rollups (A3), the
lift against the holdout (A4), and replays of the incremental marts (O2).

One world, built as the attribution DAG builds it (`+tag:attribution`): messages decided by the daily run
of 2026-11-19 (D, 09:00 in Montréal) and by other campaigns, orders around them, provider events; the
attribution run is TA, 10:00 the next day. Every scenario has its own customers (ids start with the rule).
After the first build, data that arrives later and the runs of later dates, then a replay of TA.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.dbt.world import World, campaign, d, h, message_keys, rows

D = datetime.fromisoformat("2026-11-19T14:00:00+00:00")  # the daily run's T: 09:00 in Montréal
TA = datetime.fromisoformat("2026-11-20T15:00:00+00:00")  # the attribution run's T: 10:00 the next day
SECOND = d(1 / 86400)
DAY_D = date(2026, 11, 19)  # D's report day
DAY_LIFT = date(2026, 11, 18)

SELECT = "+tag:attribution"
CAMPAIGNS = [
    campaign("bookstore_daily"),
    campaign("hourly_x", cadence="hourly"),
    campaign("long_window", attribution_window_hours=48),
    campaign("lift_big", holdout_percent=50),
    campaign("lift_small", holdout_percent=50),
    campaign("sequence", steps=[{"channels": ["email"]}, {"channels": ["email"], "delay_minutes": 1440}]),
]


class AttributionWorld(World):
    """World with the outbox columns attribution reads (status, skip reason, provider id, coupon) and
    provider events that name their SendGrid message."""

    def outbox(
        self,
        campaign: str,
        customer_id: str,
        decided_at: datetime,
        *,
        status: str = "sent",
        step: int = 1,
        skip_reason: str | None = None,
        provider_message_id: str | None = None,
        coupon_code: str | None = None,
        cart_version: str | None = None,
        dry_run: bool = False,
    ) -> str:
        cart_id = f"cart-{customer_id}"
        version = cart_version or f"v-{customer_id}-{decided_at:%m%d%H}"
        key, message_id = message_keys(self.conn, campaign, step, cart_id, version, dry_run=dry_run)
        self._insert(
            "ops.messages",
            {
                "message_id": message_id,
                "idempotency_key": key,
                "campaign": campaign,
                "step": step,
                "channel": "email",
                "customer_id": customer_id,
                "cart_id": cart_id,
                "cart_version": version,
                "status": status,
                "skip_reason": skip_reason,
                "provider_message_id": provider_message_id or (f"pm-{message_id[:12]}" if status == "sent" else None),
                "decided_at": decided_at,
                "coupon_code": coupon_code,
            },
            provenance=False,
        )
        return message_id

    def sg_event(
        self,
        event: str,
        occurred_at: datetime,
        *,
        message_id: str | None = None,
        sg_message_id: str | None = None,
        sg_event_id: str | None = None,
    ) -> None:
        payload: dict[str, Any] = {"event": event, "timestamp": int(occurred_at.timestamp())}
        if message_id:
            payload["message_id"] = message_id
        self._insert(
            "raw.provider_events",
            {
                "sg_event_id": sg_event_id or uuid.uuid4().hex,
                "event": event,
                "email": None,
                "occurred_at": occurred_at,
                "sg_message_id": sg_message_id or f"sg-{uuid.uuid4().hex[:8]}.filter0001",
                "message_id": message_id,
                "campaign": None,
                "payload": json.dumps(payload),
            },
        )


def snapshot(conn, t: datetime) -> dict[str, Any]:
    """The rows a run at t owns: attributions of orders up to t, report days up to t's day."""
    day = (t - h(5)).date()
    return {
        "attributed": sorted(
            tuple(r.values())
            for r in rows(conn, "select * from marts.attributed_orders where attributed_at <= %s", (t,))
        ),
        "daily": sorted(
            tuple(r.values())
            for r in rows(conn, "select * from marts.campaign_performance_daily where report_date <= %s", (day,))
        ),
        "segments": sorted(
            tuple(str(v) for v in r.values())
            for r in rows(
                conn, "select * from marts.campaign_performance_daily_by_segment where report_date <= %s", (day,)
            )
        ),
        "lift": sorted(tuple(str(v) for v in r.values()) for r in rows(conn, "select * from marts.campaign_lift")),
    }


@pytest.fixture(scope="module")
def world(warehouse) -> dict[str, Any]:
    with warehouse.connect() as conn:
        w = AttributionWorld(conn, file_name="orders_1.jsonl")
        ids: dict[str, str] = {}
        w.store("s1")
        w.store("s2")
        w.customer("a3-en", locale="en", preferred_store_id="s2")
        w.cart("v-a3-en-1114", "cart-a3-en", D - h(20), "a3-en", store_id="s1")
        w.cart("v-a2-in-1114", "cart-a2-in", D - h(20), "a2-in", store_id="s1")

        # A2 window edges: an order exactly 24 h after the message is attributed, one second later is not
        ids["a2-in"] = w.outbox("bookstore_daily", "a2-in", D, cart_version="v-a2-in-1114")
        w.order("o-a2-in", "a2-in", D + h(24), ["x"])
        ids["a2-out"] = w.outbox("bookstore_daily", "a2-out", D)
        w.order("o-a2-out", "a2-out", D + h(24) + SECOND, ["x"])
        # two messages before one order: the latest wins (another campaign's earlier message loses)
        ids["a2-two-early"] = w.outbox("hourly_x", "a2-two", D - h(5))
        ids["a2-two-late"] = w.outbox("bookstore_daily", "a2-two", D)
        w.order("o-a2-two", "a2-two", D + h(3), ["x", "y", "z"])
        # the same campaign's later step wins over its first step
        ids["a2-seq-1"] = w.outbox("sequence", "a2-seq", D - d(1) - h(10))
        ids["a2-seq-2"] = w.outbox("sequence", "a2-seq", D - d(1) + h(2), step=2)
        w.order("o-a2-seq", "a2-seq", D - d(1) + h(5), ["x"])
        # another customer's order is not attributed to alice's message
        ids["a2-alice"] = w.outbox("bookstore_daily", "a2-alice", D)
        w.order("o-a2-bob", "a2-bob", D + h(1), ["x"])
        # an order before any message
        ids["a2-before"] = w.outbox("bookstore_daily", "a2-before", D)
        w.order("o-a2-before", "a2-before", D - h(1), ["x"])
        # cancelled and refunded orders (the latest event wins) are excluded
        ids["a2-cancel"] = w.outbox("bookstore_daily", "a2-cancel", D)
        w.order("o-a2-cancel", "a2-cancel", D + h(2), ["x"])
        w.order("o-a2-cancel", "a2-cancel", D + h(2), ["x"], status="cancelled")
        ids["a2-refund"] = w.outbox("bookstore_daily", "a2-refund", D)
        w.order("o-a2-refund", "a2-refund", D + h(2), ["x"])
        w.order("o-a2-refund", "a2-refund", D + h(2), ["x"], status="refunded")
        # two orders in one window: both attributed to the one message, each once
        ids["a2-twice"] = w.outbox("bookstore_daily", "a2-twice", D)
        w.order("o-a2-twice-1", "a2-twice", D + h(1), ["x", "y"])
        w.order("o-a2-twice-2", "a2-twice", D + h(6), ["x"])
        # only sent messages: held out (E8), failed and dry-run rows attribute nothing
        ids["a2-held"] = w.outbox("bookstore_daily", "a2-held", D, status="skipped", skip_reason="holdout")
        w.order("o-a2-held", "a2-held", D + h(2), ["x"])
        ids["a2-failed"] = w.outbox("bookstore_daily", "a2-failed", D, status="failed")
        w.order("o-a2-failed", "a2-failed", D + h(2), ["x"])
        w.outbox("bookstore_daily", "a2-dry", D, status="dry_run", dry_run=True)
        w.order("o-a2-dry", "a2-dry", D + h(2), ["x"])
        # a campaign's own window: 48 h
        ids["a2-long"] = w.outbox("long_window", "a2-long", D - d(1))
        w.order("o-a2-long", "a2-long", D + h(6), ["x"])
        # hourly_x's other message of day D converts (the day's other campaign-attributed sales)
        ids["a3-hourly"] = w.outbox("hourly_x", "a3-hourly", D + h(2))
        w.order("o-a3-hourly", "a3-hourly", D + h(4), ["x", "y", "z"])
        # A3 segments: an English customer of store s2 with a coupon (static code of the under-50 tier)
        ids["a3-en"] = w.outbox("bookstore_daily", "a3-en", D, coupon_code="PROMO10", cart_version="v-a3-en-1114")
        w.order("o-a3-en", "a3-en", D + h(3), ["x", "y", "z", "w", "v"])

        # A1 provider events: by our message_id custom arg, else by the SendGrid message id's prefix;
        # a re-delivery under a new event id counts once
        w.sg_event("delivered", D + h(0.1), message_id=ids["a2-in"], sg_message_id="sgA.filter1")
        w.sg_event("open", D + h(1), message_id=ids["a2-in"], sg_message_id="sgA.filter1")
        w.sg_event("open", D + h(1), message_id=ids["a2-in"], sg_message_id="sgA.filter1")
        w.sg_event("delivered", D + h(0.2), sg_message_id=f"pm-{ids['a2-alice'][:12]}.filter0001.1.2")
        w.sg_event("click", D + h(2), sg_message_id=f"pm-{ids['a2-alice'][:12]}.filter0001.1.2")
        w.sg_event("bounce", D + h(0.1), message_id=ids["a2-before"])
        w.sg_event("open", TA + h(1), message_id=ids["a2-twice"])  # after T: not counted yet

        # A4 lift: lift_big has 100 treated (40 convert) and 100 held out (10 convert), lift_small 10 and 10
        for name, n, treated_conv, held_conv in (("lift_big", 100, 40, 10), ("lift_small", 10, 3, 1)):
            for i in range(n):
                for group, converts in (("t", treated_conv), ("c", held_conv)):
                    cid = f"a4-{name}-{group}{i:03d}"
                    if group == "t":
                        w.outbox(name, cid, D - d(1))
                    else:
                        w.outbox(name, cid, D - d(1), status="skipped", skip_reason="holdout")
                    if i < converts:
                        w.order(f"o-{cid}", cid, D - d(1) + h(3), ["x"])
        # a held-out customer's order after the lift window does not convert
        w.order("o-a4-late", "a4-lift_big-c099", D - d(1) + h(24) + SECOND, ["x"])

        warehouse.build(TA, CAMPAIGNS, select=SELECT)
        first = snapshot(conn, TA)
        lift_first = rows(conn, "select * from marts.campaign_lift")
        segments_first = rows(
            conn,
            "select * from marts.campaign_performance_daily_by_segment where report_date = %s",
            (DAY_D,),
        )
        warehouse.build(TA, CAMPAIGNS, args=["test", "--quiet", "--indirect-selection", "cautious"], select=SELECT)

        # data that arrives after TA's run, and the next day's run
        w = AttributionWorld(conn, file_name="orders_2.jsonl")
        w.order("o-a2-twice-2", "a2-twice", D + h(6), ["x"], status="refunded")  # refunded later
        w.order("o-a2-late", "a2-alice", D + h(20), ["x"])  # placed before TA, loaded after its run
        ids["day2"] = w.outbox("bookstore_daily", "a2-day2", D + d(2))
        w.order("o-a2-day2", "a2-day2", D + d(2) + h(1), ["x"])
        warehouse.build(TA + d(2), CAMPAIGNS, select=SELECT)
        second = snapshot(conn, TA + d(2))
        second_all = {r["order_id"]: r for r in rows(conn, "select * from marts.attributed_orders")}

        # a replay of TA after the later run: TA's rows as TA sees the data now
        warehouse.build(TA, CAMPAIGNS, select=SELECT)
        replay = snapshot(conn, TA)
        replay_all = {r["order_id"]: r for r in rows(conn, "select * from marts.attributed_orders")}
        replay_days = {r["report_date"] for r in rows(conn, "select report_date from marts.campaign_performance_daily")}
        warehouse.build(TA, CAMPAIGNS, select=SELECT)
        replay_again = snapshot(conn, TA)
        warehouse.build(TA, CAMPAIGNS, args=["test", "--quiet", "--indirect-selection", "cautious"], select=SELECT)

        # a refund that arrives after the order left every run's lookback period
        w.order("o-a2-in", "a2-in", D + h(24), ["x"], status="refunded")
        warehouse.build(TA + d(5), CAMPAIGNS, select=SELECT)
        late_refund = snapshot(conn, TA + d(5))
        return {
            "lift_first": lift_first,
            "segments_first": segments_first,
            "late_refund": late_refund,
            "ids": ids,
            "first": first,
            "second": second,
            "second_all": second_all,
            "replay": replay,
            "replay_again": replay_again,
            "replay_all": replay_all,
            "replay_days": replay_days,
        }


def attributed(world, run: str = "first") -> dict[str, dict[str, Any]]:
    cols = ["order_id", "message_id", "campaign", "revenue", "attributed_at"]
    return {r[0]: {**dict(zip(cols, r[:5], strict=True)), "message_id": str(r[1])} for r in world[run]["attributed"]}


def test_a2_order_exactly_at_the_window_end_is_attributed(world):
    got = attributed(world)["o-a2-in"]
    assert got["message_id"] == world["ids"]["a2-in"]
    assert got["campaign"] == "bookstore_daily"
    assert got["revenue"] == Decimal("10.00")
    assert got["attributed_at"] == D + h(24)


def test_a2_order_one_second_after_the_window_is_not(world):
    assert "o-a2-out" not in attributed(world)


def test_a2_two_messages_before_one_order_the_latest_wins(world):
    assert attributed(world)["o-a2-two"]["message_id"] == world["ids"]["a2-two-late"]
    assert attributed(world)["o-a2-seq"]["message_id"] == world["ids"]["a2-seq-2"], "the later step"


def test_a2_another_customers_order_is_not_attributed(world):
    got = attributed(world)
    assert "o-a2-bob" not in got
    assert world["ids"]["a2-alice"] not in {r["message_id"] for r in got.values()}


def test_a2_order_before_any_message_is_not_attributed(world):
    assert "o-a2-before" not in attributed(world)


def test_a2_cancelled_and_refunded_orders_are_excluded(world):
    got = attributed(world)
    assert "o-a2-cancel" not in got
    assert "o-a2-refund" not in got


def test_a2_only_sent_messages_attribute(world):
    got = attributed(world)
    assert not {"o-a2-held", "o-a2-failed", "o-a2-dry"} & set(got)


def test_a2_window_is_the_campaigns_setting(world):
    assert attributed(world)["o-a2-long"]["message_id"] == world["ids"]["a2-long"]  # 30 h, window 48 h


def test_a2_each_order_at_most_once(world):
    orders = [r[0] for r in world["first"]["attributed"]]
    assert len(orders) == len(set(orders))
    assert {"o-a2-twice-1", "o-a2-twice-2"} <= set(orders)
    assert sorted(attributed(world)) == sorted(
        [
            "o-a2-in",
            "o-a2-two",
            "o-a2-seq",
            "o-a2-twice-1",
            "o-a2-twice-2",
            "o-a2-long",
            "o-a3-hourly",
            "o-a3-en",
            *[f"o-a4-lift_big-t{i:03d}" for i in range(40)],
            *[f"o-a4-lift_small-t{i:03d}" for i in range(3)],
        ]
    )


def daily(world, run: str = "first") -> dict[tuple, dict[str, Any]]:
    cols = [
        "report_date",
        "campaign",
        "step",
        "channel",
        "eligible",
        "held_out",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "bounced",
        "orders",
        "conversions",
        "revenue",
        "conversion_rate",
        "revenue_per_recipient",
        "share_of_attributed_revenue",
        "attributed_revenue_all_campaigns",
        "shop_revenue",
        "share_of_shop_revenue",
        "is_final",
        "evaluated_at",
    ]
    out = {}
    for r in world[run]["daily"]:
        row = dict(zip(cols, r, strict=True))
        out[(row["report_date"], row["campaign"], row["step"], row["channel"])] = row
    return out


def test_a3_daily_rollup_of_the_bookstore_campaign(world):
    row = daily(world)[(DAY_D, "bookstore_daily", 1, "email")]
    # sent: in, out, two, alice, before, cancel, refund, twice, en; + held out + failed; the dry run is not counted
    assert row["eligible"] == 11
    assert row["held_out"] == 1
    assert row["sent"] == 9
    assert row["delivered"] == 2  # a2-in by custom arg, a2-alice by SendGrid message id
    assert row["opened"] == 2  # a2-in's open (re-delivered: once), a2-alice's click implies an open
    assert row["clicked"] == 1
    assert row["bounced"] == 1
    assert row["orders"] == 5  # in, two, twice ×2, en
    assert row["conversions"] == 4
    assert row["revenue"] == Decimal("120.00")  # 10 + 30 + 20 + 10 + 50
    assert row["conversion_rate"] == Decimal("0.444444")
    assert row["revenue_per_recipient"] == Decimal("13.3333")
    # the day's campaign-attributed sales: bookstore 120, hourly_x 30 (a3-hourly; a2-two's order went to bookstore)
    assert row["attributed_revenue_all_campaigns"] == Decimal("150.00")
    assert row["share_of_attributed_revenue"] == Decimal("0.800000")
    assert row["is_final"] is True
    assert row["evaluated_at"] == TA
    hourly = daily(world)[(DAY_D, "hourly_x", 1, "email")]
    assert (hourly["sent"], hourly["orders"], hourly["revenue"]) == (2, 1, Decimal("30.00"))
    assert hourly["share_of_attributed_revenue"] == Decimal("0.200000")
    assert hourly["is_final"] is False, "a2-two's early message is final, a3-hourly's window ends after TA"


def test_a3_shop_revenue_counts_every_completed_order_of_the_day(world, warehouse):
    with warehouse.connect() as conn:
        shop = conn.execute(
            "select sum(total) from staging.stg_shop__orders where status = 'completed' "
            "and (placed_at at time zone 'America/Toronto')::date = %s and placed_at <= %s",
            (DAY_D, TA),
        ).fetchone()[0]
    row = daily(world, "replay")[(DAY_D, "bookstore_daily", 1, "email")]
    assert row["shop_revenue"] == shop > row["revenue"]
    assert row["share_of_shop_revenue"] == round(row["revenue"] / shop, 6)


def test_a3_segments_add_up_to_the_daily_rows(world):
    seg = [r for r in world["segments_first"] if r["campaign"] == "bookstore_daily"]
    en = [(r["coupon_tier"], r["store_id"], r["sent"], r["orders"], r["revenue"]) for r in seg if r["locale"] == "en"]
    assert en == [("under_50", "s2", 1, 1, Decimal("50.00"))], "M4 preferred store, M1 locale, C3 static code's tier"
    assert {r["store_id"] for r in seg if r["locale"] == "fr"} == {"s1", None}  # a2-in's cart store; no cart
    row = daily(world)[(DAY_D, "bookstore_daily", 1, "email")]
    for figure in (
        "eligible",
        "held_out",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "orders",
        "conversions",
        "revenue",
    ):
        assert sum(r[figure] for r in seg) == row[figure], figure
    assert sum(r["share_of_attributed_revenue"] for r in seg) == row["share_of_attributed_revenue"]


def lift_rows(world, campaign_name: str) -> dict[str, dict[str, Any]]:
    """The lift as the first run at TA saw it."""
    return {r["period"]: r for r in world["lift_first"] if r["campaign"] == campaign_name}


def test_a4_lift_with_enough_data(world):
    got = lift_rows(world, "lift_big")
    assert set(got) == {"day", "last_7_days", "last_28_days", "all_time"}
    row = got["day"]
    assert row["period_start"] == DAY_LIFT
    assert (row["treated_recipients"], row["treated_conversions"]) == (100, 40)
    assert (row["holdout_recipients"], row["holdout_conversions"]) == (100, 10)
    assert row["has_enough_data"] is True
    assert row["lift_status"] == "positive"
    pt, pc = 0.4, 0.1
    margin = 1.959964 * math.sqrt(pt * (1 - pt) / 100 + pc * (1 - pc) / 100)
    assert float(row["absolute_lift"]) == pytest.approx(0.3, abs=1e-6)
    assert float(row["absolute_lift_ci_low"]) == pytest.approx(0.3 - margin, abs=1e-6)
    assert float(row["absolute_lift_ci_high"]) == pytest.approx(0.3 + margin, abs=1e-6)
    log_margin = 1.959964 * math.sqrt(1 / 40 - 1 / 100 + 1 / 10 - 1 / 100)
    assert float(row["relative_lift"]) == pytest.approx(3.0, abs=1e-6)
    assert float(row["relative_lift_ci_low"]) == pytest.approx(math.exp(math.log(4) - log_margin) - 1, abs=1e-5)
    assert float(row["relative_lift_ci_high"]) == pytest.approx(math.exp(math.log(4) + log_margin) - 1, abs=1e-5)
    assert row["incremental_conversions"] == Decimal("30.00")
    assert row["incremental_revenue"] == Decimal("300.00")  # (400 / 100 - 100 / 100) × 100
    assert got["all_time"]["treated_recipients"] == 100, "one report day: every period holds the same decisions"


def test_a4_lift_without_enough_data(world):
    row = lift_rows(world, "lift_small")["day"]
    assert (row["treated_recipients"], row["holdout_recipients"]) == (10, 10)
    assert row["has_enough_data"] is False
    assert row["lift_status"] == "not_enough_data"
    assert float(row["absolute_lift"]) == pytest.approx(0.2)  # the point estimate is still shown
    assert row["absolute_lift_ci_low"] is None
    assert row["relative_lift_ci_high"] is None
    # one held-out decision (bookstore_daily) or none at all (hourly_x): not enough data either
    bookstore = lift_rows(world, "bookstore_daily")["day"]
    assert (bookstore["holdout_recipients"], bookstore["lift_status"]) == (1, "not_enough_data")
    hourly = lift_rows(world, "hourly_x")["day"]
    assert (hourly["holdout_recipients"], hourly["holdout_conversion_rate"], hourly["absolute_lift"]) == (0, None, None)
    assert hourly["lift_status"] == "not_enough_data"


def test_o2_replaying_a_date_gives_the_same_rows(world):
    assert world["replay"] == world["replay_again"]
    # what changed between the first run and the replay is the data that arrived after it, nothing else
    first, replay = attributed(world, "first"), attributed(world, "replay")
    assert set(first) - set(replay) == {"o-a2-twice-2"}, "refunded after TA's first run"
    assert set(replay) - set(first) == {"o-a2-late"}, "loaded after TA's first run"
    assert {k: v for k, v in first.items() if k != "o-a2-twice-2"} == {
        k: v for k, v in replay.items() if k != "o-a2-late"
    }


def test_a2_incremental_run_catches_late_orders_and_refunds(world):
    later = world["second_all"]
    assert "o-a2-twice-2" not in later
    assert str(later["o-a2-late"]["message_id"]) == world["ids"]["a2-alice"]
    assert str(later["o-a2-day2"]["message_id"]) == world["ids"]["day2"]
    # the rollup of day D follows: one order fewer and one more for the bookstore campaign
    row = daily(world, "second")[(DAY_D, "bookstore_daily", 1, "email")]
    assert (row["orders"], row["conversions"], row["revenue"]) == (5, 5, Decimal("120.00"))


def test_a2_a_refund_after_the_lookback_still_removes_the_attribution(world):
    assert "o-a2-in" in attributed(world, "second")
    assert "o-a2-in" not in attributed(world, "late_refund")
    row = daily(world, "late_refund")[(DAY_D, "bookstore_daily", 1, "email")]
    assert (row["orders"], row["revenue"]) == (4, Decimal("110.00")), "the day's rollup follows"


def test_o2_a_replay_keeps_the_later_runs_rows(world):
    assert "o-a2-day2" in world["second_all"]
    assert world["replay_all"]["o-a2-day2"] == world["second_all"]["o-a2-day2"]
    assert date(2026, 11, 21) in world["replay_days"], "a later day's report stays after replaying TA"
