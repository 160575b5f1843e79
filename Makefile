# The two commands of the README: `make run` (set up, then start the app) and
# `make test` (set up with test tools, then run the whole test suite).
VENV ?= .venv

.PHONY: setup setup-test run test bench

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

# make run [MODEL=REPO_OR_DIR] [ARGS="--input 2"]
run: setup
	$(VENV)/bin/voicevibe models download $(if $(MODEL),--model $(MODEL))
	$(VENV)/bin/voicevibe $(if $(MODEL),--model $(MODEL)) $(ARGS)

test: setup-test
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: setup-test
	$(VENV)/bin/python bench/run.py $(ARGS)
