"""docker-compose.yaml is a real deployment and matches docs/DEPLOYMENT.md and .env.example.

No Docker engine runs here: the file is read as YAML (merge keys resolved, as compose does) and checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT = Path(__file__).resolve().parent.parent
TEXT = (PROJECT / "docker-compose.yaml").read_text(encoding="utf-8")
COMPOSE = yaml.safe_load(TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
ENV_EXAMPLE = (PROJECT / ".env.example").read_text(encoding="utf-8")
AIRFLOW = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]
CELERY = ["redis", "airflow-worker", "flower"]
AIRFLOW_IMAGES = AIRFLOW + ["airflow-worker", "flower"]
PROJECT_MOUNTS = {"dags", "plugins", "include", "dbt_project"}
REQUIRED_ENV = [
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__PARALLELISM",
    "AIRFLOW_CONN_CART_RECOVERY_DB",
    "AIRFLOW_CONN_SENDGRID_DEFAULT",
    "AIRFLOW_VAR_CART_RECOVERY_LANDING_DIR",
    "CR_SENDER_NAME",
    "CR_SENDER_EMAIL",
    "CR_SENDER_ADDRESS",
    "CR_PUBLIC_BASE_URL",
    "CR_UNSUBSCRIBE_SECRET",
]


def command(name: str) -> str:
    cmd = SERVICES[name].get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def mounts(name: str) -> dict[str, str]:
    """container path -> host source"""
    out = {}
    for volume in SERVICES[name].get("volumes", []):
        parsed = re.fullmatch(r"(\$\{[^}]*\}|[^:]+):([^:]+)(?::(ro|rw))?", volume)
        assert parsed, volume
        out[parsed[2]] = parsed[1]
    return out


def test_services_of_a_real_deployment():
    assert set(SERVICES) >= {"postgres", *AIRFLOW, *CELERY}
    assert command("airflow-apiserver") == "api-server"
    assert command("airflow-scheduler") == "scheduler"
    assert command("airflow-dag-processor") == "dag-processor"
    assert command("airflow-triggerer") == "triggerer"
    assert command("airflow-worker") == "celery worker"
    assert command("flower") == "celery flower"


def test_init_migrates_creates_the_admin_and_writes_the_manifest():
    init = command("airflow-init")
    assert "airflow db migrate" in init
    assert "airflow users create" in init
    assert "--role Admin" in init
    assert "python -m cart_recovery.dbt" in init  # cosmos renders the DAGs from target/manifest.json
    assert SERVICES["airflow-init"]["restart"] == "no"
    for name in AIRFLOW[1:]:
        assert SERVICES[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert SERVICES[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_api_server_publishes_8080():
    assert "8080:8080" in SERVICES["airflow-apiserver"]["ports"]
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


@pytest.mark.parametrize("name", AIRFLOW_IMAGES)
def test_airflow_services_share_the_image_and_mount_the_project(name):
    svc = SERVICES[name]
    assert svc["build"] == "."
    assert svc["image"] == SERVICES["airflow-apiserver"]["image"]
    assert (PROJECT / "Dockerfile").read_text().startswith("#")
    assert "FROM apache/airflow:3.3.2-python3.11" in (PROJECT / "Dockerfile").read_text()
    volumes = mounts(name)
    for folder in PROJECT_MOUNTS:
        assert volumes[f"/opt/airflow/project/{folder}"] == f"./{folder}"
    assert "/opt/airflow/landing" in volumes


@pytest.mark.parametrize("name", AIRFLOW_IMAGES)
def test_airflow_environment(name):
    env = SERVICES[name]["environment"]
    missing = [k for k in REQUIRED_ENV if k not in env]
    assert not missing
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}", "LocalExecutor by default"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/project/dags"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/airflow/project/plugins"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "False"
    assert env["AIRFLOW_VAR_CART_RECOVERY_LANDING_DIR"] == "/opt/airflow/landing"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres:5432/cart_recovery" in env["AIRFLOW_CONN_CART_RECOVERY_DB"]
    # one JWT secret for all: tokens signed by the scheduler must verify in the api-server
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW__API_AUTH__JWT_SECRET:?")


def test_celery_variant_is_a_profile():
    for name in CELERY:
        assert SERVICES[name].get("profiles") == ["celery"]
    for name in ["postgres", *AIRFLOW]:
        assert "profiles" not in SERVICES[name]
    env = SERVICES["airflow-worker"]["environment"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert SERVICES["airflow-worker"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "5555:5555" in SERVICES["flower"]["ports"]


def test_postgres_has_a_healthcheck_and_a_named_volume():
    pg = SERVICES["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert mounts("postgres")["/var/lib/postgresql/data"] == "postgres-data"
    assert "postgres-data" in COMPOSE["volumes"]
    init_sql = mounts("postgres")["/docker-entrypoint-initdb.d/10-cart-recovery.sql"]
    assert "create database cart_recovery" in (PROJECT / init_sql).read_text().lower()


def test_every_variable_used_is_in_env_example():
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE, flags=re.M))
    code = "\n".join(line for line in TEXT.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", code))  # $${VAR} is the container's, not compose's
    assert used, "the file takes its settings from the environment"
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
    paragraphs = ENV_EXAMPLE.split("\n\n")
    for name in used:  # each in a paragraph that explains it
        (paragraph,) = [p for p in paragraphs if re.search(rf"^#?\s*{name}=", p, flags=re.M)]
        assert any(line.startswith("# ") for line in paragraph.splitlines()), f"{name} has no comment"


def test_no_secret_literal_in_the_compose_file():
    assert not re.search(r"SG\.[A-Za-z0-9_-]{10,}", TEXT), "a SendGrid key"
    assert not re.search(r"://[^:/@\s$]+:[^@\s${]+@", TEXT), "a password in a URL"
    for name, svc in SERVICES.items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|FERNET|_CONN_|SQL_ALCHEMY_CONN|RESULT_BACKEND", key):
                assert str(value).startswith("${") or "${" in str(value), f"{name}.{key}: secrets come from .env"
                required = re.findall(r"\$\{[A-Z_0-9]+(:[?-])", str(value))
                assert required, f"{name}.{key}"


def test_secrets_are_required_and_blank_in_env_example():
    for name in ("POSTGRES_PASSWORD", "CR_UNSUBSCRIBE_SECRET", "AIRFLOW__API_AUTH__JWT_SECRET",
                 "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_CONN_SENDGRID_DEFAULT"):  # fmt: skip
        assert f"${{{name}:?" in TEXT, f"{name} must be required (${{VAR:?}})"
    for line in ENV_EXAMPLE.splitlines():
        if re.match(r"^[A-Z_]*(SECRET|FERNET_KEY|ADMIN_PASSWORD)[A-Z_]*=", line):
            assert line.endswith("="), f"{line.split('=')[0]}: ship no value for a secret"


def test_deployment_doc_names_every_service_and_the_celery_switch():
    doc = (PROJECT / "docs" / "DEPLOYMENT.md").read_text(encoding="utf-8")
    for name in SERVICES:
        assert f"`{name}`" in doc, name
    for text in ("CeleryExecutor", "AIRFLOW__CORE__EXECUTOR=CeleryExecutor", "--profile celery",
                 "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND", ".env.example"):  # fmt: skip
        assert text in doc, text
