"""Load the landing folder into `raw` (contract §2, §3 `cart_recovery_ingest`).

Each file loads once, by content checksum, in name order, in one transaction with its quarantine rows and
its `raw.loaded_files` entry: a crash loads the whole file or nothing, and a rerun loads nothing new.
Rows go in with COPY. Rows that break the contract go to `raw.quarantine` (O4); the rest of the file loads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from cart_recovery.ingest.kinds import KINDS, BadRow, Kind, Row, kind_of

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass
class FileReport:
    file_name: str
    kind: str | None
    status: str  # loaded | already_loaded | unknown_kind | unreadable
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class LoadReport:
    files: list[FileReport] = field(default_factory=list)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    def by_kind(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for f in self.files:
            if f.status != "loaded" or f.kind is None:
                continue
            k = out.setdefault(f.kind, {"files": 0, "rows_loaded": 0, "rows_quarantined": 0})
            k["files"] += 1
            k["rows_loaded"] += f.rows_loaded
            k["rows_quarantined"] += f.rows_quarantined
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": [asdict(f) for f in self.files],
            "by_kind": self.by_kind(),
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
        }


def checksum(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# A row's raw content: the line (JSONL), or a CSV row's fields, written back as CSV only if it is quarantined
# (most rows load: re-serialising every row cost a few seconds per million).
RawRow = str | list[str]


def _raw_text(raw: RawRow) -> str:
    return raw if isinstance(raw, str) else _csv_text(raw)


def _csv_rows(path: Path, kind: Kind) -> Iterator[tuple[int, RawRow, dict[str, Any] | None, str | None]]:
    """(line number, raw fields, parsed row or None, reason) for each data row of a CSV file."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        missing = [c for c in kind.required_fields if c not in header]
        line_start = reader.line_num + 1
        for values in reader:
            line_no = line_start
            line_start = reader.line_num + 1
            if not any(v.strip() for v in values):
                continue  # blank line
            if missing:
                yield line_no, values, None, f"missing column {missing[0]}"
            elif len(values) != len(header):
                yield line_no, values, None, f"expected {len(header)} fields, got {len(values)}"
            else:
                yield line_no, values, dict(zip(header, values, strict=True)), None


def _csv_text(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def _jsonl_rows(path: Path, kind: Kind) -> Iterator[tuple[int, str, dict[str, Any] | None, str | None]]:
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                yield line_no, text, None, "invalid JSON"
                continue
            if not isinstance(obj, dict):
                yield line_no, text, None, "not a JSON object"
                continue
            absent = [k for k in kind.required_fields if k not in obj]
            if absent:
                yield line_no, text, None, f"missing key {absent[0]}"
                continue
            yield line_no, text, obj, None


def _validated(path: Path, kind: Kind) -> Iterator[tuple[int, RawRow, Row | None, str | None]]:
    rows = _csv_rows(path, kind) if kind.fmt == "csv" else _jsonl_rows(path, kind)
    for line_no, text, parsed, reason in rows:
        if parsed is None:
            yield line_no, text, None, reason
            continue
        try:
            yield line_no, text, kind.check(parsed), None
        except BadRow as bad:
            yield line_no, text, None, str(bad)


def _load_file(conn: psycopg.Connection, path: Path, kind: Kind, digest: str) -> FileReport:
    report = FileReport(path.name, kind.name, "loaded")
    quarantined: list[tuple[str, str, int, str, str]] = []
    cols = ", ".join((*kind.columns, "_file_name", "_line_number"))
    with conn.cursor() as cur:
        with cur.copy(f"copy {kind.table} ({cols}) from stdin") as copy:
            for line_no, text, row, reason in _validated(path, kind):
                if row is None:
                    quarantined.append((path.name, kind.name, line_no, reason or "rejected", _raw_text(text)))
                    report.reasons[reason or "rejected"] = report.reasons.get(reason or "rejected", 0) + 1
                    continue
                copy.write_row((*row, path.name, line_no))
                report.rows_loaded += 1
        if quarantined:
            with cur.copy("copy raw.quarantine (file_name, kind, line_number, reason, content) from stdin") as copy:
                for q in quarantined:
                    copy.write_row(q)
        report.rows_quarantined = len(quarantined)
        cur.execute(
            "insert into raw.loaded_files (checksum, file_name, kind, rows_loaded, rows_quarantined) "
            "values (%s, %s, %s, %s, %s)",
            (digest, path.name, kind.name, report.rows_loaded, report.rows_quarantined),
        )
    return report


def _reject_file(conn: psycopg.Connection, path: Path, kind: Kind, digest: str, reason: str) -> FileReport:
    """A file that cannot be read at all: one quarantine row, and marked as seen so it is not retried.
    The exporter fixes it by sending a corrected file (a new checksum)."""
    with conn.transaction():
        conn.execute(
            "insert into raw.quarantine (file_name, kind, line_number, reason, content) values (%s, %s, 0, %s, '')",
            (path.name, kind.name, reason),
        )
        conn.execute(
            "insert into raw.loaded_files (checksum, file_name, kind, rows_loaded, rows_quarantined) "
            "values (%s, %s, %s, 0, 1) on conflict do nothing",
            (digest, path.name, kind.name),
        )
    log.error("%s (%s): %s; quarantined whole file", path.name, kind.name, reason)
    return FileReport(path.name, kind.name, "unreadable", rows_quarantined=1, reasons={reason: 1})


def landing_files(landing: Path) -> list[Path]:
    """Regular, non-hidden files of the landing folder, in name order (contract §2)."""
    return sorted(
        (p for p in landing.iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def load_landing(landing: Path, conn: psycopg.Connection) -> LoadReport:
    """Load every new file of `landing`. Files of unknown kind are reported and left in place."""
    from cart_recovery.db import ensure_schema

    ensure_schema(conn)
    report = LoadReport()
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist (Variable cart_recovery_landing_dir)")
    for path in landing_files(landing):
        kind = kind_of(path.name)
        if kind is None:
            report.files.append(FileReport(path.name, None, "unknown_kind"))
            log.warning("%s: unknown file prefix, left in place (known: %s)", path.name, ", ".join(KINDS))
            continue
        digest = checksum(path)
        try:
            with conn.transaction():
                # Two overlapping runs: the second waits here, then sees the file as loaded.
                conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (digest,))
                seen = conn.execute("select 1 from raw.loaded_files where checksum = %s", (digest,)).fetchone()
                if seen:
                    report.files.append(FileReport(path.name, kind.name, "already_loaded"))
                    continue
                file_report = _load_file(conn, path, kind, digest)
        except UnicodeDecodeError:
            file_report = _reject_file(conn, path, kind, digest, "file is not UTF-8 text")
        report.files.append(file_report)
        # O5: counts and reasons only — reasons never quote a field's value.
        log.info(
            "%s (%s): %d rows loaded, %d quarantined%s",
            path.name,
            kind.name,
            file_report.rows_loaded,
            file_report.rows_quarantined,
            f" {file_report.reasons}" if file_report.reasons else "",
        )
    skipped = sum(1 for f in report.files if f.status == "already_loaded")
    log.info(
        "landing %s: %d files loaded, %d already loaded, %d unknown; %d rows loaded, %d quarantined",
        os.fspath(landing),
        sum(1 for f in report.files if f.status == "loaded"),
        skipped,
        sum(1 for f in report.files if f.status == "unknown_kind"),
        report.rows_loaded,
        report.rows_quarantined,
    )
    return report


def landing_dir() -> Path:
    """The landing folder from the Airflow Variable `cart_recovery_landing_dir` (contract §1), at run time."""
    value = os.environ.get("AIRFLOW_VAR_CART_RECOVERY_LANDING_DIR")
    if not value:
        from airflow.sdk import Variable

        value = Variable.get("cart_recovery_landing_dir", default=None)
    if not value:
        raise RuntimeError("set the Airflow Variable cart_recovery_landing_dir (AIRFLOW_VAR_CART_RECOVERY_LANDING_DIR)")
    return Path(value)


def run_ingest() -> dict[str, Any]:
    """Task body of `load_landing_files`: returns a PII-free summary for XCom."""
    from cart_recovery.db import connect

    with connect() as conn:
        report = load_landing(landing_dir(), conn)
    return {
        "by_kind": report.by_kind(),
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "unknown_files": [f.file_name for f in report.files if f.status == "unknown_kind"],
        "already_loaded": sum(1 for f in report.files if f.status == "already_loaded"),
    }
