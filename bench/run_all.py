"""`make bench`: every benchmark in turn; each prints its figures and merges them into
bench/results/latest.json. Sizes are the issues' defaults; pass --quick for a smoke run."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK = {
    "bench_ingest.py": ["--events", "100000"],
    "bench_models.py": ["--scale", "0.02"],
    "bench_send.py": ["--n", "5000"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, to check the benchmarks run")
    args = ap.parse_args()
    failed = []
    for name in ("bench_ingest.py", "bench_models.py", "bench_send.py"):
        print(f"\n=== {name}", flush=True)
        cmd = [sys.executable, str(HERE / name), *(QUICK[name] if args.quick else [])]
        if subprocess.run(cmd).returncode != 0:
            failed.append(name)
    print("\n=== bench/results/latest.json")
    print(json.dumps(json.loads((HERE / "results" / "latest.json").read_text()), indent=2, sort_keys=True))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
