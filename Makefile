# The two commands of the README's Quickstart are `make demo` and `make test`; both set
# everything up first (idempotent: re-running setup is skipped until pyproject.toml or requirements.lock changes).
.PHONY: setup demo lint test protos bench lock
VENV := .venv
STAMP := $(VENV)/.installed

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup
	$(VENV)/bin/imagetrust demo

# Lint first (seconds), then the suite: ruff's rules and format check, and mypy, configured
# in pyproject.toml.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/python -m pytest

# After changing a pin in pyproject.toml: re-resolve every transitive dependency.
lock:
	$(VENV)/bin/python scripts/lock.py

protos: setup
	$(VENV)/bin/python scripts/gen_protos.py

bench: setup
	$(VENV)/bin/python -m bench
