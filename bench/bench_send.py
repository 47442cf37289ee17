"""Sending benchmark: render and send N messages (default 100k) through the outbox to the in-process SendGrid
stand-in, with 0 ms and 50 ms of server latency.

Figures (merged into bench/results/latest.json):
- `render_per_s`: our full render (context, subject, HTML with inlined CSS, text) per second on one thread;
  `bare_jinja_per_s`: plain Jinja2 rendering the same three templates from the same contexts, no CSS work;
  `render_vs_jinja_floor` = bare / ours (target <= 2). `render_css_inlined_per_message_per_s` shows what
  inlining every message would cost instead (PLATFORM.md: ~3,200/s vs ~7,500/s).
- `send_msgs_per_s_0ms`, `send_msgs_per_s_50ms`: whole `send_messages` runs (outbox insert, claim, render,
  HTTP, outcome) at `--concurrency` (32);
  `send_sequential_msgs_per_s_50ms`: the same with one worker, on a small sample (`--sequential-sample`);
  `send_speedup_vs_sequential` = concurrent / sequential at 50 ms (target >= 20).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from results import record  # noqa: E402

from cart_recovery import CAMPAIGNS_DIR, TEMPLATES_DIR  # noqa: E402
from cart_recovery.campaigns import load_campaigns  # noqa: E402
from cart_recovery.db import ensure_schema  # noqa: E402
from cart_recovery.devtools import sender_fixtures as fx  # noqa: E402
from cart_recovery.devtools.local_pg import create_database, drop_database, ensure_local_postgres  # noqa: E402
from cart_recovery.devtools.sendgrid_standin import SendGridStandin, standin_subprocess  # noqa: E402
from cart_recovery.rendering import EmailRenderer, build_email_context, sender_identity  # noqa: E402
from cart_recovery.sending import send_messages  # noqa: E402

T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def make_rows(n: int, t: datetime, prefix: str) -> list[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    return [
        fx.recipient_rows(
            f"{prefix}{i:07d}",
            t,
            n_items=1 + i % 6,
            locale="fr" if i % 3 else "en",
            first_name=None if i % 7 == 0 else "Camille",
            coupon_code="PROMO10" if i % 4 == 0 else None,
            coupon_percent=10 if i % 4 == 0 else None,
        )
        for i in range(n)
    ]


def bench_render(campaign: Any, sample: int) -> dict[str, float]:
    import css_inline
    import jinja2

    rows = [
        fx.decision_row(
            f"r{i:07d}",
            T,
            n_items=1 + i % 6,
            locale="fr" if i % 3 else "en",
            first_name=None if i % 7 == 0 else "Camille",
            coupon_code="PROMO10" if i % 4 == 0 else None,
            coupon_percent=10 if i % 4 == 0 else None,
        )
        for i in range(sample)
    ]
    sender = sender_identity()
    renderer = EmailRenderer()

    def ctx(r: dict[str, Any]) -> dict[str, Any]:
        return build_email_context(
            r, campaign, message_id=str(uuid.uuid4()), unsubscribe_url="https://shop.example/u?token=x", sender=sender
        )

    renderer.render("abandoned_cart", ctx(rows[0]))  # warm: compile and inline once
    t0 = time.perf_counter()
    for r in rows:
        renderer.render("abandoned_cart", ctx(r))
    ours = sample / (time.perf_counter() - t0)

    # the floor: bare Jinja2, same templates, same contexts, no CSS work at all
    bare_env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
    )
    bare_env.filters["fmt"] = lambda s, **kw: str(s).format(**kw)
    tpls = [
        bare_env.get_template(f"email/abandoned_cart/{p}") for p in ("subject.txt.j2", "body.html.j2", "body.txt.j2")
    ]
    contexts = []
    for r in rows:
        c = ctx(r)
        c["t"] = renderer.strings[c["locale"]]
        c["subject"] = "s"
        contexts.append(c)
    t0 = time.perf_counter()
    for c in contexts:
        for tpl in tpls:
            tpl.render(c)
    bare = sample / (time.perf_counter() - t0)

    # for comparison: what CSS inlined per message would cost
    css = (TEMPLATES_DIR / "email" / "_styles.css").read_text()
    inliner = css_inline.CSSInliner(extra_css=css)
    k = min(sample, 1000)
    t0 = time.perf_counter()
    for c in contexts[:k]:
        inliner.inline(tpls[1].render(c))
    per_message = k / (time.perf_counter() - t0)
    return {
        "render_per_s": round(ours),
        "bare_jinja_per_s": round(bare),
        "render_vs_jinja_floor": round(bare / ours, 2),
        "render_css_inlined_per_message_per_s": round(per_message),
    }


def standin_process(latency_ms: float) -> Any:
    """The stand-in in its own process: SendGrid's CPU is not ours (a real deployment talks to a remote API)."""
    return standin_subprocess("--no-files", "--latency-ms", str(latency_ms))


def bench_send(
    campaigns: list[Any], n: int, latency_ms: float, concurrency: int, t: datetime, in_process: bool = True
) -> float:
    """Messages per second of one whole send_messages run of n messages."""
    with ExitStack() as stack:
        if in_process:
            sg = stack.enter_context(SendGridStandin(latency_ms=latency_ms, keep_bodies=False))
            url = sg.url
        else:
            url = stack.enter_context(standin_process(latency_ms))
        os.environ["AIRFLOW_CONN_SENDGRID_DEFAULT"] = json.dumps(
            {"conn_type": "sendgrid", "host": url, "password": "SG.bench"}
        )
        t0 = time.perf_counter()
        result = send_messages(t, f"bench-{latency_ms}-{concurrency}", campaigns, concurrency=concurrency)
        elapsed = time.perf_counter() - t0
    sent = result["this_run"].get("sent", 0)
    if sent != n or (in_process and len(sg.accepted) != n):
        raise RuntimeError(f"expected {n} sent, got {result['this_run']}")
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="messages per send run")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--sequential-sample", type=int, default=100, help="messages sent with one worker at 50 ms")
    ap.add_argument("--render-sample", type=int, default=5000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("CR_UNSUBSCRIBE_SECRET", "bench-secret")

    campaigns = [c for c in load_campaigns(CAMPAIGNS_DIR) if c.name == "bookstore_daily"]
    figures: dict[str, Any] = bench_render(campaigns[0], args.render_sample)
    print(
        f"render: {figures['render_per_s']}/s, bare Jinja2 {figures['bare_jinja_per_s']}/s "
        f"-> {figures['render_vs_jinja_floor']}x the floor (CSS per message: "
        f"{figures['render_css_inlined_per_message_per_s']}/s)"
    )

    admin = ensure_local_postgres(verbose=False)
    name = f"cr_bench_send_{uuid.uuid4().hex[:6]}"
    url = create_database(admin, name)
    os.environ["AIRFLOW_CONN_CART_RECOVERY_DB"] = url
    try:
        with psycopg.connect(url) as conn:
            ensure_schema(conn)
            fx.create_stub_marts(conn)
            # separate runs (decided_at) so each starts from an empty outbox for its T
            ts = [T + timedelta(days=d) for d in range(5)]
            for i, t in enumerate(ts[:3]):
                fx.add_recipients(conn, make_rows(args.n, t, f"{i}_"))
            for i, t in enumerate(ts[3:]):
                fx.add_recipients(conn, make_rows(args.sequential_sample, t, f"s{i}_"))
            conn.execute("analyze")
            conn.commit()
        c = args.concurrency
        rate0 = bench_send(campaigns, args.n, 0, c, ts[0])
        print(f"send, stand-in in process, 0 ms latency, {c} workers: {rate0:.0f} msg/s")
        rate50 = bench_send(campaigns, args.n, 50, c, ts[1])
        seq50 = bench_send(campaigns, args.sequential_sample, 50, 1, ts[3])
        print(
            f"send, stand-in in process, 50 ms: {c} workers {rate50:.0f} msg/s, 1 worker {seq50:.1f} msg/s "
            f"-> speed-up {rate50 / seq50:.1f}x"
        )
        rate50p = bench_send(campaigns, args.n, 50, c, ts[2], in_process=False)
        seq50p = bench_send(campaigns, args.sequential_sample, 50, 1, ts[4], in_process=False)
        print(
            f"send, stand-in in its own process, 50 ms: {c} workers {rate50p:.0f} msg/s, 1 worker "
            f"{seq50p:.1f} msg/s -> speed-up {rate50p / seq50p:.1f}x"
        )
    finally:
        drop_database(admin, name)
    figures.update(
        send_n=args.n,
        send_concurrency=c,
        send_msgs_per_s_0ms=round(rate0),
        send_msgs_per_s_50ms=round(rate50),
        send_sequential_msgs_per_s_50ms=round(seq50, 1),
        send_speedup_vs_sequential=round(rate50 / seq50, 1),
        send_msgs_per_s_50ms_standin_own_process=round(rate50p),
        send_sequential_msgs_per_s_50ms_standin_own_process=round(seq50p, 1),
        send_speedup_vs_sequential_standin_own_process=round(rate50p / seq50p, 1),
    )
    record(figures)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
