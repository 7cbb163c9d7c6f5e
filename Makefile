# driftloop — the two commands of the README are `make demo` and `make test`.
# Everything is installed by this file into ./.venv (uv, from uv.lock); nothing global.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
# uv must use the machine's Python, never download one.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)

.PHONY: help env test test-fast test-full test-tools test-ui images test-images lint demo mlflow-ui clean reset up down bench bench-log bench-drift bench-tools reliability

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 not found (looked for python3.11, python3)"; exit 1; }
	@echo "uv not found: installing it into $(TOOLS)/ with pip"
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv

$(BIN)/python: | $(UV)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || \
	  { echo "error: driftloop needs Python 3.11; $(PYTHON) is $$($(PYTHON) --version)"; exit 1; }
	# --seed puts pip in the env: the KFP local runner calls `python -m pip`.
	$(UV) venv --seed --python $(PYTHON) $(VENV)

# --compile-bytecode: every site-packages module is compiled once here (~30 s), not at each
# import. Where PYTHONDONTWRITEBYTECODE is set (as on this CI machine), Python never caches
# what it compiles, and every process (each KFP step, Airflow task, server) paid again:
# importing great_expectations took 10 s instead of 4.7, mlflow 6 s instead of 2.2.
$(VENV)/.synced: pyproject.toml uv.lock | $(BIN)/python
	$(UV) sync --frozen --compile-bytecode
	@touch $@

env: $(VENV)/.synced ## create or update the environment from uv.lock

lint: env ## ruff
	$(BIN)/ruff check .

# Three workers (pytest-xdist), one test file per worker at a time (module fixtures such as
# a live server stay shared within their file): much of the suite waits on subprocesses
# (servers, the KFP local runner, Airflow), so even on two cores a third worker pays
# (measured: 703 s with two, 593 s with three). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 3
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

# Debian packages some tests drive for real: Prometheus and promtool (tests/monitoring) and
# Chromium (make test-ui). Installed with apt-get when this user may (root, or sudo without a
# password); otherwise it says what is missing, and those tests skip (CI allows no skip).
TEST_PACKAGES := prometheus:prometheus promtool:prometheus chromium:chromium

test-tools: ## install the Debian packages the tests drive (Prometheus, Chromium) if missing
	@missing=""; for pair in $(TEST_PACKAGES); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; done; \
	missing="$$(echo $$missing | tr ' ' '\n' | sort -u | xargs)"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; \
	else echo "note: not installed: $$missing (apt-get install $$missing as root); their tests will skip"; exit 0; fi; \
	mkdir -p $(TOOLS); echo "installing $$missing with apt-get (log: $(TOOLS)/apt.log)"; \
	{ $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
	    --no-install-recommends $$missing; } >$(TOOLS)/apt.log 2>&1 || \
	  { tail -n 20 $(TOOLS)/apt.log; echo "error: apt-get could not install $$missing"; exit 1; }

# Tests marked `full` are whole-loop forms of checks that make test makes faster (at step
# level); they run in `make reliability`.
test: env test-tools ## create/update the env, lint, run the whole suite (the 15 slowest tests at the end)
	$(BIN)/ruff check .
	$(BIN)/pytest $(XDIST) -m "not full and not ui and not images"

# The whole-loop forms that make test leaves out to stay under 10 minutes here (`full`: Airflow
# metadata on PostgreSQL, a fresh process that needs only setup_local_airflow, the weekly
# DAG, a rerun that promotes nothing, ...). .ci/run runs them after make test.
test-full: env test-tools ## the tests marked full: whole-loop forms of make test's checks (~6 min)
	$(BIN)/pytest $(XDIST) -m "full and not ui"

# The browser tier: Playwright for Python driving Debian's Chromium (never `playwright
# install`) against `make up` started on free ports: the Airflow trigger form and backfill
# dialog, the decision on each run, MLflow's report, /docs "Try it out". Screenshots of a
# failing test's pages go to test-results/ui-screenshots/.
test-ui: env test-tools ## the browser tier: Chromium against make up (~5 min)
	$(BIN)/pytest tests/ui -m ui -rP

# The container tier: the images of docker/images.env built with podman/buildah (docker where
# an engine answers), on local bases where no registry answers (scripts/images/bases.sh:
# debootstrap, uv from PyPI, an Airflow stand-in), then run: the serving image read-only and
# non-root, a pipeline step in the trainer image, the DAGs in the Airflow image, and the
# serving manifests played with `podman kube play`.
images: ## build the serving, trainer and airflow images (podman or docker; ~6 min the first time)
	bash scripts/images/build.sh

test-images: env ## run the built images (make images first; ~3 min)
	$(BIN)/pytest tests/images -m images -rP

# The inner loop: unit, manifest-contract and DAG-integrity tests, plus the Airflow pieces
# that need no server (decisions, the KFP REST hook, the notifier). About a minute here.
FAST_TESTS := tests/unit tests/dags tests/k8s tests/airflow/test_decisions.py \
  tests/airflow/test_kfp_rest.py tests/airflow/test_notifier.py tests/airflow/test_outcome.py

test-fast: env ## the inner loop: unit, contract and DAG-integrity tests (~1 min)
	$(BIN)/ruff check .
	$(BIN)/pytest $(XDIST) -m "not slow and not full" $(FAST_TESTS)

demo: env ## the whole closed loop locally (PORT=8000, SPEC=specs/iris.yaml, STATE=.driftloop)
	$(BIN)/python -m demo

mlflow-ui: env ## open the MLflow UI on the local store (http://127.0.0.1:5000)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui \
	  --backend-store-uri sqlite:///$(CURDIR)/.driftloop/mlflow.db --port 5000

up: env ## start MLflow UI, the server and Airflow (standalone) locally; prints URLs + login
	scripts/local-up.sh

down: ## stop everything `make up` started
	scripts/local-down.sh

# --- benchmarks (benchmarks/RESULTS.md) ----------------------------------------------------
# Evidently needs pandas<3, so it gets its own environment (not committed).
BENCH_EVIDENTLY_VENV := benchmarks/.venv-evidently
BENCH_EVIDENTLY := evidently==0.7.23

$(BENCH_EVIDENTLY_VENV)/bin/python: | $(UV)
	$(UV) venv -q --python $(PYTHON) $(BENCH_EVIDENTLY_VENV)
	$(UV) pip install -q --python $(BENCH_EVIDENTLY_VENV)/bin/python "$(BENCH_EVIDENTLY)" "pandas<3"

# alibi-detect, for the detection-quality benchmark, in its own environment too (its numpy
# backend only: no TensorFlow or PyTorch).
BENCH_ALIBI_VENV := benchmarks/.venv-alibi
BENCH_ALIBI := alibi-detect==0.13.0

$(BENCH_ALIBI_VENV)/bin/python: | $(UV)
	$(UV) venv -q --python $(PYTHON) $(BENCH_ALIBI_VENV)
	$(UV) pip install -q --python $(BENCH_ALIBI_VENV)/bin/python "$(BENCH_ALIBI)" "pandas<3"

bench-drift: env $(BENCH_EVIDENTLY_VENV)/bin/python $(BENCH_ALIBI_VENV)/bin/python ## drift detection quality: driftloop vs Evidently vs alibi-detect on the same windows (~15 min); writes benchmarks/RESULTS.md
	$(BIN)/python -m benchmarks.run --only drift_quality

bench-tools: ## install wrk (Debian package) if missing
	@command -v wrk >/dev/null || { \
	  echo "wrk not found: installing it with apt-get"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi; }
	@command -v taskset >/dev/null || { echo "error: taskset (util-linux) is required"; exit 1; }

bench-log: env bench-tools ## the prediction log at 100k/1M/10M rows on SQLite and PostgreSQL, write throughput, retention; writes benchmarks/RESULTS.md
	$(BIN)/python -m benchmarks.run --only log

bench: env bench-tools $(BENCH_EVIDENTLY_VENV)/bin/python ## serving, drift and DAG parse benchmarks side by side; writes benchmarks/RESULTS.md
	$(BIN)/python -m benchmarks.run

# --- reliability (RELIABILITY.md) ----------------------------------------------------------
# The tests/reliability suite at full size, plus the tests of other folders that the
# reliability claims rest on: concurrent drift runs, whole-pipeline faults, the admin token,
# request limits, images and pod security. `make test` runs all of them (at small size).
# Set DRIFTLOOP_TEST_PG_URL (as .ci/run does) for the PostgreSQL tests; without it they are
# skipped and RELIABILITY.md says so.
RELIABILITY_OUT := .driftloop/reliability
RELIABILITY_TESTS := tests/reliability \
  tests/airflow/test_dag_processes.py tests/airflow/test_manual_promotion.py \
  tests/airflow/test_dag_runs.py::test_weekly_retrain_submits_a_scheduled_retrain \
  tests/airflow/test_local_stack.py::test_a_rest_triggered_run_succeeds \
  tests/airflow/test_local_stack.py::test_backfill_through_the_api_reads_each_past_hour \
  tests/pipelines/test_local_run.py tests/pipelines/test_live_server.py \
  tests/pipelines/test_live_gate.py::test_a_challenger_better_live_is_promoted_from_the_shadow_stage \
  tests/serving/test_admin_reload.py tests/serving/test_predict.py \
  tests/serving/test_feedback.py tests/serving/test_endpoints.py tests/serving/test_openapi.py \
  tests/k8s/test_images.py tests/k8s/test_contracts.py \
  tests/integration/test_demo_regression.py

reliability: env ## contract fuzzing, faults, load during rollout, security at full size; writes RELIABILITY.md
	@mkdir -p $(RELIABILITY_OUT)
	rm -f $(RELIABILITY_OUT)/figures.json $(RELIABILITY_OUT)/junit.xml
	DRIFTLOOP_RELIABILITY_SCALE=full \
	DRIFTLOOP_RELIABILITY_FIGURES=$(RELIABILITY_OUT)/figures.json \
	DRIFTLOOP_RELIABILITY_COMMAND="make reliability" \
	  $(BIN)/pytest $(RELIABILITY_TESTS) -rs --junitxml=$(RELIABILITY_OUT)/junit.xml; \
	  status=$$?; \
	  $(BIN)/python -m tests.reliability.report $(RELIABILITY_OUT)/figures.json \
	    $(RELIABILITY_OUT)/junit.xml RELIABILITY.md; \
	  exit $$status

reset: ## forget the local state (.driftloop/: MLflow store, prediction log, reports)
	rm -rf .driftloop

clean: reset ## remove the environment too
	rm -rf $(VENV) $(TOOLS)
