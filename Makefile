# Two commands a new user needs: `make run` (the pipeline on the embedded default) and
# `make test`. Both set up .venv from the lock on first use and are quick afterwards.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/dev.lock
ARGS   ?=
# pytest-xdist workers of `make test`: its pipelines wait on kernels, servers and emulators
# about a third of the time, so two workers pay even on two cores (docs/benchmarks.md)
WORKERS ?= 2
# see leaklib/kernelspec.py: OpenMP spin-waiting is ruinous on a busy 2-core machine
export OMP_WAIT_POLICY ?= PASSIVE

.DEFAULT_GOAL := help
.PHONY: help install run test check bench lab lint format lock clean-reports

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the lock or the package metadata changes.
$(STAMP): $(BIN)/python $(LOCK) requirements/main.lock pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m leaklib.kernelspec >/dev/null
	@touch $@

install: $(STAMP) ## create .venv from the lock and register the Jupyter kernel

run: $(STAMP) ## run extract -> train -> evaluate on the embedded default (ARGS="-f x.yaml -p k v")
	$(BIN)/leak run $(ARGS)

test: $(STAMP) ## run the test suite (unit, notebooks, services) on two workers (WORKERS=0: one process)
	@bash tests/emulators/install.sh || echo "make test: an emulator is unavailable; its tests will say why"
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile $(ARGS)

check: $(STAMP) ## the fast tier for the edit-test loop: no pipeline runs, services or browser (under 90 s)
	$(BIN)/python -m pytest -q -m "not slow and not emulators and not browser" $(ARGS)

bench: $(STAMP) ## paired benchmarks of leak run against a plain script, cache re-runs, 1x/4x/16x rows (about an hour)
	$(BIN)/python benchmarks/bench_pipeline.py $(ARGS)

lab: $(STAMP) ## open JupyterLab on the repo with the leaklib kernel
	$(BIN)/jupyter lab --notebook-dir=. notebooks/

lint: $(STAMP) ## ruff lint and format check, GitLab CI schema check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/check-jsonschema --builtin-schema vendor.gitlab-ci --data-transform gitlab-ci .gitlab-ci.yml

format: $(STAMP) ## apply ruff formatting
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: $(STAMP) ## re-resolve requirements/*.lock from requirements/*.in
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile --python-version 3.11 --no-header requirements/main.in -o requirements/main.lock
	$(BIN)/uv pip compile --python-version 3.11 --no-header requirements/dev.in -o requirements/dev.lock

clean-reports: ## delete rendered reports and local stores (snapshots, run records, MLflow)
	rm -rf reports/2* reports/index.html stores mlflow.db mlartifacts
