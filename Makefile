# hideNet: every target creates and reuses the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
CHROMIUM ?= /usr/bin/chromium
NGINX ?= /usr/sbin/nginx
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=

.PHONY: help venv chromium nginx serve demo lint test test-fast bench wheel clean

help:
	@echo "make serve   start the streaming server with the bundled samples (http://$(HOST):$(PORT)/)"
	@echo "make test    install everything (venv, torch CPU, Chromium, nginx), lint (ruff, import contracts), run every test"
	@echo "make lint    ruff and the import contracts only"
	@echo "make demo    encode and decode a bundled sample, print sizes and timings"
	@echo "make bench   run 'hidenet bench' on the bundled samples into bench-out/"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "setuptools>=77" wheel
	# Pin the CPU build of torch first: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test,bench]"
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# Debian's Chromium for the browser tests; nothing downloads a browser of its own.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = "0" ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		fi; \
	fi

# Debian's nginx for the proxy test (tests/server/test_proxy.py) and the bench's serving row; not started as a service.
nginx:
	@if [ ! -x $(NGINX) ]; then \
		if [ "$$(id -u)" = "0" ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
		else \
			sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
		fi; \
	fi

serve: venv
	$(BIN)/hidenet serve --host $(HOST) --port $(PORT)

demo: venv
	$(BIN)/hidenet demo

# ruff (rules in pyproject.toml), then the import contracts: which layer may import which
lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint chromium nginx
	HIDENET_CHROMIUM=$(CHROMIUM) HIDENET_NGINX=$(NGINX) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: lint
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: venv
	$(BIN)/hidenet bench --out bench-out

wheel: venv
	$(BIN)/pip wheel --no-deps --no-build-isolation -w dist .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
