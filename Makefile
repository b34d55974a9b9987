# The two commands a newcomer needs (see README.md): `make demo` and `make test`.
# Each sets itself up on a fresh machine: a bootstrap venv with pinned tox,
# and tox builds every other environment from the pinned requirements.

PYTHON ?= python3
BOOTSTRAP := .cache/bootstrap
TOX := $(BOOTSTRAP)/bin/tox

.PHONY: demo test lint bench integration clean

$(TOX):
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet --disable-pip-version-check tox==4.67.13

test: $(TOX)
	$(TOX)

demo: $(TOX)
	$(TOX) -e demo -- $(ARGS)

lint: $(TOX)
	$(TOX) -e lint

clean:
	rm -rf .cache .tox
