"""cart_recovery: the importable package behind the DAGs (ingest, rendering, channels, outbox, attribution).

Airflow puts `plugins/` on sys.path; the project also installs it in editable mode so the CLI and the
tests import it the same way.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent.parent
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
TEMPLATES_DIR = PROJECT_DIR / "include" / "templates"
CAMPAIGNS_DIR = PROJECT_DIR / "include" / "campaigns"
