# Two commands for a new machine (Postgres and RabbitMQ on localhost):
#   make run   installs what is missing and runs the whole suite in the foreground (Ctrl-C stops it)
#   make test  installs what is missing and runs every test
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PYTEST_WORKERS ?= 2

PROMTOOL := .run/tools/promtool

.PHONY: install tesseract run test bench lint

$(UV):
	python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

install: $(UV) tesseract
	$(UV) sync --all-packages --frozen

# import-svc reads business cards with tesseract, a system program (pytesseract runs it), so it is
# installed here when missing, as the Dockerfile does for import-svc's image (APT_PACKAGES).
tesseract:
	@command -v tesseract >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  if command -v apt-get >/dev/null 2>&1; then \
	    $$sudo apt-get update -qq && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      tesseract-ocr tesseract-ocr-eng >/dev/null; \
	  elif command -v brew >/dev/null 2>&1; then brew install tesseract; \
	  else echo "business-card OCR needs tesseract: install tesseract-ocr with the system's package manager" >&2; \
	    exit 1; fi; }
	@tesseract --version 2>&1 | head -1

run: install
	$(UV) run corral-suite run

test: install $(PROMTOOL)
	$(UV) run pytest -n $(PYTEST_WORKERS) --dist loadgroup

# tests/deploy checks the alert rules with promtool. Debian ships promtool only inside the Prometheus
# server package, whose installation would start a server: the binary alone is taken out of the package.
# Without apt (or offline) the rule checks say why they did not run; CI (Debian) always has them.
$(PROMTOOL):
	@mkdir -p $(@D)
	@if command -v promtool >/dev/null 2>&1; then ln -sf "$$(command -v promtool)" $@; \
	elif command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then \
	  tmp=$$(mktemp -d) && cd $$tmp && \
	  { apt-get download -qq prometheus 2>/dev/null || \
	    { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); $$sudo apt-get update -qq && apt-get download -qq prometheus; }; } && \
	  dpkg-deb -x prometheus_*.deb unpacked && cp unpacked/usr/bin/promtool $(CURDIR)/$@; \
	  cd $(CURDIR); rm -rf $$tmp; \
	else echo "promtool: no apt-get here; the alert rules are not checked by promtool" >&2; fi
	@test ! -x $@ || $@ --version 2>&1 | head -1

bench: install
	$(UV) run python bench/run_all.py

lint: install
	$(UV) run --with ruff ruff check .
