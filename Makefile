# unitok: `make demo` converts a sample folder; `make test` runs the test suite. Both install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
CORPUS := $(SHARED)/corpus
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml infra/install-system-deps.sh | cksum | cut -d' ' -f1)

export RAY_AUTH_MODE ?= disabled
export OMP_THREAD_LIMIT ?= 1

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP):
	bash infra/install-system-deps.sh
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	@src=$$( [ -d "$(CORPUS)" ] && echo "$(CORPUS)" || echo sample ); \
	echo "converting $$src with configs/demo.yaml"; \
	$(BIN)/unitok run configs/demo.yaml --source "$$src" --output out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[dev,bench]"
	$(BIN)/python bench/bench_pdf.py --corpus "$(CORPUS)"

clean:
	rm -rf out .pytest_cache
