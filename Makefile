# Three-Plane Data + AI Sandbox. Every target sets itself up (idempotently) first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AS_OF ?= 2026-11-01
PYTEST_ARGS ?=
# make test: test files run on this many parallel workers, longest first (tests/conftest.py)
TEST_WORKERS ?= 3
PORT ?= 8080
LAB_ARGS ?=
# make grade: the learner's executed notebooks to grade, and where the scores go
GRADE_NOTEBOOKS ?= notebooks/[0-9]*.ipynb
GRADE_OUT ?= grades

.DEFAULT_GOAL := help
.PHONY: help setup pipeline test lint lab docs bench airflow-ui airflow notebooks eval grade student clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]}: install it or run make PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project (skipped when up to date)

pipeline: setup ## set up, then run the whole pipeline (both Airflow DAGs) for the shipped date
	$(BIN)/sandbox run --date $(AS_OF)

lint: setup ## ruff over the package, tests, DAGs and notebooks
	$(BIN)/ruff check sandbox tests dags notebooks bench

test: lint ## set up, lint, every test and the learner's path (pipeline + every notebook twice, nbval)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests $(PYTEST_ARGS)

notebooks: setup ## re-execute every notebook as a learner would, store its outputs (no widget views)
	for nb in notebooks/[0-9]*.ipynb; do \
		$(BIN)/jupyter nbconvert --to notebook --execute \
			--inplace --ExecutePreprocessor.timeout=900 "$$nb" || exit 1; \
	done
	$(BIN)/python -m sandbox.course.store notebooks/[0-9]*.ipynb

grade: setup ## run every exercise check of GRADE_NOTEBOOKS again; scores in GRADE_OUT/grades.{json,csv}
	$(BIN)/sandbox course grade $(GRADE_NOTEBOOKS) --out $(GRADE_OUT)

student: setup ## write the student copy of the notebooks into student/ (outputs cleared)
	$(BIN)/sandbox course student --out student

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
	rm -rf $(VENV) warehouse .airflow dbt_project/target dbt_project/logs logs bench/out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf *.egg-info .pytest_cache .ruff_cache
