# Aegis: every target is a thin call to uv. `make help` lists them.
SHELL := /bin/bash
PACKAGES := aegis-runtime-core aegis-runtime-adapters-openai aegis-runtime-adapters-gemini aegis-runtime-adapters-anthropic aegis-runtime-proxy
UV ?= $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
PYTEST_ARGS ?=

.DEFAULT_GOAL := all
.PHONY: all install uv lint typecheck test system-deps bench bench-peers build lock format help demo demo

all: lint test ## lint, type-check and test: what CI runs

uv: ## install uv when it is missing
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --break-system-packages uv

install: uv ## install every package and the dev tools into .venv
	$(UV) sync --frozen --all-packages --all-groups

lint: install ## ruff (format and lint), mypy --strict, and the namespace guard
	$(UV) run ruff format --check
	$(UV) run ruff check
	$(UV) run mypy
	@! find packages -path '*/src/aegis/__init__.py' -o -path '*/src/aegis/adapters/__init__.py' | grep . \
		|| (echo 'aegis/ and aegis/adapters/ must stay PEP 420 namespaces' && exit 1)

typecheck: install ## mypy --strict only
	$(UV) run mypy

test: install system-deps ## install what the tests need, then run the whole suite
	$(UV) run pytest $(PYTEST_ARGS)

system-deps: ## Debian's Chromium (dashboard), PostgreSQL (store), jq (README script), nodejs and npm (client matrix), the openai npm package
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v jq >/dev/null 2>&1 || missing="$$missing jq"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "missing:$$missing: run 'sudo apt-get install$$missing' (the tests need them)"; exit 1; \
		fi; \
	fi
	@# The openai Node SDK for tests/clients, at the version package-lock.json pins.
	@cd tests/clients/node && { node installed.cjs || npm ci --no-audit --no-fund --loglevel=error; }

demo: install ## the interactive terminal demo (no API key, no network)
	$(UV) run python -m demo

bench: install ## run the benchmarks under bench/ and print their tables
	$(UV) run python -m bench

bench-peers: install ## the proxy beside LiteLLM proxy and the Portkey gateway (installs both outside the repo; not CI)
	$(UV) run python -m bench._peers

build: uv ## build a wheel and an sdist of every package into dist/
	rm -rf dist
	for p in $(PACKAGES); do $(UV) build --package $$p --out-dir dist || exit 1; done

lock: uv ## re-resolve uv.lock after a pyproject change
	$(UV) lock

format: install ## rewrite files with ruff
	$(UV) run ruff format
	$(UV) run ruff check --fix --fix-only

help: ## this list
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
