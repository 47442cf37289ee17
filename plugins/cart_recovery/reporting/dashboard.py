"""The dashboard (A5): the attribution marts' figures for a period, rendered as one self-contained HTML page.

The same page is served inside the Airflow UI (`GET /cart-recovery/dashboard`, cart_recovery.api.app) and
written as the static report (`cart-recovery report`). It reads only aggregates — A3's
`marts.campaign_performance_daily` and `…_by_segment`, A4's `marts.campaign_lift`, and store names — never
a customer, an address or a phone number (O5).

Every figure, rate included, is computed in SQL over whole sets (one query per section); Python only maps
rows to the template. The period ends on `day` (default: the latest report day in the marts — never the
wall clock) and spans `days` report days (default 30). Rates use the marts' definitions: conversion rate =
conversions / sent, revenue per recipient = revenue / sent, recovery's share of campaign-attributed sales
= revenue / revenue attributed to every campaign's messages of the same days (A3), and the share of all the
shop's completed sales of those days.

Empty marts (no attribution run yet) give a page that says so, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from cart_recovery import TEMPLATES_DIR
from cart_recovery.reporting import charts

DEFAULT_DAYS = 30
MAX_DAYS = 400
ATTRIBUTION_DAG_ID = "cart_recovery_attribution"
MARTS = ("marts.campaign_performance_daily", "marts.campaign_performance_daily_by_segment", "marts.campaign_lift")
# (key in the SQL, heading) in page order; `campaign` only matters when several campaigns ran
DIMENSIONS = (
    ("campaign", "Campaign"),
    ("step", "Step"),
    ("channel", "Channel"),
    ("coupon_tier", "Coupon tier"),
    ("store", "Store"),
    ("language", "Language"),
)
CHART_TOP = 15  # bars per breakdown chart (the table lists every row)
CHART_WIDTH = 580  # two charts side by side in the page's 1,260 px
LIFT_PERIODS = ("day", "last_7_days", "last_28_days", "all_time")

# Every count and amount of one scope, with the rates computed from the sums (A3's definitions).
_FIGURES = """
    coalesce(sum(eligible), 0)::bigint as eligible,
    coalesce(sum(held_out), 0)::bigint as held_out,
    coalesce(sum(sent), 0)::bigint as sent,
    coalesce(sum(delivered), 0)::bigint as delivered,
    coalesce(sum(opened), 0)::bigint as opened,
    coalesce(sum(clicked), 0)::bigint as clicked,
    coalesce(sum(bounced), 0)::bigint as bounced,
    coalesce(sum(orders), 0)::bigint as orders,
    coalesce(sum(conversions), 0)::bigint as conversions,
    coalesce(sum(revenue), 0)::numeric(14, 2) as revenue,
    sum(delivered)::numeric / nullif(sum(sent), 0) as delivery_rate,
    sum(opened)::numeric / nullif(sum(sent), 0) as open_rate,
    sum(clicked)::numeric / nullif(sum(sent), 0) as click_rate,
    sum(conversions)::numeric / nullif(sum(sent), 0) as conversion_rate,
    sum(revenue) / nullif(sum(sent), 0) as revenue_per_recipient,
    bool_and(is_final) as is_final"""

_FILTER = "(%(campaign)s::text is null or campaign = %(campaign)s)"

# Headline: the latest day and the whole period. The day-level totals (every campaign's attributed revenue,
# the shop's revenue) repeat on each row of a day, so they are taken once per day before summing.
HEADLINE_SQL = f"""
with scoped as (
    select 'day' as scope, p.* from marts.campaign_performance_daily as p
    where p.report_date = %(day)s and {_FILTER}
    union all
    select 'period' as scope, p.* from marts.campaign_performance_daily as p
    where p.report_date between %(start)s and %(day)s and {_FILTER}
),
totals as (
    select scope, {_FIGURES}, max(evaluated_at) as evaluated_at
    from scoped
    group by scope
),
day_level as (
    select
        scope,
        sum(attributed_revenue_all_campaigns) as attributed_all_campaigns,
        sum(shop_revenue) as shop_revenue
    from (
        select distinct on (scope, report_date) scope, report_date, attributed_revenue_all_campaigns, shop_revenue
        from scoped
        order by scope, report_date
    ) as days
    group by scope
)
select
    totals.*,
    day_level.attributed_all_campaigns,
    day_level.shop_revenue,
    totals.revenue / nullif(day_level.attributed_all_campaigns, 0) as share_of_attributed_revenue,
    totals.revenue / nullif(day_level.shop_revenue, 0) as share_of_shop_revenue
from totals
left join day_level on totals.scope = day_level.scope
"""

# One row per day of the period, zeros on days without messages.
DAILY_SQL = f"""
with days as (
    select d::date as report_date
    from generate_series(%(start)s::date, %(day)s::date, interval '1 day') as d
),
per_day as (
    select report_date, {_FIGURES}
    from marts.campaign_performance_daily
    where report_date between %(start)s and %(day)s and {_FILTER}
    group by report_date
)
select
    days.report_date,
    coalesce(per_day.sent, 0) as sent,
    coalesce(per_day.delivered, 0) as delivered,
    coalesce(per_day.opened, 0) as opened,
    coalesce(per_day.clicked, 0) as clicked,
    coalesce(per_day.orders, 0) as orders,
    coalesce(per_day.conversions, 0) as conversions,
    coalesce(per_day.revenue, 0) as revenue,
    per_day.conversion_rate,
    per_day.revenue_per_recipient,
    per_day.is_final
from days
left join per_day on days.report_date = per_day.report_date
order by days.report_date
"""

# Every breakdown of the period in one pass (grouping sets over the additive segment counts, A3).
BREAKDOWN_SQL = f"""
with segments as (
    select
        campaign,
        step::text as step,
        channel,
        coupon_tier,
        coalesce(store_id, '(none)') as store,
        coalesce(locale, '(none)') as language,
        eligible, held_out, sent, delivered, opened, clicked, bounced, orders, conversions, revenue, is_final
    from marts.campaign_performance_daily_by_segment
    where report_date between %(start)s and %(day)s and {_FILTER}
),
grouped as (
    select
        case
            when grouping(campaign) = 0 then 'campaign'
            when grouping(step) = 0 then 'step'
            when grouping(channel) = 0 then 'channel'
            when grouping(coupon_tier) = 0 then 'coupon_tier'
            when grouping(store) = 0 then 'store'
            else 'language'
        end as dimension,
        coalesce(campaign, step, channel, coupon_tier, store, language) as value,
        {_FIGURES}
    from segments
    group by grouping sets ((campaign), (step), (channel), (coupon_tier), (store), (language))
),
store_names as (
    select distinct on (store_id) store_id, name
    from raw.stores
    order by store_id, _file_name desc, _line_number desc
)
select
    grouped.*,
    case when grouped.dimension = 'store' then store_names.name end as label,
    grouped.revenue / nullif(sum(grouped.revenue) over (partition by grouped.dimension), 0) as share_of_revenue
from grouped
left join store_names on grouped.dimension = 'store' and grouped.value = store_names.store_id
order by
    grouped.dimension,
    case when grouped.dimension = 'step' then lpad(grouped.value, 4, '0') end,
    grouped.sent desc,
    grouped.value
"""

# A4, as of the last attribution run: the selected day's row and the rolling periods.
LIFT_SQL = f"""
select
    campaign, period, period_start, period_end, lift_window_hours,
    treated_recipients, treated_conversions, treated_conversion_rate,
    holdout_recipients, holdout_conversions, holdout_conversion_rate,
    absolute_lift * 100 as absolute_lift_pts,
    absolute_lift_ci_low * 100 as absolute_lift_ci_low_pts,
    absolute_lift_ci_high * 100 as absolute_lift_ci_high_pts,
    relative_lift, relative_lift_ci_low, relative_lift_ci_high,
    incremental_conversions, incremental_revenue,
    has_enough_data, lift_status, evaluated_at
from marts.campaign_lift
where
    {_FILTER}
    and (period != 'day' or period_start = %(day)s)
order by
    campaign,
    array_position(array['day', 'last_7_days', 'last_28_days', 'all_time']::text[], period::text)
"""

CAMPAIGNS_SQL = "select distinct campaign from marts.campaign_performance_daily order by campaign"
LATEST_DAY_SQL = f"select max(report_date) from marts.campaign_performance_daily where {_FILTER}"


@dataclass(frozen=True)
class Dashboard:
    """What the page shows; rows are plain mappings of the queries' columns (tests build them by hand)."""

    day: date | None
    days: int
    campaign: str | None
    campaigns: list[str] = field(default_factory=list)
    headline: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # 'day' / 'period' -> figures
    daily: list[Mapping[str, Any]] = field(default_factory=list)
    breakdowns: Mapping[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    lift: list[Mapping[str, Any]] = field(default_factory=list)
    evaluated_at: datetime | None = None

    @property
    def start(self) -> date | None:
        return self.day - timedelta(days=self.days - 1) if self.day else None

    @property
    def has_any_data(self) -> bool:
        """False before the first attribution run: the page says so instead of showing zeros."""
        return bool(self.campaigns)


def clamp_days(days: int | None) -> int:
    return max(1, min(MAX_DAYS, days or DEFAULT_DAYS))


def load_dashboard(
    conn: Any, day: date | None = None, days: int | None = DEFAULT_DAYS, campaign: str | None = None
) -> Dashboard:
    """The figures of the `days` report days ending on `day` (default: the latest one), one campaign or all.

    `conn` is a psycopg connection to the warehouse (read only). Missing or empty marts give an empty
    Dashboard (`has_any_data` False)."""
    from psycopg.rows import dict_row

    days = clamp_days(days)
    campaign = campaign or None
    cur = conn.cursor(row_factory=dict_row)
    present = cur.execute(
        "select " + ", ".join(f"to_regclass('{m}') is not null as m{i}" for i, m in enumerate(MARTS))
    ).fetchone()
    if not all(present.values()):
        return Dashboard(day=day, days=days, campaign=campaign)
    campaigns = [r["campaign"] for r in cur.execute(CAMPAIGNS_SQL)]
    if not campaigns:
        return Dashboard(day=day, days=days, campaign=campaign)
    if day is None:
        day = cur.execute(LATEST_DAY_SQL, {"campaign": campaign}).fetchone()["max"]
        if day is None:  # a campaign with no rows: show the latest day of the others, and empty figures
            day = cur.execute(LATEST_DAY_SQL, {"campaign": None}).fetchone()["max"]
    params = {"day": day, "start": day - timedelta(days=days - 1), "campaign": campaign}
    headline = {r["scope"]: r for r in cur.execute(HEADLINE_SQL, params)}
    daily = cur.execute(DAILY_SQL, params).fetchall()
    breakdowns: dict[str, list[Mapping[str, Any]]] = {key: [] for key, _ in DIMENSIONS}
    for r in cur.execute(BREAKDOWN_SQL, params):
        breakdowns[r["dimension"]].append(r)
    lift = cur.execute(LIFT_SQL, params).fetchall()
    evaluated = [r["evaluated_at"] for r in headline.values() if r.get("evaluated_at")]
    return Dashboard(
        day=day,
        days=days,
        campaign=campaign,
        campaigns=campaigns,
        headline=headline,
        daily=daily,
        breakdowns=breakdowns,
        lift=lift,
        evaluated_at=max(evaluated, default=None),
    )


# --------------------------------------------------------------------------- rendering


def fmt_count(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def fmt_money(value: Any) -> str:
    return "–" if value is None else f"{Decimal(value):,.2f}"


def fmt_percent(value: Any, digits: int = 1) -> str:
    """A share (0.1234) as a percentage ("12.3 %")."""
    return "–" if value is None else f"{float(value) * 100:.{digits}f} %"


def fmt_points(value: Any) -> str:
    """Conversion-rate points, signed ("+2.10 pts")."""
    return "–" if value is None else f"{float(value):+.2f} pts"


def fmt_signed_percent(value: Any) -> str:
    return "–" if value is None else f"{float(value) * 100:+.1f} %"


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR / "dashboard")),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=fmt_count, money=fmt_money, percent=fmt_percent, points=fmt_points, signed_percent=fmt_signed_percent
    )
    return env


def _charts(d: Dashboard) -> dict[str, Any]:
    """The page's SVG charts (Markup), built from the loaded rows."""
    if not d.daily:
        return {}
    labels = [r["report_date"].strftime("%m-%d") for r in d.daily]
    out: dict[str, Any] = {
        "activity": charts.line_chart(
            labels,
            [
                charts.Series(name, [float(r[key]) for r in d.daily])
                for key, name in (
                    ("sent", "sent"),
                    ("delivered", "delivered"),
                    ("opened", "opened"),
                    ("clicked", "clicked"),
                    ("orders", "orders"),
                )
            ],
            title="Messages and orders per report day",
            width=CHART_WIDTH,
        ),
        "revenue": charts.line_chart(
            labels,
            [charts.Series("attributed revenue", [float(r["revenue"]) for r in d.daily])],
            title="Attributed revenue per report day",
            width=CHART_WIDTH,
        ),
        "breakdowns": {},
    }
    for key, heading in DIMENSIONS:
        rows = d.breakdowns.get(key, [])[:CHART_TOP]
        if not rows:
            continue
        names = [_row_label(key, r) for r in rows]
        out["breakdowns"][key] = (
            charts.bar_chart(
                names, [float(r["revenue"]) for r in rows], title=f"Revenue by {heading.lower()}", width=CHART_WIDTH
            ),
            charts.bar_chart(
                names,
                [float(r["conversion_rate"] or 0) for r in rows],
                title=f"Conversion rate by {heading.lower()}",
                fmt=fmt_percent,
                width=CHART_WIDTH,
            ),
        )
    lift = [r for r in d.lift if r["period"] != "day"]
    if any(r["has_enough_data"] for r in lift):  # else the table says "not enough data" for every row
        out["lift"] = charts.interval_chart(
            [f"{r['campaign']} · {r['period'].replace('_', ' ')}" for r in lift],
            [_float(r["absolute_lift_pts"]) if r["has_enough_data"] else None for r in lift],
            [_float(r["absolute_lift_ci_low_pts"]) for r in lift],
            [_float(r["absolute_lift_ci_high_pts"]) for r in lift],
            title="Absolute lift against the holdout (conversion-rate points, 95 % CI)",
            width=CHART_WIDTH,
        )
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _row_label(dimension: str, row: Mapping[str, Any]) -> str:
    if dimension == "step":
        return f"step {row['value']}"
    if dimension == "store" and row.get("label"):
        return f"{row['value']} {row['label']}"
    return str(row["value"])


def render_dashboard(d: Dashboard, *, static: bool = False, generated_note: str | None = None) -> str:
    """The whole page. `static`: the file report (no filter form, no links back to the server)."""
    template = "dashboard.html.j2" if d.has_any_data else "empty.html.j2"
    return (
        _env()
        .get_template(template)
        .render(
            d=d,
            charts=_charts(d) if d.has_any_data else {},
            dimensions=DIMENSIONS,
            row_label=_row_label,
            static=static,
            generated_note=generated_note,
            dag_id=ATTRIBUTION_DAG_ID,
            max_days=MAX_DAYS,
            chart_top=CHART_TOP,
        )
    )


def write_report(
    conn: Any, out: Path, day: date | None = None, days: int | None = DEFAULT_DAYS, campaign: str | None = None
) -> Dashboard:
    """The static report (A5): the same page without the filter form, written to `out`; returns what it shows."""
    d = load_dashboard(conn, day=day, days=days, campaign=campaign)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_dashboard(d, static=True), encoding="utf-8")
    return d
