# certdesk — the two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
DEB_PACKAGES := softhsm2 opensc libfaketime libengine-pkcs11-openssl openssl curl nginx \
	chromium fonts-wqy-microhei

.PHONY: run test lint typecheck pytest system-deps bench clean

# What running needs (certdesk and its dependencies), for `make run`; the dev extras (pytest,
# playwright, schemathesis, mypy, ruff…) only for `make test` and the targets under it.
$(RUN_STAMP): pyproject.toml
	@echo "==> Installing certdesk and what running needs into .venv (the first time takes a minute)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP)
	@echo "==> Development tools in .venv (pytest, playwright, schemathesis, mypy, ruff)"
	$(BIN)/python -m pip install --progress-bar off -e '.[dev]'
	touch $(DEV_STAMP)

## Install certdesk, create the demo CA under ./var on first run, serve https://127.0.0.1:8443
run: $(RUN_STAMP)
	@echo "==> certdesk init (demo CA, people and files under ./var), then certdesk serve"
	$(BIN)/certdesk init
	$(BIN)/certdesk serve

## Install what is missing (Debian packages, venv), then lint, type-check and test
test: system-deps $(DEV_STAMP) lint typecheck pytest

system-deps:
	@./scripts/system-deps.sh $(DEB_PACKAGES)

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(DEV_STAMP)
	$(BIN)/mypy src

pytest: $(DEV_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(DEV_STAMP)
	$(BIN)/python bench/issue.py
	$(BIN)/python bench/instructions.py
	$(BIN)/python bench/instructions.py --work page
	$(BIN)/python bench/crl.py
	$(BIN)/python bench/renew.py
	$(BIN)/python bench/portal.py --proxy
	$(BIN)/python bench/stack.py
	$(BIN)/python bench/ocsp.py
	# the scaled shape and the application's own CPU (PostgreSQL: $$CERTDESK_BENCH_PG or the test database)
	$(BIN)/python bench/portal.py --workers 2
	$(BIN)/python bench/renew.py --workers 2 --client raw
	$(BIN)/python bench/app_cpu.py
	$(BIN)/python bench/app_cpu.py --renew --requests 2000 --clients 32

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
