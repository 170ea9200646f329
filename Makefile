# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: what running needs (the package and its own dependencies: about 75 MB), and everything
# the tests and the linters add (S3, DynamoDB, PostgreSQL and MariaDB drivers, pytest, moto, twine, uv, ...).
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
TWINE61 := $(VENV)/tools/twine-6.1
INI ?= development.ini
# pytest-xdist workers for `make test`: each test file runs whole in one of them.
TEST_PROCESSES ?= 2
CHROMIUM := /usr/bin/chromium
NGINX := /usr/sbin/nginx
WRK := /usr/bin/wrk

.PHONY: run test lint unit format clean chromium nginx wrk bench

$(RUN_STAMP): setup.cfg setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install -q -e '.[s3,dynamo,test,lint,postgres,mysql,gunicorn]'
	test -x $(TWINE61)/bin/twine || ($(PYTHON) -m venv $(TWINE61) && $(TWINE61)/bin/python -m pip install -q 'twine==6.1.0')
	touch $(STAMP)

# `make run PORT=8080` listens on 127.0.0.1:8080 (PPC_LISTEN=host:port does the same for any ini).
run: $(RUN_STAMP)
	mkdir -p var
	$(if $(PORT),PPC_LISTEN=127.0.0.1:$(PORT) )$(BIN)/ppc-serve $(INI)

# lint-imports: the package's layers, where pyramid may be imported, and no import cycles (.importlinter).
# cfn-lint: the CloudFormation template (README "Deploying on AWS with CloudFormation").
lint: $(STAMP)
	$(BIN)/ruff format --check pypicloud_lite tests alembic lambda bench
	$(BIN)/ruff check pypicloud_lite tests alembic lambda bench
	$(BIN)/mypy pypicloud_lite lambda/s3_sync.py
	$(BIN)/lint-imports --no-cache --no-logo .importlinter
	$(BIN)/cfn-lint deploy/aws/*.yaml

# Debian packages some tests drive: chromium (the web UI's browser tests) and nginx (the TLS proxy test).
# Without them (and not root) those tests skip with the reason, or fail under PPC_REQUIRE_SERVICES=1.
define apt_install
	@if [ -x $(1) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends $(2) \
		|| (apt-get update -q && apt-get install -y -q --no-install-recommends $(2)) \
		|| echo "$(2) could not be installed: $(3) will skip"; \
	else echo "$(2) is missing and this is not root: $(3) will skip"; fi
endef

chromium:
	$(call apt_install,$(CHROMIUM),chromium,the browser tests)

nginx:
	$(call apt_install,$(NGINX),nginx,the nginx proxy test)

# The benchmarks' load generator (bench/load.py); without it they fall back to a Python client that takes a core.
wrk:
	$(call apt_install,$(WRK),wrk,the wrk load (bench/load.py falls back to its Python client))

test: lint chromium nginx
	PPC_TWINE_LEGACY=$(CURDIR)/$(TWINE61)/bin/twine $(BIN)/python -m pytest -q -ra -n $(TEST_PROCESSES) --dist loadfile tests

# Index pages against pypiserver, devpi, pypicloud, a bare waitress app and nginx (bench/README.md).
# Installs the references into bench/.venvs/ on first use; about 11 minutes on 2 cores, installs included.
bench: $(STAMP) wrk
	$(BIN)/python -m bench.pages $(BENCH_ARGS)

format: $(STAMP)
	$(BIN)/ruff format pypicloud_lite tests alembic lambda bench
	$(BIN)/ruff check --fix pypicloud_lite tests alembic lambda bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info bench/.venvs
