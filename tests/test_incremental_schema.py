"""An incremental rerun over output written by an earlier pipeline version: unchanged objects' rows are
carried into today's schema (columns added since, such as segments.spans, are null), never dropped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.dataset as pads
import pyarrow.parquet as pq
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.core.schemas import SEGMENTS_SCHEMA
from unitok.pipeline.job import run_job

SAMPLE = Path(__file__).resolve().parent.parent / "sample"


def test_rows_of_an_older_schema_are_carried_into_the_new_one(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(SAMPLE / "field-report.pdf", src / "a.pdf")
    spec = {"mode": "incremental", "source": {"uri": str(src)}, "output": {"uri": str(out)}}
    assert run_job(parse_config(spec)).failures == 0
    before = pads.dataset(out / "segments").to_table().to_pylist()
    # Rewrite the published segments as a version without the spans column wrote them.
    for f in (out / "segments").glob("*.parquet"):
        pq.write_table(pq.read_table(f).drop_columns(["spans"]), f)
    shutil.copy(SAMPLE / "field-report.pdf", src / "b.pdf")
    summary = run_job(parse_config(spec))
    assert summary.failures == 0
    table = pads.dataset(out / "segments").to_table()
    assert table.schema.equals(SEGMENTS_SCHEMA)
    rows = table.to_pylist()
    carried = [r for r in rows if r["source_uri"].endswith("a.pdf")]
    assert [r["markdown"] for r in carried] == [r["markdown"] for r in before] and carried[0]["spans"] is None
    assert any(r["source_uri"].endswith("b.pdf") for r in rows)
