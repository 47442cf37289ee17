"""F5 export through the outbox (E6): the run's audience changes become ops.audience_changes rows, then
Google Customer Match and Meta custom audience files; reruns write the same files and duplicate nothing.

Most tests stand in for dbt with a hand-made `marts.retargeting_audience` (the columns dbt writes), on a real
PostgreSQL; the last one builds the real models from a small world and exports them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from cart_recovery.retargeting import change_key, export_audience, export_retargeting_audience

T1 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=1)
DAY = timedelta(days=1)
HEX = re.compile(r"^[0-9a-f]{64}$")
FILES = (
    "additions_google_customer_match.csv",
    "additions_meta_custom_audience.csv",
    "removals_google_customer_match.csv",
    "removals_meta_custom_audience.csv",
)


def sha(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


A, B, C = sha("a@example.org"), sha("b@example.org"), sha("c@example.org")


def set_audience(db: psycopg.Connection, t: datetime, members: list[tuple[str, str, datetime]]) -> None:
    """What dbt's build at `t` leaves in marts.retargeting_audience: (customer_id, email_sha256, joined_at)."""
    db.execute("create schema if not exists marts")
    db.execute(
        "create table if not exists marts.retargeting_audience (customer_id text, email_sha256 text, "
        "joined_at timestamptz, leaves_at timestamptz, evaluated_at timestamptz)"
    )
    db.execute("truncate marts.retargeting_audience")
    for customer_id, digest, joined_at in members:
        db.execute(
            "insert into marts.retargeting_audience values (%s, %s, %s, %s, %s)",
            (customer_id, digest, joined_at, joined_at + timedelta(days=14), t),
        )


def folder_files(root: Path, t: datetime) -> dict[str, str]:
    folder = root / "retargeting" / f"{t:%Y%m%dT%H%M}"
    return {p.name: p.read_text() for p in sorted(folder.glob("*.csv"))} if folder.exists() else {}


def changes(db: psycopg.Connection) -> list[tuple]:
    return db.execute(
        "select idempotency_key, change, email_sha256, decided_at, status, file_name "
        "from ops.audience_changes order by decided_at, change, customer_id"
    ).fetchall()


def test_f5_first_export_writes_additions_for_both_platforms(db, tmp_path):
    set_audience(db, T1, [("a", A, T1), ("b", B, T1 - 3 * DAY)])
    summary = export_audience(db, T1, root=tmp_path)

    files = folder_files(tmp_path, T1)
    assert set(files) == {"additions_google_customer_match.csv", "additions_meta_custom_audience.csv"}
    assert files["additions_google_customer_match.csv"] == "Email\n" + "\n".join(sorted([A, B])) + "\n"
    assert files["additions_meta_custom_audience.csv"] == "email\n" + "\n".join(sorted([A, B])) + "\n"
    assert summary["additions"] == 2
    assert summary["removals"] == 0
    assert summary["new_changes"] == {"add": 2, "remove": 0}
    assert changes(db) == [
        (change_key("a", T1, "add"), "add", A, T1, "exported", "retargeting/20261120T1400/additions"),
        (change_key("b", T1 - 3 * DAY, "add"), "add", B, T1, "exported", "retargeting/20261120T1400/additions"),
    ]
    assert change_key("a", T1, "add") == "retargeting:a:2026-11-20T14:00:00+00:00:add"


def test_e6_rerun_of_same_t_writes_same_files_and_duplicates_nothing(db, tmp_path):
    set_audience(db, T1, [("a", A, T1), ("b", B, T1 - 3 * DAY)])
    export_audience(db, T1, root=tmp_path)
    first_files, first_rows = folder_files(tmp_path, T1), changes(db)

    summary = export_audience(db, T1, root=tmp_path)

    assert summary["new_changes"] == {"add": 0, "remove": 0}
    assert folder_files(tmp_path, T1) == first_files
    assert changes(db) == first_rows


def test_f5_next_run_exports_only_what_changed_and_the_removals(db, tmp_path):
    set_audience(db, T1, [("a", A, T1), ("b", B, T1 - 3 * DAY)])
    export_audience(db, T1, root=tmp_path)
    # at T2: a left (purchase), b stays, c joined
    set_audience(db, T2, [("b", B, T1 - 3 * DAY), ("c", C, T2)])
    summary = export_audience(db, T2, root=tmp_path)

    files = folder_files(tmp_path, T2)
    assert set(files) == set(FILES)
    assert files["additions_google_customer_match.csv"] == f"Email\n{C}\n"
    assert files["removals_google_customer_match.csv"] == f"Email\n{A}\n"
    assert files["removals_meta_custom_audience.csv"] == f"email\n{A}\n"
    assert (summary["additions"], summary["removals"], summary["audience_size"]) == (1, 1, 2)
    keys = [r[0] for r in changes(db)]
    assert change_key("a", T1, "remove") in keys
    assert len(keys) == len(set(keys)) == 4

    # a third run with the same audience: nothing to add or remove, no folder, a removal is not repeated
    t3 = T2 + DAY
    set_audience(db, t3, [("b", B, T1 - 3 * DAY), ("c", C, T2)])
    assert export_audience(db, t3, root=tmp_path)["new_changes"] == {"add": 0, "remove": 0}
    assert folder_files(tmp_path, t3) == {}


def test_e6_crash_after_recording_before_writing_is_completed_by_rerun(db, tmp_path):
    set_audience(db, T1, [("a", A, T1)])
    export_audience(db, T1, root=tmp_path)
    expected = folder_files(tmp_path, T1)
    # as if the task died after the commit of its rows and before its files: rows pending, no files
    db.execute("update ops.audience_changes set status = 'pending', exported_at = null, file_name = null")
    for p in (tmp_path / "retargeting").rglob("*.csv"):
        p.unlink()

    export_audience(db, T1, root=tmp_path)

    assert folder_files(tmp_path, T1) == expected
    assert [r[4] for r in changes(db)] == ["exported"]


def test_o2_replaying_an_earlier_t_rewrites_its_files_unchanged(db, tmp_path):
    set_audience(db, T1, [("a", A, T1), ("b", B, T1 - 3 * DAY)])
    export_audience(db, T1, root=tmp_path)
    day1 = folder_files(tmp_path, T1)
    set_audience(db, T2, [("b", B, T1 - 3 * DAY), ("c", C, T2)])
    export_audience(db, T2, root=tmp_path)
    rows_after_t2 = changes(db)

    set_audience(db, T1, [("a", A, T1), ("b", B, T1 - 3 * DAY)])  # the replay's build at T1
    summary = export_audience(db, T1, root=tmp_path)

    assert summary["new_changes"] == {"add": 0, "remove": 0}  # c's add (T2) is not T1's to remove
    assert folder_files(tmp_path, T1) == day1
    assert changes(db) == rows_after_t2


def test_s3_dry_run_records_and_writes_nothing(db, tmp_path):
    set_audience(db, T1, [("a", A, T1)])
    assert export_audience(db, T1, root=tmp_path, dry_run=True)["dry_run"] is True
    assert changes(db) == []
    assert not (tmp_path / "retargeting").exists()


def test_audience_built_for_another_t_is_refused(db, tmp_path):
    set_audience(db, T2, [("a", A, T1)])  # the other DAG rebuilt the marts for its own T
    with pytest.raises(RuntimeError, match="built for T="):
        export_audience(db, T1, root=tmp_path)
    assert changes(db) == []


def test_o5_no_clear_email_in_files_or_logs(db, tmp_path, caplog):
    set_audience(db, T1, [("a", A, T1), ("b", B, T1)])
    with caplog.at_level(logging.DEBUG, logger="cart_recovery.retargeting"):
        export_audience(db, T1, root=tmp_path)
    lines = [line for text in folder_files(tmp_path, T1).values() for line in text.splitlines()[1:]]
    assert lines
    assert all(HEX.match(line) for line in lines)
    assert "@" not in caplog.text
    assert A not in caplog.text


def test_task_body_reads_the_connection_and_cr_export_dir(db, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CR_EXPORT_DIR", str(tmp_path / "exports"))
    set_audience(db, T1, [("a", A, T1)])
    context = {"data_interval_end": T1, "params": {"dry_run": False}, "run_id": "test"}

    summary = export_retargeting_audience(context)

    assert summary["files"] == [
        "retargeting/20261120T1400/additions_google_customer_match.csv",
        "retargeting/20261120T1400/additions_meta_custom_audience.csv",
    ]
    assert folder_files(tmp_path / "exports", T1)["additions_meta_custom_audience.csv"] == f"email\n{A}\n"


def test_f5_end_to_end_from_dbt_build_hashes_the_normalised_email(admin_url, tmp_path):
    """The real models from a small world, then the export: the file holds the known SHA-256 digest of the
    trimmed, lower-cased address (computed once, outside the code under test)."""
    from tests.dbt.conftest import fresh_warehouse
    from tests.dbt.world import T, World, campaign, h

    known = "9902a2050605f08b3ed6a601235e49a15a437b2206755744bd70c83b27039d2d"  # fresh.person@example.org
    with fresh_warehouse(admin_url, tmp_path / "dbt-target") as warehouse, warehouse.connect() as conn:
        w = World(conn)
        w.store("s1")
        w.customer("fresh", email="  Fresh.Person@Example.ORG ")
        w.cart("fresh-e1", "fresh-cart", T - h(3), "fresh")
        w.customer("no-consent", consent=False)
        w.cart("no-consent-e1", "no-consent-cart", T - h(3), "no-consent")
        warehouse.build(T, [campaign()])

        summary = export_audience(conn, T, root=tmp_path / "exports")
        again = export_audience(conn, T, root=tmp_path / "exports")

    files = folder_files(tmp_path / "exports", T)
    assert files["additions_google_customer_match.csv"] == f"Email\n{known}\n"
    assert files["additions_meta_custom_audience.csv"] == f"email\n{known}\n"
    assert summary["audience_size"] == 1
    assert again["new_changes"] == {"add": 0, "remove": 0}
