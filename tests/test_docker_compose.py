"""docker-compose.yaml matches what the README and docs/DEPLOYMENT.md say (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((PROJECT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]
CELERY = ["redis", "airflow-worker", "flower"]


def test_services_of_a_real_deployment():
    assert set(SERVICES) >= {"postgres", *AIRFLOW, *CELERY}
    assert SERVICES["airflow-apiserver"]["command"] == "api-server"
    assert SERVICES["airflow-scheduler"]["command"] == "scheduler"
    assert SERVICES["airflow-dag-processor"]["command"] == "dag-processor"
    assert SERVICES["airflow-triggerer"]["command"] == "triggerer"
    assert "8080:8080" in SERVICES["airflow-apiserver"]["ports"]


@pytest.mark.parametrize("name", AIRFLOW + ["airflow-worker", "flower"])
def test_airflow_services_share_image_env_and_mounts(name):
    svc = SERVICES[name]
    assert svc["image"] == "cart-recovery-airflow:3.3.2"
    mounts = {m.split(":")[1] for m in svc["volumes"]}
    for folder in ("dags", "plugins", "include", "dbt_project"):
        assert f"/opt/airflow/project/{folder}" in mounts
    env = svc["environment"]
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/project/dags"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/airflow/project/plugins"
    assert env["AIRFLOW__CORE__EXECUTOR"].endswith("LocalExecutor}"), "LocalExecutor by default"
    assert "cart_recovery" in env["AIRFLOW_CONN_CART_RECOVERY_DB"]
    assert env["AIRFLOW_VAR_CART_RECOVERY_LANDING_DIR"] == "/opt/airflow/landing"
    assert env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "False"


def test_celery_variant_is_a_profile():
    for name in CELERY:
        assert SERVICES[name].get("profiles") == ["celery"]
    for name in ["postgres", *AIRFLOW]:
        assert "profiles" not in SERVICES[name]


def test_postgres_has_healthcheck_and_named_volume():
    pg = SERVICES["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(v.startswith("postgres-data:") for v in pg["volumes"])
    assert "postgres-data" in COMPOSE["volumes"]


def test_no_secret_literals_and_every_variable_in_env_example():
    text = (PROJECT / "docker-compose.yaml").read_text()
    example = (PROJECT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, flags=re.M))
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
    assert not re.search(r"SG\.[A-Za-z0-9_-]{10,}", text)
    for name, svc in SERVICES.items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|_CONN_", key):
                assert "${" in str(value), f"{name}.{key}: secrets come from .env"


def test_deployment_doc_names_every_service():
    doc = (PROJECT / "docs" / "DEPLOYMENT.md").read_text()
    for name in SERVICES:
        assert f"`{name}`" in doc
    assert "CeleryExecutor" in doc
    readme = (PROJECT / "README.md").read_text()
    assert "docs/DEPLOYMENT.md" in readme
