# Two entry points for a fresh clone, as root or as a normal user. Each creates the virtual
# environment from the hashed lock file when it is missing or older than the lock.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet
# pytest-xdist workers for `make test`, each with an embedded PostgreSQL of its own. Most of a
# test's time is waiting (subprocesses, daemons' poll intervals), so three workers beat two on
# a 2-core machine (one after the other, other work on it: two 3m19s, three 2m17s, four 2m10s
# with single tests slowing down). A server
# named by SYNCCTL_TEST_DSN is one cluster that every worker would share (the engine's roles
# are cluster-wide), so the suite runs in one process there.
TEST_WORKERS ?= $(if $(SYNCCTL_TEST_DSN),0,3)

.PHONY: demo test check lock clean baseline

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes --no-deps -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

## demo: import a simulated tritonX into a throwaway PostgreSQL and follow its changes
demo: $(STAMP)
	$(BIN)/syncctl demo

## test: the whole test suite (unit, integration, acceptance, migration) on real PostgreSQL
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

## check: linters and the type checker
check: $(STAMP)
	$(BIN)/ruff check syncctl tests bench migrations
	$(BIN)/ruff format --check syncctl tests bench migrations
	$(BIN)/mypy

## lock: re-resolve requirements.lock from pyproject.toml (needs uv)
lock:
	printf 'hatchling>=1.24\neditables>=0.5\n' > $(VENV)/build-requirements.in
	uv pip compile pyproject.toml $(VENV)/build-requirements.in --extra test --generate-hashes \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock

## baseline: copy sql/ into the baseline revision's frozen folder (only while 0001 is unreleased);
## the reference shop (sql/reference_shop/) is not the engine's and not migrated
baseline:
	rm -rf migrations/frozen/0001_baseline
	cp -r sql migrations/frozen/0001_baseline
	rm -rf migrations/frozen/0001_baseline/reference_shop

clean:
	rm -rf $(VENV)
