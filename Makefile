# Two commands for a new machine (Postgres and RabbitMQ on localhost):
#   make run   installs what is missing and runs the whole suite in the foreground (Ctrl-C stops it)
#   make test  installs what is missing and runs every test
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PYTEST_WORKERS ?= 2

.PHONY: install run test bench lint

$(UV):
	python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

install: $(UV)
	$(UV) sync --all-packages --frozen

run: install
	$(UV) run corral-suite run

test: install
	$(UV) run pytest -n $(PYTEST_WORKERS) --dist loadgroup

bench: install
	$(UV) run python bench/run_all.py

lint: install
	$(UV) run --with ruff ruff check .
