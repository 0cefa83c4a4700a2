"""Data files of the output tables, written where the tables live (the output folder or the S3 prefix) by
whichever process converted the rows, on whichever machine: the driver gets back only what a Delta add
action needs (path, size, statistics). The commit (connectors.output) turns that metadata into actions.

One set of files per object and table, named `<key>-<run_id>-<n>.parquet` (key: a hash of the source
URI), so a commit replaces exactly an object's files, and a task retried for the same object overwrites
its own files instead of leaving a second copy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# One boto3 client per process and endpoint (clients do not pickle). Keyed by pid too: a worker forked from
# a driver that has used a client must not share its connections (seen: BadDigest on a put).
_clients: dict[tuple[int, str], Any] = {}


STAGING_FOLDER = "_staging"  # per run: staged engine results (and a local output's driver files)
_LONG_TEXT = {"markdown", "text", "message"}


def _stat_columns(schema: pa.Schema) -> list[str]:
    """Columns whose Parquet min/max statistics readers can prune with (ids, URIs, numbers, kinds);
    a page's whole Markdown or a list column gives none worth its cost (a quarter of a small file's
    write time)."""
    return [f.name for f in schema if f.name not in _LONG_TEXT and not pa.types.is_nested(f.type)]


def compression_codec(name: str) -> str | None:
    return None if name == "none" else name


def object_key(source_uri: str) -> str:
    """The part of a data file's name that says whose rows it holds."""
    return hashlib.sha256(source_uri.encode()).hexdigest()[:20]


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows in the table's schema (columns in order, types as declared, missing columns null)."""
    n = table.num_rows
    cols = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type) for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


@dataclass(frozen=True)
class TableFiles:
    """Where an output's tables live, as every worker needs it: the output URI (an absolute folder path
    or s3://bucket/prefix), the S3 client options and the Parquet codec. Small and picklable."""

    uri: str
    s3_options: dict[str, Any] = field(default_factory=dict)
    compression: str = "zstd"
    rows_per_file: int = 100_000

    @property
    def remote(self) -> bool:
        return self.uri.startswith("s3://")

    def table_uri(self, name: str) -> str:
        return f"{self.uri.rstrip('/')}/{name}"

    def write(
        self,
        name: str,
        rows: pa.Table,
        run_id: str,
        schema: pa.Schema,
        data_change: bool = True,
        per_object: bool = True,
    ) -> list[dict[str, Any]]:
        """Rows of one table, files per object in them (sorted by source URI), or with per_object off
        files of several objects (what a compaction left, rewritten); the add actions' fields, as plain
        values: path (relative to the table), size, modification_time, data_change, stats (Delta's JSON
        statistics: row count and the file's first and last source_uri)."""
        if rows.num_rows == 0:
            return []
        rows = conform(rows, schema).sort_by("source_uri")
        uris = rows["source_uri"].to_pylist()
        if per_object:
            starts = [0] + [i for i in range(1, len(uris)) if uris[i] != uris[i - 1]]
        else:
            starts = [0]
        cuts = [  # each object's rows, in files of at most rows_per_file rows
            (i, min(i + self.rows_per_file, b))
            for a, b in zip(starts, starts[1:] + [len(uris)], strict=True)
            for i in range(a, b, self.rows_per_file)
        ]
        out = []
        for n, (a, b) in enumerate(cuts):
            part = rows.slice(a, b - a)
            source = uris[a]
            rel = f"{object_key(source)}-{run_id}-{n:05d}.parquet"
            size = self._put(name, rel, part)
            stats = {
                "numRecords": part.num_rows,
                "minValues": {"source_uri": source},
                "maxValues": {"source_uri": uris[b - 1]},
                "nullCount": {"source_uri": 0},
            }
            out.append(
                {
                    "path": rel,
                    "size": size,
                    "modification_time": int(time.time() * 1000),
                    "data_change": data_change,
                    "stats": json.dumps(stats),
                    "rows": part.num_rows,
                }
            )
        return out

    def _client(self) -> Any:
        from unitok.connectors.s3 import make_client

        key = (os.getpid(), self.s3_options.get("endpoint_url") or "")
        if key not in _clients:
            _clients[key] = make_client(**self.s3_options)
        return _clients[key]

    def _put(self, name: str, rel: str, part: pa.Table) -> int:
        codec = compression_codec(self.compression)
        if not self.remote:
            path = Path(self.table_uri(name)) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, path, compression=codec, write_statistics=_stat_columns(part.schema))
            return path.stat().st_size
        from unitok.connectors.s3 import _explain, split_s3_uri

        buf = io.BytesIO()
        pq.write_table(part, buf, compression=codec, write_statistics=_stat_columns(part.schema))
        endpoint = self.s3_options.get("endpoint_url") or ""
        bucket, key = split_s3_uri(f"{self.table_uri(name)}/{rel}")
        try:
            self._client().put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
        except Exception as e:  # noqa: BLE001 - one line that names the store
            raise _explain(e, self.uri, endpoint or None) from None
        return buf.tell()

    # -- an object's engine results between the staged plan's engine pools and its assembly ---------------
    def stage(self, run_id: str, source_uri: str, first: int, rows: pa.Table) -> str:
        """Result rows of some of an object's segments (`first`: the lowest segment index among them),
        kept under `_staging/<run_id>/` beside the tables until the object is assembled; the path to
        read them back by. A retried engine call overwrites its own file."""
        rel = f"{run_id}/{object_key(source_uri)}-{first:08d}.parquet"
        self._put(STAGING_FOLDER, rel, rows)
        return rel

    def read_staged(self, rels: list[str]) -> list[pa.Table]:
        return [self._get(STAGING_FOLDER, rel) for rel in rels]

    def drop_staged(self, run_id: str) -> None:
        """A run's staged results, once it has ended (an S3 prefix; a local output's staging folder is the
        run's own, removed with it)."""
        if not self.remote:
            return
        from unitok.connectors.s3 import split_s3_uri

        bucket, prefix = split_s3_uri(f"{self.table_uri(STAGING_FOLDER)}/{run_id}/")
        client = self._client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

    def _get(self, name: str, rel: str) -> pa.Table:
        if not self.remote:
            return pq.read_table(Path(self.table_uri(name)) / rel)
        from unitok.connectors.s3 import _explain, split_s3_uri

        endpoint = self.s3_options.get("endpoint_url") or ""
        bucket, key = split_s3_uri(f"{self.table_uri(name)}/{rel}")
        try:
            body = self._client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as e:  # noqa: BLE001 - one line that names the store
            raise _explain(e, self.uri, endpoint or None) from None
        return pq.read_table(io.BytesIO(body))

    def read(self, name: str, paths: list[str], source_uri: str, schema: pa.Schema) -> pa.Table:
        """One object's committed rows of a table, from the data files that hold them (paths relative to
        the table, as its add actions name them), in the table's schema: what a re-chunk or re-embed
        starts from, read by the worker, never the driver."""
        parts = []
        for rel in paths:
            table = self._get(name, rel)
            parts.append(conform(table.filter(pc.equal(table["source_uri"], source_uri)), schema))
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def put_file(self, folder: str, name: str, data: bytes) -> str:
        """A file beside the tables (the run reports): written, and its path or s3:// URI returned."""
        if not self.remote:
            path = Path(self.uri) / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return str(path)
        from unitok.connectors.s3 import _explain, split_s3_uri

        uri = f"{self.table_uri(folder)}/{name}"
        bucket, key = split_s3_uri(uri)
        try:
            self._client().put_object(Bucket=bucket, Key=key, Body=data, ContentType="text/html")
        except Exception as e:  # noqa: BLE001 - one line that names the store
            raise _explain(e, self.uri, self.s3_options.get("endpoint_url")) from None
        return uri
