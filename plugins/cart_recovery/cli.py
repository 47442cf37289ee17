"""`cart-recovery`: the project's command line (argparse subcommands).

    cart-recovery preview --customer-id alice --date 2026-11-20 [--campaign bookstore_daily] [--out a.html]
    cart-recovery send --date 2026-11-20 [--dry-run] [--campaign bookstore_daily]
    cart-recovery sendgrid-standin --port 8025 --outbox var/outbox [--latency-ms 50] [--fault-sequence 500,429]
    cart-recovery report --out var/report/index.html [--day 2026-11-20] [--days 30] [--campaign bookstore_daily]

`--date` is a day (T = that day's 09:00 America/Toronto, the daily run's data-interval end) or a full ISO
8601 timestamp with offset. Connections come from the environment as in the DAGs (contract §1).

Adding a subcommand: write `register_<name>(subparsers)` that adds its parser and sets `func` (a handler
taking the parsed args and returning an exit code; import heavy modules inside it), then append it to
COMMANDS.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cart_recovery import PROJECT_DIR

SHOP_TZ = ZoneInfo("America/Toronto")
DAILY_RUN_AT = time(9, 0)  # O1

Subparsers = Any  # argparse's _SubParsersAction is private


def parse_t(value: str) -> datetime:
    """A day -> that day's 09:00 America/Toronto in UTC (the daily run's T); a timestamp -> itself (UTC)."""
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").date()
            return datetime.combine(day, DAILY_RUN_AT, SHOP_TZ).astimezone(UTC)
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: expected YYYY-MM-DD or an ISO 8601 timestamp") from exc
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r}: a timestamp needs an offset (e.g. +00:00)")
    return t.astimezone(UTC)


# --------------------------------------------------------------------------- preview (M7)


def register_preview(sub: Subparsers) -> None:
    p = sub.add_parser("preview", help="render one customer's message to an HTML file, without sending (M7)")
    p.add_argument("--customer-id", required=True)
    p.add_argument("--date", required=True, type=parse_t, help="the run's T: YYYY-MM-DD (09:00 Toronto) or ISO")
    p.add_argument("--campaign", help="the campaign (default: every campaign the customer is eligible for at T)")
    p.add_argument("--step", type=int, help="the step (default: every step decided at T)")
    p.add_argument("--out", type=Path, help="the HTML file (default: var/preview/<customer>_<campaign>_step<n>.html)")
    p.add_argument("--conn-id", default="cart_recovery_db")
    p.set_defaults(func=cmd_preview)


def cmd_preview(args: argparse.Namespace) -> int:
    import psycopg
    from psycopg.rows import dict_row

    from cart_recovery.campaigns import load_campaigns
    from cart_recovery.db import conninfo
    from cart_recovery.rendering import EmailRenderer, sender_identity
    from cart_recovery.sending import SELECT_DECISIONS_SQL, render_message
    from cart_recovery.unsubscribe import unsubscribe_secret

    t: datetime = args.date
    campaigns = {c.name: c for c in load_campaigns()}
    with psycopg.connect(conninfo(args.conn_id), row_factory=dict_row) as conn:
        if not conn.execute("select to_regclass('marts.decision_history') as r").fetchone()["r"]:
            print("marts.decision_history does not exist: build the models first (a daily run).", file=sys.stderr)
            return 2
        # the ledger keeps every run's decisions; the contents of the last message_contents_retention_days
        where = " where e.customer_id = %(customer)s and e.decided_at = %(t)s and e.outbox_status = 'pending'"
        params: dict[str, Any] = {"customer": args.customer_id, "t": t}
        if args.campaign:
            where += " and e.campaign = %(campaign)s"
            params["campaign"] = args.campaign
        if args.step:
            where += " and e.step = %(step)s"
            params["step"] = args.step
        at_t = conn.execute(SELECT_DECISIONS_SQL + where + " order by e.campaign, e.step", params).fetchall()
        if not at_t:
            if not conn.execute("select 1 from marts.decision_history where decided_at = %s limit 1", (t,)).fetchone():
                latest = conn.execute("select max(decided_at) as t from marts.decision_history").fetchone()["t"]
                print(
                    f"No run decided at T = {t.isoformat()} (the latest decided at "
                    f"{latest.isoformat() if latest else 'none'}). Decide that date first (e.g. "
                    f"`airflow dags test cart_recovery_daily {t.isoformat()}` with dry_run), then preview again.",
                    file=sys.stderr,
                )
                return 2
            reasons = conn.execute(
                "select campaign, step, scope, reason from marts.decision_history "
                "where customer_id = %s and decided_at = %s and reason is not null order by campaign, step",
                (args.customer_id, t),
            ).fetchall()
            why = "; ".join(f"{r['campaign']} step {r['step']}: {r['reason']}" for r in reasons) or "no abandoned cart"
            print(f"customer {args.customer_id} gets no message at T = {t.isoformat()} ({why})", file=sys.stderr)
            return 1
        if any(r["email"] is None and r["channel"] == "email" for r in at_t):
            print(
                "the message contents of that date are no longer kept (message_contents_retention_days): "
                "decide it again with a dry run to preview it",
                file=sys.stderr,
            )
            return 2
    renderer, sender, secret = EmailRenderer(), sender_identity(), unsubscribe_secret()
    for row in at_t:
        campaign = campaigns.get(row["campaign"])
        if campaign is None:
            print(
                f"campaign {row['campaign']} is in the marts but has no file in the campaigns folder", file=sys.stderr
            )
            return 2
        if row["channel"] != "email":
            print(f"{campaign.name} step {row['step']}: channel {row['channel']} has no preview yet (email only)")
            continue
        rendered, _ = render_message(row, campaign, t, renderer=renderer, sender=sender, secret=secret)
        out: Path = (
            args.out
            if args.out and len(at_t) == 1
            else (PROJECT_DIR / "var" / "preview" / f"{args.customer_id}_{campaign.name}_step{row['step']}.html")
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(rendered.html, encoding="utf-8")
        out.with_suffix(".txt").write_text(f"Subject: {rendered.subject}\n\n{rendered.text}", encoding="utf-8")
        print(f"{campaign.name} step {row['step']}: {rendered.subject!r}\n  {out}\n  {out.with_suffix('.txt')}")
    return 0


# --------------------------------------------------------------------------- send (S3)


def register_send(sub: Subparsers) -> None:
    p = sub.add_parser("send", help="render and send (or --dry-run: record only) every message decided at T")
    p.add_argument("--date", required=True, type=parse_t, help="the run's T: YYYY-MM-DD (09:00 Toronto) or ISO")
    p.add_argument("--dry-run", action="store_true", help="render and record, send nothing (S3)")
    p.add_argument("--campaign", action="append", help="only this campaign (repeatable; default: every enabled one)")
    p.add_argument("--concurrency", type=int, default=32)
    p.set_defaults(func=cmd_send)


def cmd_send(args: argparse.Namespace) -> int:
    import json

    from cart_recovery.campaigns import load_campaigns
    from cart_recovery.sending import SendIncomplete, send_messages

    wanted = set(args.campaign or [])
    chosen = [c for c in load_campaigns() if (c.name in wanted if wanted else c.enabled)]
    missing = wanted - {c.name for c in chosen}
    if missing:
        print(f"no campaign file for: {', '.join(sorted(missing))}", file=sys.stderr)
        return 2
    run_id = f"cli__{datetime.now(UTC):%Y%m%dT%H%M%S}"
    try:
        result = send_messages(args.date, run_id, chosen, dry_run=args.dry_run, concurrency=args.concurrency)
    except SendIncomplete as exc:
        print(json.dumps(exc.counts, indent=2, default=str))
        print(str(exc), file=sys.stderr)
        return 3
    print(json.dumps(result, indent=2, default=str))
    return 0


# --------------------------------------------------------------------------- sendgrid-standin


def register_sendgrid_standin(sub: Subparsers) -> None:
    from cart_recovery.devtools.sendgrid_standin import add_arguments

    p = sub.add_parser("sendgrid-standin", help="a local SendGrid Mail Send stand-in writing .eml/.html files")
    add_arguments(p)
    p.set_defaults(func=cmd_sendgrid_standin)


def cmd_sendgrid_standin(args: argparse.Namespace) -> int:
    from cart_recovery.devtools.sendgrid_standin import serve

    return serve(args)


# --------------------------------------------------------------------------- report (A5)


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: expected YYYY-MM-DD") from exc


def register_report(sub: Subparsers) -> None:
    p = sub.add_parser("report", help="write the dashboard as a static HTML report with charts (A5)")
    p.add_argument("--out", type=Path, default=PROJECT_DIR / "var" / "report" / "index.html")
    p.add_argument("--day", type=parse_day, help="the period's last report day (default: the latest in the marts)")
    p.add_argument("--days", type=int, help="report days in the period (default: 30)")
    p.add_argument("--campaign", help="one campaign (default: all)")
    p.add_argument("--conn-id", default="cart_recovery_db")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    import psycopg

    from cart_recovery.db import conninfo
    from cart_recovery.reporting.dashboard import write_report

    out: Path = args.out
    with psycopg.connect(conninfo(args.conn_id)) as conn:
        d = write_report(conn, out, day=args.day, days=args.days, campaign=args.campaign)
    if not d.has_any_data:
        print(f"{out} (no data yet: run cart_recovery_attribution first)")
    else:
        print(f"{out} (report days {d.start} to {d.day}, {d.campaign or 'all campaigns'})")
    return 0


# --------------------------------------------------------------------------- entry point

COMMANDS: list[Callable[[Subparsers], None]] = [
    register_preview,
    register_send,
    register_sendgrid_standin,
    register_report,
]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cart-recovery", description=__doc__.split("\n\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
