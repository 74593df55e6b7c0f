# mmkd developer commands. `make demo` and `make test` install what they need first.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint docs clean bench

install:
	@bash tools/install/install.sh

demo: install
	$(PY) tools/demo/digits_kd_demo.py

# Runs the whole suite; pytest's exit code 5 ("no tests collected") is a failure here.
# Two pytest-xdist workers of one thread each (a 2-core machine; MMKD_TEST_WORKERS=0 runs
# it in one process); each test file stays on one worker except those tests/conftest.py
# lets spread (their module fixtures would otherwise run twice).
MMKD_TEST_WORKERS ?= 2
test: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest tests -q -p no:cacheprovider \
	  -n $(MMKD_TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-fast: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest tests -q -p no:cacheprovider \
	  -n $(MMKD_TEST_WORKERS) --dist loadgroup -m "not slow" $(PYTEST_ARGS)

# mmkd vs a hand-written loop vs torchdistill (tools/benchmark/peer_speed.py, about 6 min on
# a 2-core CPU); --no-deps keeps torch/torchvision/numpy as installed.
bench: install
	$(PY) -m pip install --no-deps -r requirements/benchmark.txt
	OMP_NUM_THREADS=1 $(PY) tools/benchmark/peer_speed.py --iters 20 --warmup 3 --batch-size 8 --out docs/benchmarks

lint: install
	$(PY) -m ruff check mmkd tools tests configs

# HTML docs in docs/_build/html, offline; any Sphinx warning (broken link, bad docstring) fails.
# -E: re-read every page, so docstring warnings show even when only the code changed.
docs: install
	$(PY) -m sphinx -b html -E -W --keep-going -q docs docs/_build/html -d docs/_build/doctrees

clean:
	rm -rf work_dirs .pytest_cache
