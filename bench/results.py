"""Merge a benchmark's figures into bench/results/latest.json (each benchmark owns its keys)."""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LATEST = Path(__file__).resolve().parent / "results" / "latest.json"


def record(figures: dict[str, Any], path: Path = LATEST, drop: Iterable[str] = ()) -> dict[str, Any]:
    """Merge `figures` into `path`; `drop` removes keys a benchmark no longer writes (renamed figures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    for key in drop:
        data.pop(key, None)
    data.update(figures)
    data["machine"] = f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    data["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data
