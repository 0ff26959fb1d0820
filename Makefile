# Three-Plane Data + AI Sandbox. Every target sets itself up (idempotently) first.
SHELL := /bin/bash
# The interpreter for a new .venv: PYTHON=..., else the first supported one on the PATH.
PYTHON ?= $(firstword $(foreach p,python3.11 python3.12 python3.13 python3,\
	$(shell $(p) -c 'import sys; print("$(p)" if (3, 11) <= sys.version_info[:2] <= (3, 13) else "")' 2>/dev/null)))
VENV ?= .venv
BIN := $(VENV)/bin
# What `make setup` installs from uv.lock: the project plus these extras (CI adds spark).
EXTRAS ?= dev
STAMP := $(VENV)/.installed-$(subst $(eval) ,+,$(strip $(EXTRAS)))
# uv installs exactly uv.lock; this pinned copy is fetched from PyPI with pip into .tools/.
UV_VERSION := 0.13.9
UV := .tools/uv-$(UV_VERSION)/bin/uv
AS_OF ?= 2026-11-01
PYTEST_ARGS ?=
# make test: test files run on this many parallel workers, longest first (measured; see docs/testing.md)
TEST_WORKERS ?= 3
# make check: the quick tests (no slow, learner_path or browser marker) on this many workers
CHECK_WORKERS ?= 3
PORT ?= 8080
LAB_ARGS ?=
# make lock: --upgrade re-resolves every pin to the newest allowed; LOCK_ARGS= keeps the others
LOCK_ARGS ?= --upgrade
# make grade: the learner's executed notebooks to grade, and where the scores go
GRADE_NOTEBOOKS ?= notebooks/[0-9]*.ipynb
GRADE_OUT ?= grades

.DEFAULT_GOAL := help
.PHONY: help setup lock pipeline check test lint lab docs bench airflow-ui airflow notebooks eval grade student clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}' \
		| sed -e 's/$$(PORT)/$(PORT)/g' -e 's/$$(AS_OF)/$(AS_OF)/g'

# Stops with the fix when no supported interpreter was found.
need-python = @test -n "$(PYTHON)" || { echo "make: no supported Python (3.11, 3.12 or 3.13) \
	found on the PATH: install one, or run make PYTHON=/path/to/python3.12"; exit 2; }

$(UV):
	$(need-python)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target .tools/uv-$(UV_VERSION) uv==$(UV_VERSION)

$(STAMP): uv.lock pyproject.toml | $(UV)
	$(need-python)
	@$(PYTHON) -c 'import sys; (3, 11) <= sys.version_info[:2] <= (3, 13) or sys.exit(f"make: Python \
	3.11, 3.12 or 3.13 is required, $(PYTHON) is {sys.version.split()[0]}: run make PYTHON=/path/to/python3.12")'
	@echo "make: installing uv.lock (extras: $(EXTRAS)) into $(VENV) with $$($(PYTHON) -c 'import sys; print(f"Python {sys.version.split()[0]} ({sys.executable})")')"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --quiet --no-python-downloads \
		--python "$$($(PYTHON) -c 'import sys; print(sys.executable)')" $(addprefix --extra ,$(EXTRAS))
	rm -f $(VENV)/.installed*
	touch $@

setup: $(STAMP) ## create .venv and install exactly uv.lock (PYTHON=, VENV=; skipped when up to date)
	@echo "make: $(VENV) runs $$($(BIN)/python -V)"

lock: | $(UV) ## re-resolve uv.lock from pyproject.toml and write the same pins into environment.yml
	$(UV) lock $(LOCK_ARGS)
	{ sed -n '1,/^  - pip:$$/p' environment.yml; \
	  $(UV) export --frozen --quiet --no-hashes --no-header --no-emit-project --extra dev \
		| grep -v '^ *#' | sed -e 's/^/      - "/' -e 's/$$/"/'; \
	  echo '      - "-e .[dev]"'; } > environment.yml.new
	mv environment.yml.new environment.yml

pipeline: setup ## set up, then run the whole pipeline (both Airflow DAGs) for the shipped date
	$(BIN)/sandbox run --date $(AS_OF)

lint: setup ## ruff over the package, tests, DAGs and notebooks
	$(BIN)/ruff check sandbox tests dags notebooks bench instructor

check: lint ## the edit loop: lint, then the quick tests (a few minutes; no slow, learner or browser test)
	$(BIN)/pytest -n $(CHECK_WORKERS) --dist loadfile --no-loadscope-reorder \
		-m 'not slow and not learner_path and not browser and not live' tests $(PYTEST_ARGS)

test: lint ## set up, lint, every test and the learner's path (pipeline + every notebook twice, nbval)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --store-durations \
		tests $(PYTEST_ARGS)

notebooks: setup ## re-execute every notebook as a learner would, store its outputs (no widget views)
	for nb in notebooks/[0-9]*.ipynb; do \
		$(BIN)/jupyter nbconvert --to notebook --execute \
			--inplace --ExecutePreprocessor.timeout=900 "$$nb" || exit 1; \
	done
	$(BIN)/python instructor/tools.py clean notebooks/[0-9]*.ipynb

grade: setup ## run every exercise check of GRADE_NOTEBOOKS again; scores in GRADE_OUT/grades.{json,csv}
	$(BIN)/python instructor/tools.py grade $(GRADE_NOTEBOOKS) --out $(GRADE_OUT)

student: setup ## write the student copy of the notebooks into student/ (outputs cleared)
	$(BIN)/python instructor/tools.py student --out student

docs: setup ## build, then write dbt's static docs site (open the printed path)
	$(BIN)/sandbox build --date $(AS_OF)
	$(BIN)/sandbox docs --date $(AS_OF)

eval: setup ## set up, then evaluate the golden set offline and judge it against its baseline
	$(BIN)/sandbox eval

bench: setup ## run the benchmarks (minutes; generates 1M users) and write bench/RESULTS.md
	$(BIN)/python bench/run_all.py

airflow-ui: setup ## Airflow's UI alone on http://127.0.0.1:$(PORT): browse recorded runs (no scheduler)
	$(BIN)/python -m sandbox.control.ui --port $(PORT)

airflow: setup ## Airflow's scheduler, dag-processor, triggerer and UI on http://127.0.0.1:$(PORT)
	$(BIN)/python -m sandbox.control.ui --scheduler --port $(PORT)

lab: setup ## open JupyterLab on the notebooks (e.g. LAB_ARGS="--port=8891 --no-browser")
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) \
		--LabApp.app_settings_dir=$(CURDIR)/notebooks/.jupyter/lab/settings $(LAB_ARGS) notebooks/

clean: ## remove everything the other targets created
	rm -rf $(VENV) .tools warehouse .airflow dbt_project/target dbt_project/logs logs bench/out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf *.egg-info .pytest_cache .ruff_cache
