# The two commands a new user needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# tflite-runtime 2.14 (the last release) needs numpy<2 and crashes next to TensorFlow 2.21: it
# gets its own venv, used by runtime workers through `evaluate --runtime-python`.
TFLITE_VENV := .venv-tflite
TFLITE_STAMP := $(TFLITE_VENV)/.installed-stamp

.PHONY: demo test lint zoo clean android-core-test android-core-jars fashion-mnist

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(TFLITE_STAMP):
	test -x $(TFLITE_VENV)/bin/python || $(PYTHON) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/python -m pip install --quiet "tflite-runtime==2.14.0" "numpy<2" pillow
	touch $(TFLITE_STAMP)

# The quickstart's data. As root (a fresh machine, CI), Debian's dataset-fashion-mnist is
# installed when it is missing, as junit4 is below; otherwise, or if apt fails, `tfpipe.data fetch`
# finds a copy elsewhere or downloads it with Keras, and else stops with one line saying where it looked.
FASHION_MNIST_DEB := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
fashion-mnist: $(STAMP)
	@if [ ! -f $(FASHION_MNIST_DEB) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's dataset-fashion-mnist"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } \
		|| echo "apt-get could not install dataset-fashion-mnist; trying the other places"; \
	fi
	$(PY) -m tfpipe.data fetch

demo: $(STAMP) fashion-mnist
	$(PY) -m tfpipe.run --config configs/quickstart.yaml

# One worker per core (pytest-xdist; tests/conftest.py keeps each file, and the files sharing the
# session's tiny run, on one worker). The Android core's JVM tests run first; its golden parity runs
# inside pytest, which has the trained bundles (test_golden.py, test_detection_run.py and
# test_segmentation_run.py call `make android-core-test GOLDEN=...`).
# TFPIPE_REQUIRE_DATA: a test that needs Fashion-MNIST fails instead of skipping (the target installed it)
test: $(STAMP) $(TFLITE_STAMP) fashion-mnist android-core-test
	TFPIPE_REQUIRE_DATA=1 $(PY) -m pytest -q -rs --durations=15 -n auto

# The Android app's pure-Kotlin core (android_demo/core) on the JVM: kotlinc from the npm registry,
# JUnit 4 from Debian. GOLDEN=a.json:b.json adds the golden-vector parity with Python
# (python -m tfpipe.golden); BUNDLES=a/model.json:... checks that the converter's
# model.json files parse.
KOTLIN_VERSION := 2.4.20
KOTLIN_HOME := android_demo/.tools/node_modules/kotlin-compiler
KOTLINC := $(KOTLIN_HOME)/bin/kotlinc
JUNIT_JARS := /usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar
CORE := android_demo/core
CORE_JARS := $(CORE)/build/jvm
CORE_SOURCES := $(shell find $(CORE)/src/main -name '*.kt')
CORE_TESTS := $(shell find $(CORE)/src/test -name '*Test.kt')
GOLDEN ?=
BUNDLES ?=

$(KOTLINC):
	npm install --prefix android_demo/.tools --no-audit --no-fund --silent kotlin-compiler@$(KOTLIN_VERSION)
	chmod +x $(KOTLIN_HOME)/bin/*
	touch $@

/usr/share/java/junit4.jar:
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq junit4 \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq junit4; }

$(CORE_JARS)/core.jar: $(KOTLINC) $(CORE_SOURCES)
	mkdir -p $(CORE_JARS)
	$(KOTLINC) -nowarn -jvm-target 17 $(CORE)/src/main/kotlin -d $@

$(CORE_JARS)/core-tests.jar: $(CORE_JARS)/core.jar /usr/share/java/junit4.jar $(CORE_TESTS)
	$(KOTLINC) -nowarn -jvm-target 17 -cp $(CORE_JARS)/core.jar:$(JUNIT_JARS) $(CORE)/src/test/kotlin -d $@

android-core-jars: $(CORE_JARS)/core-tests.jar

# flock: pytest's workers may build at the same time; one builds, the others wait and reuse it
android-core-test: $(KOTLINC) /usr/share/java/junit4.jar
	mkdir -p $(CORE_JARS)
	flock $(CORE_JARS)/.lock $(MAKE) --no-print-directory android-core-jars
	java -Dtfpipe.golden="$(GOLDEN)" -Dtfpipe.bundles="$(BUNDLES)" -cp $(CORE_JARS)/core.jar:$(CORE_JARS)/core-tests.jar:$(KOTLIN_HOME)/lib/kotlin-stdlib.jar:$(JUNIT_JARS) \
		org.junit.runner.JUnitCore $(patsubst %.kt,dev.tfpipe.core.%,$(notdir $(CORE_TESTS)))
	@test -n "$(GOLDEN)" || echo "golden parity: not run (no GOLDEN=a.json:b.json; make test runs it from its trained bundles)"

# Retrain every configs/zoo/*.yaml (about three hours on 2 cores; finished runs are kept) and rewrite docs/zoo.md from the runs.
zoo: $(STAMP)
	$(PY) scripts/zoo.py run
	$(PY) scripts/zoo.py table

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache
