# koppelpunt: the two commands are `make run` and `make test`; everything else is a step of those.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin

# `make run` uses embedded defaults: SQLite in var/, the local broker on 127.0.0.1:9092, the
# development sender keys from dev/senders.dev.yaml (DEV ONLY, printed at start) and, through
# KOPPELPUNT_DEVELOPMENT_MODE, the public development log encryption and /beheer signing keys
# (refused without it).
RUN_ENV := KOPPELPUNT_SENDERS_FILE=$${KOPPELPUNT_SENDERS_FILE:-dev/senders.dev.yaml} \
           KOPPELPUNT_TLS_CERT_FILE=$${KOPPELPUNT_TLS_CERT_FILE:-var/tls/server.crt} \
           KOPPELPUNT_TLS_KEY_FILE=$${KOPPELPUNT_TLS_KEY_FILE:-var/tls/server.key} \
           KOPPELPUNT_TLS_CLIENT_CA_FILE=$${KOPPELPUNT_TLS_CLIENT_CA_FILE:-var/tls/ca.crt} \
           KOPPELPUNT_LOG_JSON=$${KOPPELPUNT_LOG_JSON:-false} \
           KOPPELPUNT_DEVELOPMENT_MODE=$${KOPPELPUNT_DEVELOPMENT_MODE:-true}

LINT_DIRS := $(wildcard src tests bench examples dev)

include kafka/kafka.mk

.PHONY: help install system-deps run test lint format typecheck bench clean

help:
	@echo "make run        set everything up and run the service (API on 127.0.0.1:8000, Kafka on 127.0.0.1:9092)"
	@echo "make test       set everything up and run the whole test suite (real Kafka broker, SQLite)"
	@echo "make install    create $(VENV) with the package and its dev tools"
	@echo "make kafka      start the local Kafka broker alone; make kafka-stop stops it"
	@echo "make lint       ruff check + format check + layer check;  make typecheck  mypy --strict on src/"
	@echo "make bench      run the benchmarks in bench/"

# Java 17 and Maven fetch and run the broker; install them from Debian when missing (needs root).
system-deps:
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven; \
	  else echo "koppelpunt needs Java 17+ and Maven: install them (e.g. apt-get install openjdk-17-jre-headless maven)"; exit 1; fi; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "koppelpunt needs Python 3.11+")'
	@# Headless Chromium for the /beheer browser tests (Playwright drives it; no browser download).
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "note: no chromium (apt-get install chromium): the /beheer browser tests will skip"; fi; }
	@# nginx as the TLS-terminating proxy of tests/api/test_tls_proxy.py (two-way TLS in front).
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; \
	  else echo "note: no nginx (apt-get install nginx-light): the TLS proxy test will skip"; fi; }

$(VENV)/.installed: pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# The official AsyncAPI parser (Node 20+, pinned in tools/asyncapi/package-lock.json) validates
# asyncapi.yaml in the tests. --ignore-scripts: no install-time code (e.g. telemetry) runs.
ASYNCAPI_TOOLS := tools/asyncapi/node_modules/.installed
$(ASYNCAPI_TOOLS): tools/asyncapi/package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; \
	  else echo "koppelpunt's tests need Node.js 18+ and npm (e.g. apt-get install nodejs npm)"; exit 1; fi; }
	npm ci --prefix tools/asyncapi --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

install: $(VENV)/.installed $(ASYNCAPI_TOOLS)

# `make run` needs no Node.js: only the tests use the AsyncAPI parser.
run: $(VENV)/.installed kafka
	@echo "=================================================================="
	@echo " DEVELOPMENT MODE: sender keys from dev/senders.dev.yaml, the log"
	@echo " encryption key and the /beheer signing key are public"
	@echo " (KOPPELPUNT_DEVELOPMENT_MODE=true)"
	@echo "   vo       : dev-vo-key-NOT-FOR-PRODUCTION"
	@echo "   mbo      : dev-mbo-key-NOT-FOR-PRODUCTION"
	@echo "   operator : dev-operator-key-NOT-FOR-PRODUCTION"
	@echo " API  https://127.0.0.1:8000/docs (client certificates: var/tls/, see README)"
	@echo " Kafka 127.0.0.1:9092 (SASL_SSL, SCRAM-SHA-512; CA var/kafka/tls/ca.pem)"
	@echo " Kafka passwords: $(KAFKA_DIR)/credentials. Vendor access:"
	@echo '   eval "$$(make -s kafka-env)"; .venv/bin/koppelpunt access grant NAME --gemeente GM0363'
	@echo "=================================================================="
	@mkdir -p var
	$(BIN)/koppelpunt tls dev-pki --dir var/tls --senders $${KOPPELPUNT_SENDERS_FILE:-dev/senders.dev.yaml}
	$(KAFKA_ENV) $(RUN_ENV) $(BIN)/koppelpunt db upgrade
	$(KAFKA_ENV) $(RUN_ENV) $(BIN)/koppelpunt brp import schemas/examples/woonregister.csv
	$(KAFKA_ENV) $(RUN_ENV) $(BIN)/koppelpunt serve

test: install kafka-jars
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format $(LINT_DIRS)
	$(BIN)/ruff check --fix $(LINT_DIRS)

typecheck: install
	$(BIN)/mypy

# Starts its own broker (free ports) and SQLite in a temp dir (PostgreSQL when
# KOPPELPUNT_DATABASE_URL is set); BENCH_SCALE=0.1 for a quick run. See bench/README.md.
bench: install kafka-jars
	$(BIN)/pip install -q -e '.[bench]'
	$(PY) -m bench.run

clean: kafka-stop
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
