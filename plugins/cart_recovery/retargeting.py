"""F5: the retargeting audience's changes as the ad platforms' customer-list files, through an outbox (E6).

The decision is SQL: `marts.retargeting_audience` (who is in the audience at T). This module only acts:
for a run at T it records in `ops.audience_changes` what changed since the previous export —

- `add`: a membership (customer_id, joined_at) in the audience at T that no export has added yet;
- `remove`: a membership added by an export at or before T, not removed yet, and no longer in the audience
  at T (left after 14 days, on purchase or opt-out, or no longer a member at all after late data) —

and then writes every change decided at T as CSV files under
`$CR_EXPORT_DIR/retargeting/<T as YYYYMMDDTHHMM, UTC>/`:

    additions_google_customer_match.csv   header `Email`  (Google Ads Customer Match, SHA-256 hex)
    additions_meta_custom_audience.csv    header `email`  (Meta custom audience, SHA-256 hex)
    removals_google_customer_match.csv / removals_meta_custom_audience.csv   (the same, to remove)

A file is written only when it has rows. Keys: `retargeting:<customer_id>:<joined_at ISO UTC>:<add|remove>`.
The rows are committed before any file is written (`pending`), then marked `exported`; a rerun of the same T
inserts nothing twice and rewrites the same files from the rows decided at T, so a crash between the two
steps loses nothing. Only hashes go to files and no address or hash goes to the log (O5). A dry run (S3)
records and writes nothing. Time: T only (O2); `exported_at` is the wall clock, for audit.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXPORT_DIR_ENV = "CR_EXPORT_DIR"
KEY_PREFIX = "retargeting"
# (file suffix, header) per ad platform; both take lower-case SHA-256 hex of the trimmed, lower-cased email
PLATFORMS = (("google_customer_match", "Email"), ("meta_custom_audience", "email"))
FILE_STEMS = {"add": "additions", "remove": "removals"}
# one export at a time per warehouse: two runs at once would both see the same "not yet added" rows
_LOCK_KEY = 0x5F7265746172  # an arbitrary constant, fixed


@dataclass(frozen=True)
class Change:
    customer_id: str
    change: str
    email_sha256: str
    joined_at: datetime


def export_dir() -> Path:
    """Where the files go: `$CR_EXPORT_DIR`, else the project's `var/exports`."""
    from cart_recovery import PROJECT_DIR

    configured = os.environ.get(EXPORT_DIR_ENV)
    return Path(configured) if configured else PROJECT_DIR / "var" / "exports"


def change_key(customer_id: str, joined_at: datetime, change: str) -> str:
    return f"{KEY_PREFIX}:{customer_id}:{joined_at.astimezone(UTC).isoformat()}:{change}"


def run_folder(evaluation_time: datetime) -> str:
    """The run's folder, relative to the export dir: retargeting/<T as YYYYMMDDTHHMM in UTC>."""
    return f"{KEY_PREFIX}/{evaluation_time.astimezone(UTC):%Y%m%dT%H%M}"


def _audience_is_for(conn: Any, evaluation_time: datetime) -> None:
    """Refuse a marts.retargeting_audience built for another T (the DAGs share the marts)."""
    other = conn.execute(
        "select evaluated_at from marts.retargeting_audience where evaluated_at <> %s limit 1", (evaluation_time,)
    ).fetchone()
    if other:
        raise RuntimeError(
            f"marts.retargeting_audience was built for T={other[0].isoformat()}, not this run's "
            f"T={evaluation_time.isoformat()}: rerun this run's build_models and this task"
        )


def record_changes(conn: Any, evaluation_time: datetime) -> dict[str, int]:
    """Insert the run's additions and removals (idempotent); returns how many rows were new, by change."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        _audience_is_for(conn, evaluation_time)
        audience = conn.execute(
            "select customer_id, email_sha256, joined_at from marts.retargeting_audience"
        ).fetchall()
        adds = [(change_key(c, joined, "add"), c, "add", sha, joined, evaluation_time) for c, sha, joined in audience]
        # adds of exports at or before T, not removed, whose membership is not in the audience at T
        open_adds = conn.execute(
            """
            select added.customer_id, added.email_sha256, added.joined_at
            from ops.audience_changes as added
            where
                added.change = 'add'
                and added.decided_at <= %(t)s
                and not exists (
                    select 1 from ops.audience_changes as removed
                    where removed.change = 'remove'
                      and removed.customer_id = added.customer_id
                      and removed.joined_at = added.joined_at
                )
                and not exists (
                    select 1 from marts.retargeting_audience as audience
                    where audience.customer_id = added.customer_id and audience.joined_at = added.joined_at
                )
            """,
            {"t": evaluation_time},
        ).fetchall()
        removes = [
            (change_key(c, joined, "remove"), c, "remove", sha, joined, evaluation_time) for c, sha, joined in open_adds
        ]
        # one COPY and one insert rather than a statement per row (measured: 23 s of the 100k-message day)
        conn.execute(
            "create temp table cr_audience_changes (idempotency_key text, customer_id text, change text, "
            "email_sha256 text, joined_at timestamptz, decided_at timestamptz) on commit drop"
        )
        with conn.cursor() as cur:
            with cur.copy("copy cr_audience_changes from stdin") as copy:
                for row in adds + removes:
                    copy.write_row(row)
            inserted = cur.execute(
                """
                insert into ops.audience_changes
                    (idempotency_key, customer_id, change, email_sha256, joined_at, decided_at, status)
                select idempotency_key, customer_id, change, email_sha256, joined_at, decided_at, 'pending'
                from cr_audience_changes
                on conflict (idempotency_key) do nothing
                returning change
                """
            ).fetchall()
    new = {"add": 0, "remove": 0}
    for (change,) in inserted:
        new[change] += 1
    return new


def changes_decided_at(conn: Any, evaluation_time: datetime) -> list[Change]:
    rows = conn.execute(
        """
        select customer_id, change, email_sha256, joined_at
        from ops.audience_changes
        where decided_at = %s
        order by change, email_sha256, customer_id
        """,
        (evaluation_time,),
    ).fetchall()
    return [Change(*r) for r in rows]


def _csv(header: str, hashes: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header])
    writer.writerows([h] for h in hashes)
    return out.getvalue()


def _write_atomically(path: Path, content: str) -> None:
    """The whole file or nothing (an uploader never reads half a list); readable by its owner and group."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_files(changes: list[Change], evaluation_time: datetime, root: Path) -> dict[str, list[str]]:
    """One file per platform and change kind that has rows; returns the relative paths by change kind."""
    folder = run_folder(evaluation_time)
    written: dict[str, list[str]] = {}
    for change, stem in FILE_STEMS.items():
        hashes = sorted({c.email_sha256 for c in changes if c.change == change})
        if not hashes:
            continue
        for suffix, header in PLATFORMS:
            relative = f"{folder}/{stem}_{suffix}.csv"
            _write_atomically(root / relative, _csv(header, hashes))
            written.setdefault(change, []).append(relative)
    return written


def export_audience(
    conn: Any, evaluation_time: datetime, *, dry_run: bool = False, root: Path | None = None
) -> dict[str, Any]:
    """Record the changes at T, write their files, mark them exported. Counts and file names only (O5).
    `conn` is an autocommit connection: the changes are committed before the files are written."""
    if dry_run:
        log.info("dry run: the retargeting audience is neither recorded nor exported")
        return {"evaluation_time": evaluation_time.isoformat(), "dry_run": True}
    root = root or export_dir()
    new = record_changes(conn, evaluation_time)
    changes = changes_decided_at(conn, evaluation_time)
    written = write_files(changes, evaluation_time, root)
    with conn.transaction():
        for change, stem in FILE_STEMS.items():
            if change in written:
                conn.execute(
                    """
                    update ops.audience_changes
                    set status = 'exported', exported_at = coalesce(exported_at, now()), file_name = %s
                    where decided_at = %s and change = %s
                    """,
                    (f"{run_folder(evaluation_time)}/{stem}", evaluation_time, change),
                )
        size = conn.execute(
            "select count(*) from marts.retargeting_audience where evaluated_at = %s", (evaluation_time,)
        ).fetchone()[0]
    summary = {
        "evaluation_time": evaluation_time.isoformat(),
        "audience_size": size,
        "additions": sum(c.change == "add" for c in changes),
        "removals": sum(c.change == "remove" for c in changes),
        "new_changes": new,
        "folder": str(root / run_folder(evaluation_time)) if written else None,
        "files": sorted(f for files in written.values() for f in files),
    }
    log.info("retargeting export: %s", summary)
    return summary


def export_retargeting_audience(context: Any) -> dict[str, Any]:
    """Task body (F5): the run's audience changes to the ad platforms' files, after the dbt build."""
    from cart_recovery.db import connect, ensure_schema
    from cart_recovery.orchestration import evaluation_time

    params = context.get("params") or {}
    with connect() as conn:
        ensure_schema(conn)  # ops.audience_changes, should this task run before any other of the day
    with connect(autocommit=True) as conn:  # each `conn.transaction()` block is one committed transaction
        return export_audience(conn, evaluation_time(context), dry_run=bool(params.get("dry_run", False)))
