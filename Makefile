# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run passwords test install install-dev lint typecheck format bench clean autobahn conformance

# Two install sets: `make run` needs only requirements.txt; the test and lint
# tools (pytest, Playwright, ruff, mypy) come with requirements-dev.txt, for the
# targets that use them.
$(BIN)/.venv-made:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	touch $@

$(BIN)/.installed-run: $(BIN)/.venv-made requirements.txt
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed-run requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed-run

install-dev: $(BIN)/.installed-dev

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py runrealtime -b $(HOST) -p $(PORT)

# New demo passwords, printed (the first run's are shown only once).
passwords: install
	$(BIN)/python manage.py demo_setup --reset-passwords

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The Autobahn testsuite (wstest) runs under Python 2.7 only: pyenv's 2.7.18 or
# python2.7 on PATH, installed with `pip install --target` into an ignored folder.
PYTHON27 ?= $(firstword $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/2.7.18/bin/python) $(shell command -v python2.7))
AUTOBAHN := .autobahn

$(AUTOBAHN)/.installed: tests/conformance/requirements-py27.txt
	@test -n "$(PYTHON27)" || { echo "make autobahn needs Python 2.7 (pyenv install 2.7.18)" >&2; exit 1; }
	rm -rf $(AUTOBAHN)/lib
	$(PYTHON27) -m pip install -q --disable-pip-version-check --no-warn-script-location \
		--target $(AUTOBAHN)/lib -r tests/conformance/requirements-py27.txt
	touch $@

autobahn: $(AUTOBAHN)/.installed

# Autobahn's fuzzing client against runrealtime: an echo route (cases 1-7, 9),
# then /ws/<client_id>/ for ghost connections. ~10 minutes; README "Reliability".
conformance: install-dev autobahn
	AUTOBAHN_PYTHON=$(PYTHON27) $(BIN)/python -m tests.conformance.run $(CONFORMANCE_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/mypy

typecheck: install-dev
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-dev
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(AUTOBAHN) .pytest_cache .ruff_cache .mypy_cache
