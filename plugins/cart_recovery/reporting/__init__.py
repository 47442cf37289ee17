"""Reporting: the dashboard page and the static HTML report (A5)."""
