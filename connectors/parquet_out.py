"""Parquet out: a Ray Data Datasink that writes a run's datasets under a staging folder, and the
commit that publishes them together with a manifest written last.

Layout of an output folder:
  segments/ documents/ errors/   Parquet files of the latest committed run
  _manifest.json                 that run's manifest (written last: it is the commit record)
  _runs/<run_id>.json            every committed run's manifest
  _staging/<run_id>/             a run in progress (never read by consumers)
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from ray.data.block import Block, BlockAccessor
from ray.data.datasource.datasink import Datasink, WriteResult

STAGING = "_staging"
MANIFEST = "_manifest.json"
RUNS = "_runs"

# Splits one block into named tables, e.g. {"segments": ..., "errors": ...}.
BlockSplitter = Callable[[pa.Table], dict[str, pa.Table]]


def _compression(name: str) -> str | None:
    return None if name == "none" else name


class StagedParquetSink(Datasink[dict[str, int]]):
    """Each write task writes one file per dataset it has rows for; Ray Data buffers blocks up to
    `rows_per_file` first so files are not tiny."""

    def __init__(
        self, staging_dir: Path, split: BlockSplitter, compression: str = "zstd", rows_per_file: int = 100_000
    ):
        self.staging_dir = Path(staging_dir)
        self.split = split
        self.compression = _compression(compression)
        self.rows_per_file = rows_per_file
        self.rows_written: dict[str, int] = {}

    def on_write_start(self, schema: pa.Schema | None = None) -> None:
        self.staging_dir.mkdir(parents=True, exist_ok=True)

    @property
    def min_rows_per_write(self) -> int | None:
        return self.rows_per_file

    def write(self, blocks: Iterable[Block], ctx: Any) -> dict[str, int]:
        outs: dict[str, _DatasetFiles] = {}
        counts: dict[str, int] = {}
        prefix = f"part-{ctx.task_idx:05d}-{uuid.uuid4().hex[:8]}"
        try:
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                for name, sub in self.split(table).items():
                    if sub.num_rows == 0:
                        continue
                    if name not in outs:
                        outs[name] = _DatasetFiles(
                            self.staging_dir / name, prefix, self.compression, self.rows_per_file
                        )
                    outs[name].add(sub)
                    counts[name] = counts.get(name, 0) + sub.num_rows
        finally:
            for out in outs.values():
                out.close()
        return counts

    def on_write_complete(self, write_result: WriteResult[dict[str, int]]) -> None:
        for counts in write_result.write_returns:
            for name, n in counts.items():
                self.rows_written[name] = self.rows_written.get(name, 0) + n


class _DatasetFiles:
    """One dataset's output of a write task: rows are buffered into row groups of about ROW_GROUP_BYTES
    (engine blocks are a few rows each; a row group per block would make readers crawl), and files roll
    over at rows_per_file rows."""

    ROW_GROUP_BYTES = 64 << 20

    def __init__(self, folder: Path, prefix: str, compression: str | None, rows_per_file: int):
        self.folder, self.prefix, self.compression, self.rows_per_file = (
            folder,
            prefix,
            compression,
            rows_per_file,
        )
        self.writer: pq.ParquetWriter | None = None
        self.file_index = 0
        self.rows_in_file = 0
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.pending_bytes = 0

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.pending_bytes += table.nbytes
        if (
            self.pending_bytes >= self.ROW_GROUP_BYTES
            or self.rows_in_file + self.pending_rows >= self.rows_per_file
        ):
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        while table.num_rows:
            if self.writer is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self.folder / f"{self.prefix}-{self.file_index:03d}.parquet"
                self.writer = pq.ParquetWriter(path, table.schema, compression=self.compression)
            room = self.rows_per_file - self.rows_in_file
            head, table = table.slice(0, room), table.slice(room)
            self.writer.write_table(head, row_group_size=head.num_rows)
            self.rows_in_file += head.num_rows
            if self.rows_in_file >= self.rows_per_file:
                self.writer.close()
                self.writer, self.rows_in_file = None, 0
                self.file_index += 1

    def close(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.close()


def ensure_dataset(staging_dir: Path, name: str, schema: pa.Schema, compression: str = "zstd") -> None:
    """A dataset with no rows still gets one empty file, so readers find its schema."""
    folder = staging_dir / name
    if folder.is_dir() and any(folder.glob("*.parquet")):
        return
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(schema.empty_table(), folder / "part-empty.parquet", compression=_compression(compression))


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def publish_run(output_dir: Path, run_id: str, datasets: list[str], manifest: dict[str, Any]) -> None:
    """Swap the staged datasets in with renames (same filesystem), then write the manifest last.

    A crash before the manifest leaves the previous run's manifest in place; readers that go through
    _manifest.json's file lists never see a half-published run.
    """
    staging = output_dir / STAGING / run_id
    trash = output_dir / STAGING / f"{run_id}.replaced"
    trash.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}
    for name in datasets:
        target = output_dir / name
        if target.exists():
            os.replace(target, trash / name)
        os.replace(staging / name, target)
        files[name] = sorted(p.relative_to(output_dir).as_posix() for p in target.glob("*.parquet"))
    manifest = {**manifest, "files": files, "status": "committed"}
    (output_dir / RUNS).mkdir(exist_ok=True)
    _write_json_atomic(output_dir / RUNS / f"{run_id}.json", manifest)
    _write_json_atomic(output_dir / MANIFEST, manifest)
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (output_dir / STAGING).rmdir()
    except OSError:
        pass  # other runs' staging folders remain


def discard_run(output_dir: Path, run_id: str) -> None:
    shutil.rmtree(output_dir / STAGING / run_id, ignore_errors=True)
