"""`make bench`: every benchmark in turn; each prints its figures and merges them into
bench/results/latest.json. Sizes are the issues' defaults (bench_send and bench_day: 100k messages each;
all four take about half an hour on 2 cores); `--quick` is a smoke run at small sizes whose send and day
figures are not recorded; `--only bench_day.py` runs some of them."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHES = ("bench_ingest.py", "bench_models.py", "bench_send.py", "bench_day.py")
QUICK = {
    "bench_ingest.py": ["--events", "100000"],
    "bench_models.py": ["--scale", "0.02"],
    "bench_send.py": ["--n", "2000", "--sequential-n", "40", "--in-process-n", "1000", "--no-record"],
    "bench_day.py": ["--scale", "1", "--no-record"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, to check the benchmarks run")
    ap.add_argument("--only", nargs="+", choices=BENCHES, help="run these benchmarks only")
    args = ap.parse_args()
    failed = []
    for name in args.only or BENCHES:
        # the machine may be shared: say how busy it was when each benchmark started
        print(f"\n=== {name} (load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
        cmd = [sys.executable, str(HERE / name), *(QUICK[name] if args.quick else [])]
        t0 = time.perf_counter()
        if subprocess.run(cmd).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print("\n=== bench/results/latest.json")
    print(json.dumps(json.loads((HERE / "results" / "latest.json").read_text()), indent=2, sort_keys=True))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
