"""Landing files → `raw` schema (contract §2)."""

from cart_recovery.ingest.loader import LoadReport, load_landing, run_ingest

__all__ = ["LoadReport", "load_landing", "run_ingest"]
