"""What an operator sees of the engines: per engine the segments, calls, batch fill (segments per call over
the batch size configured for them) and busy fraction (time inside its calls over the workers' time), and
the segments converted on each node, in the summary (`--json`), the log and the run report."""

from __future__ import annotations

import re
import shutil
import socket

import pytest
from conftest import REPO
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.job import run_job


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):  # two text pages each
        shutil.copy(REPO / "sample" / "field-report.pdf", src / f"report-{i}.pdf")
    shutil.copy(REPO / "sample" / "signup-sheet.png", src)  # one image for OCR
    return src


def job(src, out, executor: str, batch: int):
    runtime = {"executor": executor, "max_workers": 2, "engine_batch_size": batch}
    return parse_config({"source": {"uri": str(src)}, "output": {"uri": str(out)}, "runtime": runtime})


def test_the_summary_counts_each_engines_calls_and_batch_fill(source, tmp_path):
    summary = run_job(job(source, tmp_path / "out", "local", 2))
    engines = summary.engines
    assert set(engines) == {"pdf_text", "tesseract"}
    # Each PDF's two pages are one call of a batch of 2; the image is one call of 1 of its batch of 2.
    assert engines["pdf_text"] == {**engines["pdf_text"], "segments": 6, "calls": 3, "batch_fill": 1.0}
    assert engines["tesseract"] == {**engines["tesseract"], "segments": 1, "calls": 1, "batch_fill": 0.5}
    assert all(0 < e["busy_fraction"] <= 1 for e in engines.values())
    assert summary.nodes == {socket.gethostname(): 7}
    assert {"engines", "nodes"} <= set(summary.as_dict())
    page = (tmp_path / "out" / "reports" / f"{summary.run_id}.html").read_text()
    assert re.search(r"<td>pdf_text</td><td>6</td><td>3</td><td>1.0</td>", page)


def test_a_larger_batch_size_shows_as_a_lower_fill(source, tmp_path):
    summary = run_job(job(source, tmp_path / "out", "local", 8))
    # One object's pages fill a batch of 8 at a quarter: batches hold one object's segments today.
    assert summary.engines["pdf_text"]["batch_fill"] == 0.25


def test_on_ray_the_segments_are_counted_by_node(source, tmp_path, ray_local):
    summary = run_job(job(source, tmp_path / "out", "ray", 2))
    (node,) = summary.nodes
    assert node == ray_local.get_runtime_context().get_node_id() and summary.nodes[node] == 7
    assert summary.engines["pdf_text"]["calls"] == 3
