# mmkd developer commands. `make demo` and `make test` install what they need first.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint docs clean

install:
	@bash tools/install/install.sh

demo: install
	$(PY) tools/demo/digits_kd_demo.py

# Runs the whole suite; pytest's exit code 5 ("no tests collected") is a failure here.
test: install
	$(PY) -m pytest tests -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest tests -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check mmkd tools tests configs

# HTML docs in docs/_build/html, offline; any Sphinx warning (broken link, bad docstring) fails.
# -E: re-read every page, so docstring warnings show even when only the code changed.
docs: install
	$(PY) -m sphinx -b html -E -W --keep-going -q docs docs/_build/html -d docs/_build/doctrees

clean:
	rm -rf work_dirs .pytest_cache
