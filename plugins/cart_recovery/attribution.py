"""Task bodies of `cart_recovery_attribution` (A2–A4): the dbt vars of the attribution models, the chain
the DAG file wires, and the run summary.

T is the run's data-interval end, as everywhere (O1, O2): the models read `decided_at` and T, never the
wall clock, so a replayed date gives the same rows. The summary logs figures only (counts, amounts,
rates): never a customer, an address or a phone number (O5). Heavy imports happen inside functions.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from cart_recovery import orchestration

log = logging.getLogger(__name__)

# The calendar the report days belong to (the shop's and the DAGs' timezone); dbt var `reporting_timezone`.
REPORTING_TIMEZONE = "America/Toronto"
# Every attribution model and its ancestors (the staging models, whose incremental tables take the
# orders and events loaded since the last build).
ATTRIBUTION_SELECT = ("+" + orchestration.ATTRIBUTION_TAG,)


def attribution_dbt_vars(context: Any) -> dict[str, Any]:
    """T and every campaign file, enabled or not: the messages a campaign sent before it was disabled keep
    its attribution window (A2)."""
    from cart_recovery.campaigns import load_campaigns, to_dbt_vars

    return {
        "evaluation_time": orchestration.evaluation_time(context).isoformat(),
        "campaigns": to_dbt_vars(load_campaigns()),
        "reporting_timezone": REPORTING_TIMEZONE,
    }


def set_attribution_dbt_vars(context: Any, operator: Any) -> None:
    """A cosmos interceptor: the attribution run's vars on each dbt task, just before its command is built."""
    operator.vars = attribution_dbt_vars(context)


def summarize_attribution(context: Any) -> dict[str, Any]:
    """Yesterday's figures (the report day before T's, whose 09:00 messages' window closed at 09:00 today)
    per campaign, and each campaign's lift over the last 28 days and all time. PII-free, for the log and XCom."""
    import pendulum

    from cart_recovery.db import connect

    t = orchestration.evaluation_time(context)
    day = pendulum.instance(t).in_timezone(REPORTING_TIMEZONE).date() - timedelta(days=1)
    with connect() as conn:
        cur = conn.execute(
            "select campaign, sum(eligible), sum(held_out), sum(sent), sum(delivered), sum(opened), "
            "sum(clicked), sum(orders), sum(conversions), sum(revenue), bool_and(is_final) "
            "from marts.campaign_performance_daily where report_date = %s group by campaign order by campaign",
            (day,),
        )
        performance = {}
        for campaign, eligible, held_out, sent, delivered, opened, clicked, orders, conv, revenue, final in cur:
            performance[campaign] = {
                "eligible": int(eligible),
                "held_out": int(held_out),
                "sent": int(sent),
                "delivered": int(delivered),
                "opened": int(opened),
                "clicked": int(clicked),
                "orders": int(orders),
                "revenue": float(revenue),
                "conversion_rate": round(conv / sent, 4) if sent else None,
                "revenue_per_recipient": round(float(revenue) / sent, 2) if sent else None,
                "is_final": bool(final),
            }
        lift = {}
        for campaign, period, absolute, low, high, relative, status in conn.execute(
            "select campaign, period, absolute_lift, absolute_lift_ci_low, absolute_lift_ci_high, relative_lift, "
            "lift_status from marts.campaign_lift where period in ('last_28_days', 'all_time') "
            "order by campaign, period"
        ):
            lift.setdefault(campaign, {})[period] = {
                "absolute_lift": _num(absolute),
                "ci95": [_num(low), _num(high)],
                "relative_lift": _num(relative),
                "status": status,
            }
        attributed = conn.execute(
            "select count(*), coalesce(sum(revenue), 0) from marts.attributed_orders "
            "where attributed_at > %s and attributed_at <= %s",
            (t - timedelta(days=1), t),
        ).fetchone()
    summary = {
        "evaluation_time": t.isoformat(),
        "report_date": day.isoformat(),
        "performance": performance,
        "lift": lift,
        "orders_attributed_in_last_24h": {"orders": attributed[0], "revenue": float(attributed[1])},
    }
    log.info("attribution summary: %s", summary)
    return summary


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def attribution_models() -> Any:
    """The attribution models and their staging ancestors as a cosmos task group (`build_models`)."""
    return orchestration.dbt_task_group(
        select=ATTRIBUTION_SELECT, exclude=(), interceptor=set_attribution_dbt_vars, partial=True
    )
