# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run full test lab clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

run: $(VENV)/.installed  ## the whole workbook, quick profile
	$(BIN)/nbprune workbook --profile quick

full: $(VENV)/.installed  ## the whole workbook with the seed's training settings
	$(BIN)/nbprune workbook --profile full

test: $(VENV)/.installed  ## the test suite
	$(BIN)/python -m pytest -q

lab: $(VENV)/.installed  ## JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) *.egg-info
