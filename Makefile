# The two commands a new user needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# tflite-runtime 2.14 (the last release) needs numpy<2 and crashes next to TensorFlow 2.21: it
# gets its own venv, used by runtime workers through `evaluate --runtime-python`.
TFLITE_VENV := .venv-tflite
TFLITE_STAMP := $(TFLITE_VENV)/.installed-stamp

.PHONY: demo test lint zoo clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(TFLITE_STAMP):
	test -x $(TFLITE_VENV)/bin/python || $(PYTHON) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/python -m pip install --quiet "tflite-runtime==2.14.0" "numpy<2" pillow
	touch $(TFLITE_STAMP)

demo: $(STAMP)
	$(PY) -m tfpipe.run --config configs/quickstart.yaml

# One worker per core (pytest-xdist; tests/conftest.py keeps each file, and the files sharing the
# session's tiny run, on one worker).
test: $(STAMP) $(TFLITE_STAMP)
	$(PY) -m pytest -q -rs --durations=15 -n auto

# Retrain every configs/zoo/*.yaml (about three hours on 2 cores; finished runs are kept) and rewrite docs/zoo.md from the runs.
zoo: $(STAMP)
	$(PY) scripts/zoo.py run
	$(PY) scripts/zoo.py table

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache
