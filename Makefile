# The two commands of the README: `make demo` (the main job) and `make test` (all the tests).
.PHONY: setup demo test acceptance lint bench clean

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/python -m cart_recovery.devtools.demo_run

# the multi_touch sequence (push -> SMS -> email, F1) over a simulated day on a four-customer shop
.PHONY: demo-followups
demo-followups: setup
	.venv/bin/python -m cart_recovery.devtools.demo_followups

# the project's tests, then the shared black-box acceptance suite when it is beside the checkout
ACCEPTANCE := $(wildcard ../shared/acceptance)

test: setup
	.venv/bin/pytest tests $(ACCEPTANCE) -q

acceptance: setup
	.venv/bin/pytest ../shared/acceptance -q

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/sqlfluff lint dbt_project

# every benchmark at the issues' sizes (~30 min); `make bench BENCH_ARGS=--quick` for a smoke run
bench: setup
	.venv/bin/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf .airflow var dbt_project/target dbt_project/logs
