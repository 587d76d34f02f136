# Two commands for a fresh machine:  `make run` (web chat over seeds/)  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test browser bench bench-speed clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned: 2.13.0 is the CPU build; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/python app.py

# Headless Chromium for the browser tests, from Debian's packages (Playwright's own browser download
# cannot work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

test: $(VENV)/.installed browser
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/reader.py
	$(MAKE) bench-speed

clean:
	rm -rf $(VENV) index/gen-* index/CURRENT index/.lock index/catalog*.sqlite* index/segments

# The pipeline baseline needs transformers 5.2 (5.3+ dropped the question-answering pipeline): own venv.
.venv-bench/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet --upgrade pip
	.venv-bench/bin/pip install --quiet torch==2.13.0
	.venv-bench/bin/pip install --quiet 'transformers==5.2.0' -e .
	touch $@

bench-speed: .venv-bench/.installed
	.venv-bench/bin/python bench/speed.py
