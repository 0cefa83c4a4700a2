"""Parquet files of a run's datasets, written from any process: a writer turns a stream of result tables
into one file set per dataset (row groups of a useful size, files rolled over at a row count). Free of
Ray: the local driver calls it directly, and the Ray driver wraps it in a thin Datasink.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Splits one result table into named tables, e.g. {"segments": ..., "errors": ...}.
BlockSplitter = Callable[[pa.Table], dict[str, pa.Table]]


def compression_codec(name: str) -> str | None:
    return None if name == "none" else name


class StagedWriter:
    """Writes result tables under a run's staging folder: one file set per dataset for each writer task."""

    def __init__(
        self, staging_dir: Path, split: BlockSplitter, compression: str = "zstd", rows_per_file: int = 100_000
    ):
        self.staging_dir = Path(staging_dir)
        self.split = split
        self.compression = compression_codec(compression)
        self.rows_per_file = rows_per_file

    def write(self, tables: Iterable[pa.Table], task_idx: int = 0) -> dict[str, int]:
        """Rows written per dataset. task_idx and a random suffix keep concurrent writers' files apart."""
        outs: dict[str, _DatasetFiles] = {}
        counts: dict[str, int] = {}
        prefix = f"part-{task_idx:05d}-{uuid.uuid4().hex[:8]}"
        try:
            for table in tables:
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
