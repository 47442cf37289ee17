#!/usr/bin/env bash
# Installs the project into .venv/ from the committed lock (requirements.lock), byte-compiled, and
# parses the dbt project so the DAGs can render it from its manifest. Idempotent: fast when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "cart recovery needs Python 3.11 (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

stamp=.venv/.installed-$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  start=$(date +%s)
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check "uv==0.13.9"
  # sync: exactly the locked set, nothing more (Airflow's constraints cannot be downloaded here)
  .venv/bin/uv pip sync -q --python .venv/bin/python --compile-bytecode requirements.lock
  .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
  echo "installed the locked dependencies into .venv/ in $(( $(date +%s) - start )) s" >&2
fi

# cosmos renders the dbt DAG from target/manifest.json (LoadMode.DBT_MANIFEST): never `dbt ls` at parse time
.venv/bin/python -m cart_recovery.dbt >/dev/null
