# The two commands a newcomer needs (see README.md): `make demo` and `make test`.
# Each sets itself up on a fresh machine: a bootstrap venv with pinned tox,
# and tox builds every other environment from the pinned requirements.

PYTHON ?= python3
# Resolved now: the PATH change below would make `python3` pyenv's 3.8,
# which the pinned tox does not install on.
BOOTSTRAP_PYTHON := $(shell command -v $(PYTHON))
BOOTSTRAP := .cache/bootstrap
TOX := $(BOOTSTRAP)/bin/tox

# Python 3.8 (the operator pod's) for tox's py38 environment. pyenv installs
# it off PATH; without it, py38-compat still proves the claim statically.
PY38 := $(firstword $(shell python3.8 -c '' 2>/dev/null && command -v python3.8) \
                    $(wildcard $(HOME)/.pyenv/versions/3.8*/bin/python3.8))
ifneq ($(PY38),)
export PATH := $(dir $(PY38)):$(PATH)
TEST_ENVS :=
NO_PY38 :=
else
TEST_ENVS := -e lint,py38-compat,tests,e2e,charmcraft
NO_PY38 := --no-py38
endif

.PHONY: demo test fuzz faults lint integration bench clean

$(TOX):
	$(BOOTSTRAP_PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet --disable-pip-version-check tox==4.67.13

# scripts/make_test.py installs MariaDB when it may (root + apt-get) and, after
# tox, ends with every test that ran, by suite, and what did not run, read
# from the JUnit reports tox.ini's pytest commands write; under CI a skipped
# end-to-end suite fails the run. Every environment runs at once (`tox p -p
# all`), so package installs and the short environments overlap the two long
# ones, unit + Scenario (on every core) and e2e (much of it waiting on MLflow
# and MariaDB). Each environment's output is printed, whole, when it ends.
test: $(TOX)
	@$(BOOTSTRAP_PYTHON) scripts/make_test.py prepare
	@if [ -z "$(PY38)" ]; then echo "NOTE: no Python 3.8 here: tox env py38 (unit tests on 3.8) is not run"; fi
	$(TOX) p -p all --parallel-no-spinner $(TEST_ENVS); \
	    rc=$$?; $(BOOTSTRAP_PYTHON) scripts/make_test.py summary $$rc $(NO_PY38)

# The property tests randomized, with FUZZ_SCALE (default 5) times their
# base examples (`make test` runs 0.2 of them, derandomized); not in CI. A
# failure is kept in .hypothesis/ and tried first on the next `make fuzz`.
# ARGS go to pytest.
fuzz: $(TOX)
	$(TOX) -e fuzz -- $(ARGS)

# Every fault of tests/e2e/test_faults.py on both MLflow versions (make test runs
# them on 2.22.0, and on 3.17.2 only the budget's short form); not in CI.
faults: $(TOX)
	$(TOX) -e faults -- $(ARGS)

demo: $(TOX)
	$(TOX) -e demo -- $(ARGS)

lint: $(TOX)
	$(TOX) -e lint

# pytest-operator on a real Juju 2.9 + MicroK8s; skips, saying why, without one.
integration: $(TOX)
	$(TOX) -e integration

# What a hook costs (README "Hook cost"): 15 runs a hook, targets enforced;
# then big artifacts through the MLflow proxy vs straight to S3 (bench/artifacts.py).
# then K notebooks at once through two servers (bench/load.py: K = 8, 32, 64, both MLflow versions).
# CI: make bench BENCH_ARGS=--short (3 runs, 64 MiB only, K = 8 for 20 s; timing shown, not enforced).
bench: $(TOX)
	$(TOX) -e bench -- $(BENCH_ARGS)

clean:
	rm -rf .cache .tox
