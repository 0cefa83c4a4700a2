"""Same input, same output: the local driver (in-process and on a process pool), Ray Data and the
function behind Serve give every segment the same text, whatever BLAS thread count the caller's
environment asks for. Every modality: a text PDF, a scanned PDF, an image, a deck, audio and video."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, every_modality
from phi4_tiny import tiny_engine_config
from unitok.connectors.output import read_table
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.job import run_job

if not shutil.which("ffmpeg"):
    pytest.skip("ffmpeg is needed", allow_module_level=True)

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_THREAD_LIMIT")
FIELDS = ("segment_kind", "engine", "model_id", "prompt_id", "markdown", "spans", "warnings", "page_number",
          "time_start_s", "time_end_s")  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return every_modality(tmp_path_factory.mktemp("agree"))


def run(source, out, monkeypatch, executor: str, workers: int, blas_threads: int, **extra):
    for var in THREAD_VARS:  # the caller's environment, inherited by pool workers
        monkeypatch.setenv(var, str(blas_threads))
    runtime = {"executor": executor, "max_workers": workers, "engine_batch_size": 4}
    spec = {"source": {"uri": str(source)}, "output": {"uri": str(out)}, "runtime": runtime, **extra}
    summary = run_job(parse_config(spec))
    assert summary.committed and summary.executor == executor
    segs = {
        (r["source_uri"].rsplit("/", 1)[-1], r["segment_index"]): {k: r[k] for k in FIELDS}
        for r in read_table(out, "segments").to_pylist()
    }
    docs = {
        d["source_uri"].rsplit("/", 1)[-1]: d["markdown"] for d in read_table(out, "documents").to_pylist()
    }
    return segs, docs


def test_every_driver_gives_the_same_segments_under_any_blas_thread_count(
    source, ray_local, tmp_path, monkeypatch
):
    runs = {
        "local in-process, 2 BLAS threads": run(source, tmp_path / "a", monkeypatch, "local", 1, 2),
        "local pool of 2, 1 BLAS thread": run(source, tmp_path / "b", monkeypatch, "local", 2, 1),
        "local pool of 2, 2 BLAS threads": run(source, tmp_path / "c", monkeypatch, "local", 2, 2),
        "ray, 2 actors": run(source, tmp_path / "d", monkeypatch, "ray", 2, 2),
    }
    (ref_name, (ref_segs, ref_docs)), *others = runs.items()
    kinds = {v["segment_kind"] for v in ref_segs.values()}
    assert {"page", "image", "slide", "audio_window", "video_frames"} <= kinds, kinds
    engines = {v["engine"] for v in ref_segs.values()}
    assert {"pdf_text", "tesseract", "slide_text", "whisper"} <= engines, engines
    assert any("water filters" in (v["markdown"] or "").lower() for v in ref_segs.values())
    for name, (segs, docs) in others:
        assert segs.keys() == ref_segs.keys(), name
        for key, ref in ref_segs.items():
            assert segs[key] == ref, f"{name} differs from {ref_name} at {key}"
        assert docs == ref_docs, name


SERVE_SIDE = """
import json, sys
from pathlib import Path
from unitok.actors.registry import engine_options
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.stages.convert import EnginePool
from unitok.pipeline.stages.convert_file import convert_file

source = Path(sys.argv[1])
cfg = parse_config({"source": {"uri": str(source)}, "output": {"uri": "/unused"},
                    "runtime": {"engine_batch_size": 4}})
engines = EnginePool(engine_options(cfg))
paths = sorted(source.iterdir())
print(json.dumps({p.name: convert_file(p, p.name, cfg, engines, "serve-test") for p in paths}))
"""


def test_serve_conversion_gives_the_same_segments_as_a_job(source, tmp_path, monkeypatch):
    """The function a Serve replica runs per upload (convert_file, with its own EnginePool, in a process
    of its own as a replica is) against a job run; the HTTP layer around it is tested in test_serve.py."""
    segs, _ = run(source, tmp_path / "job", monkeypatch, "local", 2, 2)
    out = subprocess.run([sys.executable, "-c", SERVE_SIDE, str(source)], capture_output=True, text=True,
                         check=True)  # fmt: skip
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for name, result in results.items():
        assert result["document"] and not result["errors"], name
        for row in result["segments"]:
            got = {k: row[k] for k in FIELDS}
            assert got == json.loads(json.dumps(segs[(name, row["segment_index"])])), (name, row)


def test_phi4_batches_are_the_same_on_every_driver(source, ray_local, tiny_model, tmp_path, monkeypatch):
    """A padded model's output depends on which segments share its batch: the tiny random-weight Phi-4
    must give every segment the same text from the local driver, from Ray (which once mixed objects in
    one batch) and from Beam's RunInference."""
    scans = tmp_path / "scans"
    scans.mkdir()
    for i in range(3):
        shutil.copy(source / "signup-sheet.png", scans / f"sheet{i}.png")
    shutil.copy(source / "scanned-memo.pdf", scans)
    extra = {"engine": tiny_engine_config(tiny_model)}
    local, _ = run(scans, tmp_path / "l", monkeypatch, "local", 1, 2, **extra)
    ray, _ = run(scans, tmp_path / "r", monkeypatch, "ray", 1, 2, **extra)
    assert {v["engine"] for v in local.values()} == {"phi4"}
    assert local == ray
    pytest.importorskip("apache_beam")
    beam, _ = run(scans, tmp_path / "b", monkeypatch, "beam", 2, 2, **extra)
    assert beam == local


def test_the_worker_contract_pins_blas_that_was_loaded_with_more_threads():
    code = (
        "import numpy, threadpoolctl\n"
        "from unitok.pipeline.core.workerenv import pin_native_threads\n"
        "before = {i['internal_api']: i['num_threads'] for i in threadpoolctl.threadpool_info()}\n"
        "pin_native_threads()\n"
        "after = {i['internal_api']: i['num_threads'] for i in threadpoolctl.threadpool_info()}\n"
        "print(before, after)\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    before, after = out.stdout.strip().split("} {")
    assert "'openblas': 2" in before and "'openblas': 1" in after, out.stdout


def test_a_long_pdf_spread_over_the_pool_gives_the_rows_of_one_worker(tmp_path, monkeypatch):
    from handmade import long_pdf
    from unitok.pipeline.stages.per_object import SPREAD_MIN_PAGES, page_parts

    src = tmp_path / "src"
    src.mkdir()
    long_pdf(src / "log.pdf", SPREAD_MIN_PAGES + 11)
    shutil.copy(REPO / "sample" / "field-report.pdf", src / "short.pdf")
    spec = {"source": {"uri": str(src)}, "output": {"uri": "/unused"}, "runtime": {"max_workers": 2}}
    cfg = parse_config(spec)
    listed = {"uri": (src / "log.pdf").as_uri(), "key": "log.pdf", "size": (src / "log.pdf").stat().st_size}
    assert len(page_parts(listed, cfg, 2)) >= 2  # spread over the pool
    assert (
        page_parts(listed, cfg, 1) == []
        and page_parts({**listed, "uri": (src / "short.pdf").as_uri(), "key": "short.pdf"}, cfg, 2) == []
    )
    out = {}
    for workers in (1, 2):
        out[workers] = run(src, tmp_path / f"out{workers}", monkeypatch, "local", workers, 1,
                           chunking={"max_tokens": 64})  # fmt: skip
        chunks = read_table(tmp_path / f"out{workers}", "chunks")
        chunks = chunks.sort_by([("source_uri", "ascending"), ("chunk_index", "ascending")])
        out[workers] += (chunks.drop_columns(["run_id"]).to_pylist(),)
    (segs1, docs1, chunks1), (segs2, docs2, chunks2) = out[1], out[2]
    assert sum(1 for s, _ in segs1 if s == "log.pdf") == SPREAD_MIN_PAGES + 11
    assert segs2 == segs1 and docs2 == docs1 and chunks2 == chunks1
    assert "| Pump | Hours |" in docs1["log.pdf"] and "Page 75 line 8" in docs1["log.pdf"]
