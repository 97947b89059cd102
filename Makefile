# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JUPYTER_HOOK := jupyter-config/jupyter_server_config.d/nbprune.json

.PHONY: run full test test-fast lint lab clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip's editable install leaves out data files, so the Jupyter pre-save hook's config is copied by hand.
$(VENV)/.installed: pyproject.toml $(JUPYTER_HOOK) | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	mkdir -p $(VENV)/etc/jupyter/jupyter_server_config.d
	cp $(JUPYTER_HOOK) $(VENV)/etc/jupyter/jupyter_server_config.d/nbprune.json
	touch $@

run: $(VENV)/.installed  ## the whole workbook, quick profile
	$(BIN)/nbprune workbook --profile quick

full: $(VENV)/.installed  ## the whole workbook with the reference workflow's training settings
	$(BIN)/nbprune workbook --profile full

test: lint  ## the lint, then the whole test suite (real-MNIST tests run when NBPRUNE_DATA_ROOT is set)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: $(VENV)/.installed  ## the edit-test loop: no real data, no end-to-end runs (under a minute)
	NBPRUNE_DATA_ROOT= $(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile -p no:cacheprovider

lint: $(VENV)/.installed  ## ruff, as pyproject.toml configures it: style slips and unused or undefined names
	$(BIN)/ruff check nbprune tests benchmarks

lab: $(VENV)/.installed  ## JupyterLab on the notebooks (root or not); saving never stores outputs in them
	$(BIN)/python -m nbprune.course.lab

clean:
	rm -rf $(VENV) *.egg-info
