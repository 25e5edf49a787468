# certdesk — the two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEB_PACKAGES := softhsm2 opensc libfaketime libengine-pkcs11-openssl openssl curl nginx \
	chromium fonts-wqy-microhei

.PHONY: run test lint typecheck pytest system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Install certdesk, create the demo CA under ./var on first run, serve https://127.0.0.1:8443
run: $(STAMP)
	$(BIN)/certdesk init
	$(BIN)/certdesk serve

## Install what is missing (Debian packages, venv), then lint, type-check and test
test: system-deps $(STAMP) lint typecheck pytest

system-deps:
	@./scripts/system-deps.sh $(DEB_PACKAGES)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy src

pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/issue.py
	$(BIN)/python bench/crl.py
	$(BIN)/python bench/renew.py
	$(BIN)/python bench/portal.py --proxy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
