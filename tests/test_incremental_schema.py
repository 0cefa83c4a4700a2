"""An incremental rerun over tables written by an earlier pipeline version or compacted by another Delta
writer: columns added since are added to the table (old rows read null), and files that hold several
objects, or that another writer named, keep their unchanged objects' rows."""

from __future__ import annotations

import shutil
from pathlib import Path

from deltalake import DeltaTable, write_deltalake
from unitok.connectors.output import read_table
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.core.schemas import SEGMENTS_SCHEMA
from unitok.pipeline.job import run_job

SAMPLE = Path(__file__).resolve().parent.parent / "sample"


def test_an_older_schema_and_foreign_files_keep_every_unchanged_row(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(SAMPLE / "field-report.pdf", src / "a.pdf")
    shutil.copy(SAMPLE / "field-report.pdf", src / "b.pdf")
    spec = {"mode": "incremental", "source": {"uri": str(src)}, "output": {"uri": str(out)}}
    assert run_job(parse_config(spec)).failures == 0
    before = read_table(out, "segments")
    # The segments table as an earlier version would have left it: no spans column, and both objects'
    # rows in one file named by another writer.
    shutil.rmtree(out / "segments")
    write_deltalake(str(out / "segments"), before.drop_columns(["spans"]),
                    configuration={"delta.enableChangeDataFeed": "true"})  # fmt: skip
    assert len(DeltaTable(str(out / "segments")).file_uris()) == 1

    shutil.copy(SAMPLE / "scanned-memo.pdf", src / "b.pdf")  # b changes; a does not
    shutil.copy(SAMPLE / "field-report.pdf", src / "c.pdf")  # c is new
    summary = run_job(parse_config(spec))
    assert summary.failures == 0 and summary.converted_objects == 2
    table = read_table(out, "segments")
    assert table.schema.equals(SEGMENTS_SCHEMA) or set(table.column_names) == set(SEGMENTS_SCHEMA.names)
    rows: dict[str, list[dict]] = {}
    for r in sorted(table.to_pylist(), key=lambda r: r["segment_index"]):
        rows.setdefault(r["source_uri"].rsplit("/", 1)[-1], []).append(r)
    old_a = sorted((r for r in before.to_pylist() if r["source_uri"].endswith("a.pdf")),
                   key=lambda r: r["segment_index"])  # fmt: skip
    # a's rows kept from the rewritten file, without the column they never had
    assert [r["markdown"] for r in rows["a.pdf"]] == [r["markdown"] for r in old_a]
    assert all(r["spans"] is None for r in rows["a.pdf"])
    assert {r["engine"] for r in rows["b.pdf"]} == {"tesseract"}  # b converted again: now a scan
    assert [r["markdown"] for r in rows["c.pdf"]] == [r["markdown"] for r in old_a]
    assert sorted(rows) == ["a.pdf", "b.pdf", "c.pdf"]
    keys = [(r["doc_id"], r["segment_index"]) for r in table.to_pylist()]
    assert len(keys) == len(set(keys))
