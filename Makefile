# The two commands of the README's Quickstart are `make demo` and `make test`; both set
# everything up first (idempotent: re-running setup is skipped until pyproject.toml changes).
.PHONY: setup demo test protos bench
VENV := .venv
STAMP := $(VENV)/.installed

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup
	$(VENV)/bin/imagetrust demo

test: setup
	$(VENV)/bin/python -m pytest

protos: setup
	$(VENV)/bin/python scripts/gen_protos.py

bench: setup
	$(VENV)/bin/python -m bench
