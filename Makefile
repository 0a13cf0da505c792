# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
REQS   := requirements.txt requirements-dev.txt
STAMP  := $(VENV)/.installed
S_CLI  := .tools/node_modules/.bin/s

.PHONY: demo test lint install redis s-cli serve package bench clean

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $@

install: $(STAMP)

# The idempotency tests need a real redis-server; install it where it is missing.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "make: installing redis-server (Debian package)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
	  $$SUDO apt-get update -qq >/dev/null && $$SUDO apt-get install -y -qq redis-server >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { echo "make: redis-server is missing and could not be installed" >&2; exit 1; }

# Serverless Devs, for the test that resolves s.yaml as `s deploy` would (offline `s preview`).
$(S_CLI):
	npm install --prefix .tools --no-audit --no-fund --loglevel=error @serverless-devs/s@3

s-cli: $(S_CLI)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) redis $(S_CLI) lint
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m emulator.demo

# The local cloud and a local HTTP trigger: signed curl works as against the deployed one.
serve: $(STAMP)
	$(PY) -m emulator.trigger

clean:
	rm -rf $(VENV) .tools build .pytest_cache .ruff_cache .hypothesis
