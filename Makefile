# Habits of the onetoone project. `make help` lists them.
PYTHON ?= python3
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## Install onetoone with every extra and the dev tools (editable)
	$(PYTHON) -m pip install -e '.[dev]'

demo: ## Generate the demo company and run every step on it (in ./onetoone-demo)
	rm -rf onetoone-demo && onetoone demo --workspace onetoone-demo

test: ## Run the fast tests (under a minute; the ones marked slow are left out)
	$(PYTHON) -m pytest -m "not slow"

test-all: ## Run the whole test suite, slow tests too (the README's test command, ~3 min)
	$(PYTHON) -m pytest

lint: ## ruff (lint and format check) and mypy
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m ruff format --check src
	$(PYTHON) -m mypy

docs: ## Regenerate docs/data-model.md from the schema
	$(PYTHON) -c "from onetoone.schema import render_markdown; open('docs/data-model.md','w').write(render_markdown())"

bench: ## Run the benchmarks (minutes; prints figures for docs/benchmarks.md)
	$(PYTHON) benchmarks/ingest.py
	$(PYTHON) benchmarks/btyd.py

pipeline: ## Time every command a user runs on the demo company at 1 M people (~15 min)
	$(PYTHON) benchmarks/pipeline.py --customers 1000000

.PHONY: help install demo test test-all lint docs bench pipeline
