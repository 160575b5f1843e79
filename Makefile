# The two commands of the README: `make run` (set up, then start the app) and
# `make test` (set up with test tools, then run the whole test suite).
# Once set up, `make run` touches no network: setup installs only when pyproject.toml, the setup
# script or the Python changed, and missing models are offered in the window (Download button).
VENV ?= .venv

.PHONY: setup setup-test run test lint bench doctor

setup:
	VENV=$(VENV) scripts/setup.sh

setup-test:
	VENV=$(VENV) scripts/setup.sh --test

# make run [MODEL=REPO_OR_DIR] [ARGS="--input 2"]
run: setup
	$(VENV)/bin/voicevibe $(if $(MODEL),--model $(MODEL)) $(ARGS)

test: setup-test
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# ruff (style and mistakes), mypy (types), import-linter (the layers in pyproject.toml: no import goes up)
lint: setup-test
	$(VENV)/bin/ruff check voicevibe tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

doctor: setup
	$(VENV)/bin/voicevibe doctor $(if $(MODEL),--model $(MODEL)) $(ARGS)

bench: setup-test
	$(VENV)/bin/python bench/run.py $(ARGS)
