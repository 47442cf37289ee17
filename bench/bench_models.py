"""dbt models benchmark: the daily `dbt build` of the decision models on a large world, against the floor.

The world is generated straight into the raw tables with `generate_series` (scale 1.0: 1M customers,
2M carts with about 8M cart items, 1M orders over the 30 days before T: the sizes of issue 3; the demo
generator's scale 1 is a few thousand customers). Every row gets a realistic `_loaded_at`: shortly after
its event, as the shop's files arrive through the day. Then day after day:
- day 1 loads the history and runs the first `dbt build` (`dbt_first_build_s`: the incremental models
  copy the whole history once);
- each following day loads one more day of carts and orders, runs the daily `dbt build` at T + k days
  (`dbt_incremental_day2_s` is the first of them) and the floor, then records the sender's outbox rows for
  that day's eligible carts (so the E5 cap is live the next day);
- `dbt_build_s`: the median daily build (day N+1 after day N — what runs every day), with the selection the
  daily DAG builds (every model and test but the attribution ones);
- `floor_query_s`: the median of one hand-written SQL query computing the same eligible set at the same T
  (warm: run twice, the second timed; PLATFORM.md measured about 2 s warm with indexes at scale 1);
- `build_vs_floor`: the median of the days' build / floor ratios;
- `dbt_fixed_cost_s`: the same daily build on a world a thousand times smaller (scale 0.001: 1,000
  customers), median of 3 days: what dbt costs before any data (re-parsing for the new T, then the 220
  nodes' compilation, DDL and round trips on 4 threads); `build_vs_floor_above_fixed_cost` sets the rest
  against the floor.
Each day the models' eligible set must equal the floor's (cart, version, customer): the benchmark fails
otherwise. The machine's load average is recorded next to the figures. The figures are merged into
bench/results/latest.json (other benchmarks own other keys).

    .venv/bin/python bench/bench_models.py --scale 0.01     # a minute
    .venv/bin/python bench/bench_models.py                  # the full world (15 to 20 minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from results import record  # noqa: E402

from cart_recovery.campaigns import load_campaigns, to_dbt_vars  # noqa: E402
from cart_recovery.db import ensure_schema  # noqa: E402
from cart_recovery.dbt import run_dbt, run_vars  # noqa: E402
from cart_recovery.devtools.local_pg import create_database, drop_database, ensure_local_postgres  # noqa: E402

T = datetime.fromisoformat("2026-11-20T14:00:00+00:00")
DAYS = 30
# the daily DAG's selection (plugins/cart_recovery/orchestration.py): the attribution models run in their own DAG
DAILY_BUILD = ["build", "--quiet", "--exclude", "tag:attribution"]

# One statement per raw table. %(n_*)s are the sizes; %(t)s is T; carts and orders are spread over the
# DAYS days before %(t_end)s (day 1: T; each later day adds one day after the previous one); %(t_load)s is
# the day's last load, a few minutes before its run. Pseudo-random but deterministic (hashes).
GENERATE = [
    """
    insert into raw.stores (store_id, name, email, phone, address, city, region, url, _file_name, _line_number)
    select 's' || i, 'Librairie ' || i, 's' || i || '@stores.example.org', '+1514555' || lpad(i::text, 4, '0'),
           i || ' rue Principale', 'Montréal', 'QC', 'https://s' || i || '.example.org', 'bench', i
    from generate_series(1, 100) as i
    """,
    """
    insert into raw.products (sku, title, author, publisher, image_url, product_url, price, currency,
                              updated_at, _file_name, _line_number, _loaded_at)
    select 'sku-' || i, 'Title ' || i, 'Author ' || (i %% 997), 'Publisher ' || (i %% 53),
           'https://img.example.org/' || i || '.jpg', 'https://shop.example.org/p/' || i,
           (5 + (i * 37 %% 60))::numeric(12, 2), 'CAD', %(t)s - interval '90 days', 'bench', i,
           %(t)s - interval '90 days' + interval '1 hour'
    from generate_series(1, 10000) as i
    """,
    """
    insert into raw.customers (customer_id, email, phone, first_name, last_name, locale, customer_type,
                               institution_kind, preferred_store_id, updated_at, _file_name, _line_number,
                               _loaded_at)
    select 'c' || i,
           case when i %% 50 = 0 then null when i %% 97 = 0 then 'broken-address' else 'c' || i || '@example.org' end,
           case when i %% 3 = 0 then '+1514' || lpad((i %% 10000000)::text, 7, '0') end,
           'First' || i, 'Last' || i, case when i %% 4 = 0 then 'en' else 'fr' end,
           case when i %% 40 = 0 then 'institution' else 'consumer' end,
           case when i %% 40 = 0 then 'library' end,
           case when i %% 2 = 0 then 's' || (1 + i %% 100) end,
           %(t)s - interval '400 days', 'bench', i, %(t)s - interval '400 days' + interval '1 hour'
    from generate_series(1, %(n_customers)s::bigint) as i
    """,
    """
    insert into raw.consents (customer_id, channel, status, basis, recorded_at, source, _file_name, _line_number,
                              _loaded_at)
    select 'c' || i, 'email', case when i %% 11 = 0 then 'withdrawn' else 'granted' end,
           case when i %% 5 = 0 then 'implied' else 'express' end,
           %(t)s - make_interval(days => (i * 7 %% 900)::int), 'checkout', 'bench', i,
           %(t)s - make_interval(days => (i * 7 %% 900)::int) + interval '1 hour'
    from generate_series(1, %(n_customers)s::bigint) as i
    """,
    """
    insert into raw.cart_events (event_id, event_type, occurred_at, cart_id, customer_id, device, store_id,
                                 currency, cart_url, items, _file_name, _line_number, _loaded_at)
    select 'ce-' || c.i, 'cart_updated', c.at, 'cart-' || c.i,
           case when c.i %% 10 = 0 then null else 'c' || (1 + (c.i * 7919) %% %(n_customers)s) end,
           'desktop', 's' || (1 + c.i %% 100), 'CAD', 'https://shop.example.org/cart/' || c.i,
           (
               select jsonb_agg(jsonb_build_object(
                   'sku', 'sku-' || (1 + (c.i * 31 + k * 7907) %% 10000),
                   'quantity', 1 + k %% 2,
                   'unit_price', (5 + (c.i + k) %% 60)::numeric(12, 2),
                   'added_at', c.at - make_interval(mins => (10 * (8 - k))::int)
               ) order by k)
               from generate_series(1, 1 + (c.i * 13) %% 7) as k
           ),
           'bench', c.i, least(c.at + interval '30 minutes', %(t_load)s)
    from (
        select
            i,
            %(t_end)s - make_interval(secs => ((i::bigint * 2654435761) %% (%(days)s * 86400))::double precision) as at
        from generate_series(%(cart_from)s::bigint, %(cart_to)s::bigint) as i
    ) as c
    """,
    """
    insert into raw.orders (event_id, order_id, customer_id, cart_id, placed_at, status, store_id, currency,
                            total, items, _file_name, _line_number, _loaded_at)
    select 'oe-' || i, 'o-' || i, 'c' || (1 + (i * 104729) %% %(n_customers)s), null, o.at,
           case when i %% 20 = 0 then 'cancelled' else 'completed' end, 's1', 'CAD', 30,
           jsonb_build_array(
               jsonb_build_object('sku', 'sku-' || (1 + i %% 10000), 'quantity', 1, 'unit_price', 15),
               jsonb_build_object('sku', 'sku-' || (1 + (i * 3) %% 10000), 'quantity', 1, 'unit_price', 15)
           ),
           'bench', i, least(o.at + interval '30 minutes', %(t_load)s)
    from (
        select
            i,
            %(t_end)s - make_interval(secs => ((i::bigint * 40503) %% (%(days)s * 86400))::double precision) as at
        from generate_series(%(order_from)s::bigint, %(order_to)s::bigint) as i
    ) as o
    """,
]

# The same decisions as the models (D1–D5, E1–E5 for step 1 by email; the bench world has no provider
# events, test group or holdout), written by hand in one query.
FLOOR = """
with active as (
    select distinct cart_id from raw.cart_events
    where occurred_at > %(t)s - interval '25 hours' and occurred_at <= %(t)s - interval '1 hour'
),
latest as (
    select distinct on (e.cart_id) e.cart_id, e.event_id, e.event_type, e.occurred_at, e.customer_id, e.items
    from raw.cart_events as e
    join active using (cart_id)
    where e.occurred_at <= %(t)s
    order by e.cart_id, e.occurred_at desc, e.event_id desc
),
carts as (
    select * from latest
    where event_type = 'cart_updated' and occurred_at <= %(t)s - interval '1 hour'
),
items as (
    select c.cart_id, c.customer_id, it.value ->> 'sku' as sku, (it.value ->> 'added_at')::timestamptz as added_at, it.n
    from carts as c
    cross join lateral jsonb_array_elements(c.items) with ordinality as it (value, n)
),
orders as (
    select distinct on (o.order_id) o.order_id, o.customer_id, o.cart_id, o.placed_at, o.status, o.items
    from raw.orders as o
    where o.placed_at <= %(t)s
      and (o.customer_id in (select customer_id from carts) or o.cart_id in (select cart_id from carts))
    order by o.order_id, o._file_name desc, o._line_number desc
),
completed as (
    select o.*, oi.value ->> 'sku' as sku
    from orders as o
    cross join lateral jsonb_array_elements(o.items) as oi (value)
    where o.status = 'completed'
),
bought as (
    select i.cart_id, i.n from items as i
    join completed as o on o.customer_id = i.customer_id and o.sku = i.sku and o.placed_at >= i.added_at
    union
    select i.cart_id, i.n from items as i
    join completed as o on o.cart_id = i.cart_id and o.sku = i.sku and o.placed_at >= i.added_at
),
net as (
    select i.cart_id
    from items as i
    left join bought as b on b.cart_id = i.cart_id and b.n = i.n
    where b.cart_id is null
    group by i.cart_id
),
abandoned as (
    select c.cart_id, c.event_id, c.customer_id, c.occurred_at
    from carts as c
    join net using (cart_id)
    where not exists (select 1 from completed as o where o.customer_id = c.customer_id and o.placed_at > c.occurred_at)
      and not exists (select 1 from completed as o where o.cart_id = c.cart_id and o.placed_at > c.occurred_at)
),
newest as (
    select distinct on (customer_id) * from abandoned
    where customer_id is not null
    order by customer_id, occurred_at desc, cart_id desc
),
customers as (
    select distinct on (c.customer_id) c.customer_id, c.email, c.customer_type
    from raw.customers as c
    join newest using (customer_id)
    where c.updated_at <= %(t)s
    order by c.customer_id, c.updated_at desc
),
consents as (
    select distinct on (k.customer_id) k.customer_id, k.status, k.basis, k.recorded_at
    from raw.consents as k
    join newest using (customer_id)
    where k.channel = 'email' and k.recorded_at <= %(t)s
    order by k.customer_id, k.recorded_at desc
)
select n.cart_id, n.event_id, n.customer_id
from newest as n
join customers as c using (customer_id)
join consents as k using (customer_id)
where c.customer_type = 'consumer'
  and lower(c.email) ~ '^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+$'
  and k.status = 'granted'
  and not (k.basis = 'implied' and k.recorded_at + interval '730 days' <= %(t)s)
  and not exists (
      select 1 from ops.unsubscribes as u
      where u.customer_id = n.customer_id and u.channel = 'email' and u.recorded_at <= %(t)s
  )
  and not exists (
      select 1 from ops.messages as m
      where m.customer_id = n.customer_id and m.status in ('pending', 'sent', 'unknown')
        and m.decided_at >= %(t)s - interval '7 days' and m.decided_at < %(t)s
  )
"""


def generate(conn: psycopg.Connection, scale: float, day: int) -> dict[str, int]:
    """Day 1: the whole world (history up to T). Day k > 1: one more day of carts and orders, dated in
    (T + k - 2 days, T + k - 1 days]."""
    n_customers = max(int(1_000_000 * scale), 100)
    n_carts = max(int(2_000_000 * scale), 200)
    n_orders = max(int(1_000_000 * scale), 100)
    per_day_carts, per_day_orders = n_carts // DAYS, n_orders // DAYS
    t_end = T + timedelta(days=day - 1)
    if day == 1:
        params = {"days": DAYS, "cart_from": 1, "cart_to": n_carts, "order_from": 1, "order_to": n_orders}
        statements = GENERATE
    else:
        cart_from = n_carts + (day - 2) * per_day_carts + 1
        order_from = n_orders + (day - 2) * per_day_orders + 1
        params = {
            "days": 1,
            "cart_from": cart_from,
            "cart_to": cart_from + per_day_carts - 1,
            "order_from": order_from,
            "order_to": order_from + per_day_orders - 1,
        }
        statements = GENERATE[4:]
    params |= {"t": T, "t_end": t_end, "t_load": t_end - timedelta(minutes=5), "n_customers": n_customers}
    for sql in statements:
        conn.execute(sql, params)
    conn.commit()
    conn.execute("analyze")
    conn.commit()
    return {"customers": n_customers, "carts": n_carts, "orders": n_orders}


def record_sends(conn: psycopg.Connection, t: datetime) -> int:
    """What the sender does after the run: one outbox row per eligible cart version, sent (E5, E6)."""
    cur = conn.execute(
        """
        insert into ops.messages (message_id, idempotency_key, campaign, step, channel, customer_id, cart_id,
                                  cart_version, status, decided_at, sent_at)
        select md5(idempotency_key)::uuid, idempotency_key, campaign, step, channel, customer_id, cart_id,
               cart_version, 'sent', decided_at, decided_at + interval '5 minutes'
        from marts.eligible_recipients
        where decided_at = %s
        on conflict do nothing
        """,
        (t,),
    )
    conn.commit()
    return cur.rowcount


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def node_timings(target: Path, label: str, n: int = 6) -> dict:
    """The last dbt command's nodes (run_results.json, kept as run_results_<label>.json): how many, the sum
    of their execution times (the rest of the wall time is dbt's start-up, parsing and scheduling) and the
    n slowest."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    shutil.copy(target / "run_results.json", target / f"run_results_{label}.json")
    top = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:n]
    return {
        "nodes": len(results),
        "node_time_sum_s": round(sum(r["execution_time"] for r in results), 2),
        "slowest": {r["unique_id"].split(".")[-1]: round(r["execution_time"], 2) for r in top},
    }


def timed_build(t: datetime, campaigns: list[dict], conn_id: str, target: Path) -> float:
    t0 = time.perf_counter()
    run_dbt(
        DAILY_BUILD,
        vars=run_vars(t, "daily", campaigns),
        conn_id=conn_id,
        target_path=target,
    )
    return time.perf_counter() - t0


def timed_floor(conn: psycopg.Connection, t: datetime) -> tuple[float, set[tuple[str, str, str]]]:
    """The floor query at T, warm (the models had the data cached too): run twice, the second timed."""
    # the planner cannot estimate the CTEs' sizes: nested loops over thousands of rows would make the
    # "floor" slower than the models, so the hand-written query gets the hand-tuned plan it deserves
    conn.execute("set enable_nestloop = off")
    # as on dbt's connection (dbt_project.yml): with nested loops disabled the plan's cost crosses every JIT
    # threshold, and compiling it took 6.4 of 6.5 s at scale 0.01 (EXPLAIN ANALYZE's JIT timing)
    conn.execute("set jit = off")
    conn.execute(FLOOR, {"t": t}).fetchall()
    t0 = time.perf_counter()
    rows = conn.execute(FLOOR, {"t": t}).fetchall()
    floor_s = time.perf_counter() - t0
    conn.execute("reset enable_nestloop")
    conn.execute("reset jit")
    conn.commit()
    return floor_s, {(cart_id, event_id, customer_id) for cart_id, event_id, customer_id in rows}


def eligible_set(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    rows = conn.execute(
        "select cart_id, cart_version, customer_id from marts.eligible_recipients "
        "where campaign = 'bookstore_daily' and step = 1"
    ).fetchall()
    conn.commit()
    return set(rows)


FIGURES = "bench_models figures: "


def run_head(argv: list[str], record_here: bool) -> int:
    """This bench in a `git archive` snapshot of HEAD (its own package and dbt project, this virtualenv);
    its figures are recorded into this checkout's latest.json."""
    root = Path(__file__).resolve().parent.parent
    src = Path(tempfile.mkdtemp(prefix="cr-bench-models-head-"))
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(["git", "-C", str(root), "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    print(f"HEAD {commit} in {src}", flush=True)
    env = os.environ | {"PYTHONPATH": str(src / "plugins")}
    argv = [a for a in argv if a != "--head"] + ["--no-record"]
    child = subprocess.Popen(
        [sys.executable, str(src / "bench" / "bench_models.py"), *argv],
        cwd=src,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    figures = None
    assert child.stdout is not None
    for line in child.stdout:
        print(line, end="", flush=True)
        if line.startswith(FIGURES):
            figures = json.loads(line[len(FIGURES) :])
    if child.wait() != 0 or figures is None:
        return child.returncode or 1
    if record_here:
        record(figures | {"models_commit": commit})
    shutil.rmtree(src, ignore_errors=True)
    return 0


@contextmanager
def bench_database(admin: str, prefix: str, keep: bool = False) -> Iterator[tuple[str, str]]:
    """A new database with the schema applied, as (url, Airflow connection id), dropped on exit unless
    `keep`."""
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    url = create_database(admin, name)
    conn_id = f"cr_bench_{uuid.uuid4().hex[:6]}"
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = url
    try:
        with psycopg.connect(url) as conn:
            ensure_schema(conn)
        yield url, conn_id
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
        if keep:
            print(f"kept database {name}: {url}")
        else:
            drop_database(admin, name)


def fixed_cost_builds(admin: str, campaigns: list[dict], days: int = 3) -> list[float]:
    """The daily builds (day 2 on) of a world of scale 0.001 in a database of its own."""
    target = Path(tempfile.mkdtemp(prefix="cr-bench-dbt-target-fixed-"))
    builds = []
    try:
        with bench_database(admin, "cr_bench_models_fixed") as (url, conn_id), psycopg.connect(url) as conn:
            generate(conn, 0.001, day=1)
            timed_build(T, campaigns, conn_id, target)
            record_sends(conn, T)
            for day in range(2, days + 2):
                t = T + timedelta(days=day - 1)
                generate(conn, 0.001, day=day)
                builds.append(timed_build(t, campaigns, conn_id, target))
                record_sends(conn, t)
    finally:
        shutil.rmtree(target, ignore_errors=True)
    return builds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = 1M customers, 2M carts, 1M orders")
    ap.add_argument("--daily-builds", type=int, default=3, help="daily builds after the first (median reported)")
    ap.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    ap.add_argument("--no-record", action="store_true", help="print the figures, do not write latest.json")
    ap.add_argument(
        "--head",
        action="store_true",
        help="run the committed HEAD (a `git archive` snapshot) instead of the working tree: other edits in "
        "progress in a shared checkout cannot break or slow the run; the figures go to this checkout's file",
    )
    args = ap.parse_args()
    if args.head:
        raise SystemExit(run_head(sys.argv[1:], record_here=not args.no_record))

    admin = ensure_local_postgres(verbose=False)
    target = Path(tempfile.mkdtemp(prefix="cr-bench-dbt-target-"))
    print(f"dbt target (run_results_day*.json): {target}", flush=True)
    campaigns = [c for c in to_dbt_vars(load_campaigns()) if c["name"] == "bookstore_daily"]
    load_before = load_average()
    with bench_database(admin, "cr_bench_models", keep=args.keep) as (url, conn_id):
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            sizes = generate(conn, args.scale, day=1)
            print(f"generated {sizes} in {time.perf_counter() - t0:.1f}s", flush=True)

            first_s = timed_build(T, campaigns, conn_id, target)
            n_first = len(eligible_set(conn))
            first_nodes = node_timings(target, "day1")
            print(f"day 1, first build: {first_s:.1f}s, {n_first} eligible; nodes: {first_nodes}", flush=True)
            record_sends(conn, T)

            builds, floors, ratios, eligible, nodes = [], [], [], [], []
            for day in range(2, args.daily_builds + 2):
                t = T + timedelta(days=day - 1)
                generate(conn, args.scale, day=day)
                build_s = timed_build(t, campaigns, conn_id, target)
                models = eligible_set(conn)
                floor_s, floor = timed_floor(conn, t)
                nodes.append(node_timings(target, f"day{day}"))
                print(
                    f"day {day}: build {build_s:.1f}s ({nodes[-1]}), floor {floor_s:.2f}s, "
                    f"ratio {build_s / floor_s:.1f}; {len(models)} eligible, load {load_average():.1f}",
                    flush=True,
                )
                if models != floor:
                    raise SystemExit(
                        f"day {day}: the models and the floor disagree: {len(models - floor)} eligible only in the "
                        f"models, {len(floor - models)} only in the floor"
                    )
                record_sends(conn, t)
                builds.append(build_s)
                floors.append(floor_s)
                ratios.append(build_s / floor_s)
                eligible.append(len(models))
        fixed = fixed_cost_builds(admin, campaigns)
        print(f"fixed cost (scale 0.001): daily builds {[round(b, 1) for b in fixed]}s", flush=True)
        fixed_s = statistics.median(fixed)
        figures = {
            "models_scale": args.scale,
            "models_eligible": eligible[0],
            "models_floor_eligible": eligible[0],
            "models_eligible_sets_equal": True,
            "dbt_build_s": round(statistics.median(builds), 2),
            "dbt_build_s_is": (
                f"median of {len(builds)} daily builds (day N+1 after day N, selection of the daily DAG); "
                "dbt_first_build_s copies the history once"
            ),
            "dbt_daily_builds_s": [round(b, 2) for b in builds],
            "dbt_first_build_s": round(first_s, 2),
            "dbt_incremental_day2_s": round(builds[0], 2),
            "dbt_daily_nodes": nodes[0]["nodes"],
            "dbt_daily_node_time_sum_s": [d["node_time_sum_s"] for d in nodes],
            "dbt_slowest_nodes_day2_s": nodes[0]["slowest"],
            "dbt_slowest_nodes_first_build_s": first_nodes["slowest"],
            "floor_query_s": round(statistics.median(floors), 3),
            "floor_queries_s": [round(f, 3) for f in floors],
            "build_vs_floor": round(statistics.median(ratios), 1),
            "dbt_fixed_cost_s": round(fixed_s, 2),
            "dbt_fixed_cost_builds_s": [round(b, 2) for b in fixed],
            "build_vs_floor_above_fixed_cost": round(
                statistics.median((b - fixed_s) / f for b, f in zip(builds, floors, strict=True)), 1
            ),
            "models_load_avg_1m": [load_before, load_average()],
        }
        print(figures)
        print(FIGURES + json.dumps(figures), flush=True)
        if not args.no_record:
            record(figures)


if __name__ == "__main__":
    main()
