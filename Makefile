# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
REQS   := requirements.txt requirements-dev.txt
STAMP  := $(VENV)/.installed
S_CLI  := .tools/node_modules/.bin/s

.PHONY: demo test lint install venv redis s-cli serve package bench soak clean

# The Python that makes .venv must be 3.10+; a .venv made by another Python (say, a rerun
# with PYTHON=python3.12 after python3.9) is rebuilt, not reused. Without PYTHON= on the
# command line, a working .venv is kept whatever python3 is now.
PYVER    = import sys; print("%d.%d" % sys.version_info[:2])
HAVE_PY := $(shell $(PY) -c '$(PYVER)' 2>/dev/null)
WANT_PY := $(if $(filter command line environment,$(origin PYTHON)),,$(HAVE_PY))
WANT_PY := $(or $(WANT_PY),$(shell $(PYTHON) -c '$(PYVER)' 2>/dev/null))
ifneq ($(HAVE_PY),$(WANT_PY))
.PHONY: $(STAMP)
endif
define MAKE_VENV
if [ "$(HAVE_PY)" != "$(WANT_PY)" ] || [ ! -x $(PY) ]; then \
  case "$(WANT_PY)" in 3.1[0-9]|3.[2-9][0-9]) ;; *) echo "make: reinit needs Python 3.10 or newer, and $(PYTHON) is $(or $(WANT_PY),not a working Python): run make again with PYTHON=python3.12 (or python3.10)" >&2; exit 1;; esac; \
  if [ -e $(VENV) ]; then echo "make: $(VENV) was made by Python $(or $(HAVE_PY),(unknown)) and PYTHON=$(PYTHON) is $(WANT_PY): rebuilding it"; rm -rf $(VENV); fi; \
  $(PYTHON) -m venv $(VENV); \
fi
endef

$(STAMP): $(REQS)
	@$(MAKE_VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $@

venv:
	@$(MAKE_VENV)

install: $(STAMP)

# The idempotency tests and the demo's approval section need a real redis-server; install it where it is missing.
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

# Every test starts its own emulator, redis-server and clock: they run side by side, one
# worker a core (at most 4; `make test PYTEST_WORKERS=0` runs them in one process).
PYTEST_WORKERS ?= auto
test: $(STAMP) redis $(S_CLI) lint typecheck
	$(PY) -m pytest -n $(PYTEST_WORKERS) --maxprocesses 4

# Type hints checked by mypy over reinit/ (its settings: [tool.mypy] in pyproject.toml).
.PHONY: typecheck
typecheck: $(STAMP)
	$(PY) -m mypy

demo: $(STAMP) redis
	$(PY) -m emulator.demo

# The local cloud and a local HTTP trigger: signed curl works as against the deployed one.
# Ports taken? `make serve TRIGGER_PORT=9001 CLOUD_PORT=8766`. CLOUD_FILE is where it writes
# the variables that point a command at it (`python -m reinit invoke --cloud build/local-cloud.env`).
TRIGGER_PORT ?= 9000
CLOUD_PORT ?= 8765
CLOUD_FILE ?= build/local-cloud.env
serve: $(STAMP)
	$(PY) -m emulator.trigger --port $(TRIGGER_PORT) --cloud-port $(CLOUD_PORT) --cloud-file $(CLOUD_FILE)

# The code package FC runs: index.py, reinit/ and the dependencies, built for the runtime's
# platform, in python/ (s.yaml points at build/code). The runtime is stated once, in s.yaml's
# vars.runtime: read from there, and passed as RUNTIME=... by s.yaml's pre-deploy action, so
# `s deploy` always ships a package built for the runtime it deploys.
RUNTIME := $(shell sed -n 's/^  runtime: *\(python3\.[0-9]*\).*/\1/p' s.yaml | head -n 1)
PACKAGE_PYTHON = $(patsubst python%,%,$(RUNTIME))
PACKAGE_DIR ?= build
package: $(STAMP)
	@case "$(PACKAGE_PYTHON)" in 3.10|3.12) ;; *) echo "make package: RUNTIME='$(RUNTIME)' is not python3.10 or python3.12 (s.yaml vars.runtime)" >&2; exit 2;; esac
	rm -rf $(PACKAGE_DIR)/code && mkdir -p $(PACKAGE_DIR)/code/python
	cp index.py $(PACKAGE_DIR)/code/ && cp -r reinit $(PACKAGE_DIR)/code/ && find $(PACKAGE_DIR)/code -name __pycache__ -prune -exec rm -rf {} +
	$(PY) -c "import sys; from packaging.requirements import Requirement; \
	  env = {'python_version': '$(PACKAGE_PYTHON)', 'python_full_version': '$(PACKAGE_PYTHON).0', 'sys_platform': 'linux', 'platform_machine': 'x86_64'}; \
	  lines = [l.split('#')[0].strip() for l in open('requirements.txt')]; \
	  print('\n'.join(str(r).split(';')[0] for r in map(Requirement, filter(None, lines)) if not r.marker or r.marker.evaluate(env)))" \
	  > $(PACKAGE_DIR)/requirements-$(PACKAGE_PYTHON).txt
	$(PY) -m pip install -q --disable-pip-version-check --no-compile --target $(PACKAGE_DIR)/code/python --no-deps \
	  --platform manylinux2014_x86_64 --python-version $(PACKAGE_PYTHON) --implementation cp --only-binary=:all: \
	  -r $(PACKAGE_DIR)/requirements-$(PACKAGE_PYTHON).txt
	cd $(PACKAGE_DIR)/code && rm -f ../code.zip && $(abspath $(PY)) -m zipfile -c ../code.zip index.py reinit python
	@echo "package: $(PACKAGE_DIR)/code ($$(du -sh $(PACKAGE_DIR)/code | cut -f1) unpacked), $(PACKAGE_DIR)/code.zip ($$(du -h $(PACKAGE_DIR)/code.zip | cut -f1)) for python$(PACKAGE_PYTHON)"

# The model-based test at length: at least 100,000 steps (about 15 minutes on 2 cores).
SOAK_EXAMPLES ?= 3500
soak: $(STAMP) redis
	REINIT_MODEL_EXAMPLES=$(SOAK_EXAMPLES) REINIT_MODEL_STEPS=50 REINIT_MODEL_MIN_STEPS=100000 \
	  $(PY) -m pytest tests/test_model.py -q -s -p no:randomly
	REINIT_HANDOFF_EXAMPLES=3500 REINIT_HANDOFF_STEPS=50 REINIT_HANDOFF_MIN_STEPS=100000 $(PY) -m pytest tests/test_model_handoffs.py -q -s -p no:randomly

bench: $(STAMP)
	$(PY) -m bench.coldstart
	$(PY) -m bench.fleet

clean:
	rm -rf $(VENV) .tools build .pytest_cache .ruff_cache .hypothesis
