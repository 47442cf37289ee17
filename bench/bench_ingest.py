"""Ingest benchmark: one landing file of N cart events (default 1M) loaded with COPY.

Prints rows/s and the ratio to a bare COPY of the same rows (the floor: PLATFORM.md measured about
0.9M rows/s into an unindexed table), and records `ingest_rows_per_s`, `ingest_vs_bare_copy`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from results import record  # noqa: E402

from cart_recovery.db import ensure_schema  # noqa: E402
from cart_recovery.demo.generate import generate_cart_events_file  # noqa: E402
from cart_recovery.devtools.local_pg import create_database, drop_database, ensure_local_postgres  # noqa: E402
from cart_recovery.ingest import load_landing  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()

    admin = ensure_local_postgres(verbose=False)
    name = f"cr_bench_ingest_{uuid.uuid4().hex[:6]}"
    url = create_database(admin, name)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            landing = Path(tmp) / "landing"
            landing.mkdir()
            path = landing / "cart_events_bench.jsonl"
            t0 = time.perf_counter()
            generate_cart_events_file(path, args.events, seed=7)
            gen_s = time.perf_counter() - t0
            size_mb = path.stat().st_size / 1e6

            with psycopg.connect(url) as conn:
                ensure_schema(conn)
                t0 = time.perf_counter()
                report = load_landing(landing, conn)
                load_s = time.perf_counter() - t0
                # the floor: the same file's lines as text through a bare COPY into an unindexed table
                conn.execute("create unlogged table bare (line text)")
                t0 = time.perf_counter()
                with conn.cursor() as cur, cur.copy("copy bare (line) from stdin") as copy, path.open() as f:
                    for line in f:
                        copy.write_row((line.rstrip("\n"),))
                conn.commit()
                bare_s = time.perf_counter() - t0
    finally:
        drop_database(admin, name)

    rows = report.rows_loaded
    figures = {
        "ingest_events": args.events,
        "ingest_rows_per_s": round(rows / load_s),
        "ingest_bare_copy_rows_per_s": round(args.events / bare_s),
        "ingest_vs_bare_copy": round(load_s / bare_s, 2),
    }
    print(f"generated {args.events:,} cart events ({size_mb:.0f} MB) in {gen_s:.1f} s")
    print(f"ingest (validate + COPY, one transaction): {rows:,} rows in {load_s:.1f} s = {rows / load_s:,.0f} rows/s")
    print(f"bare COPY of the same lines:               {args.events / bare_s:,.0f} rows/s")
    print(f"ingest / bare COPY time: {load_s / bare_s:.2f}x")
    record(figures)


if __name__ == "__main__":
    main()
