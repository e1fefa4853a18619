# The two commands a new user needs: `make serve` (port 3003) and `make test`.
# Both create .venv in the project root and install into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3003

.PHONY: install serve test build

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever the dependency lists change.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements/serve.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/serve.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(BIN)/bentoml serve . --port $(PORT)

test: install
	$(BIN)/python -m pytest

build: install
	$(BIN)/bentoml build .
