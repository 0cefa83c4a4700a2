"""One output, one commit protocol, for folders and S3: a run's datasets are staged in a local work folder
(beside the published ones, or seeded from the committed S3 snapshot), and published together with a
manifest written last, which is the commit. Free of Ray: every driver writes through this.

Folder layout:
  segments/ documents/ errors/ objects/ deletions/   Parquet files of the latest committed run
  _manifest.json                                      that run's manifest (written last: the commit record)
  _runs/<run_id>.json                                 every committed run's manifest
  _staging/<run_id>/                                  a run in progress (never read by consumers)
S3 layout: see connectors/s3_snapshots.py (immutable snapshots plus one manifest PUT).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from unitok.connectors.local import path_from_uri
from unitok.connectors.parquet_files import compression_codec, ensure_dataset
from unitok.pipeline.core.redact import redact_uri

STAGING = "_staging"
MANIFEST = "_manifest.json"
RUNS = "_runs"


class OutputError(RuntimeError):
    """The output cannot be written at all (a file where the folder should be, a read-only or full disk,
    a place inside the source): the job stops before converting, with this one line."""


def check_output_location(source_uri: str, output_uri: str) -> None:
    """An output inside the source would be listed, and converted, by the next run."""
    if source_uri.startswith("s3://") != output_uri.startswith("s3://"):
        return
    if source_uri.startswith("s3://"):
        src, out = source_uri.rstrip("/") + "/", output_uri.rstrip("/") + "/"
    else:
        src_path, out_path = path_from_uri(source_uri).resolve(), path_from_uri(output_uri).resolve()
        if src_path.is_file():
            return
        src, out = str(src_path).rstrip("/") + "/", str(out_path).rstrip("/") + "/"
    if out.startswith(src):
        raise OutputError(
            f"output.uri {redact_uri(output_uri)} is inside source.uri {redact_uri(source_uri)}: "
            "the next run would list the output as input; choose an output outside the source"
        )


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileExistsError | NotADirectoryError):
        return "a file is in the way: the output must be a folder"
    return exc.strerror or type(exc).__name__


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch written by an earlier pipeline version in today's schema: columns added since are null."""
    n = batch.num_rows
    columns = [
        batch.column(f.name).cast(f.type) if f.name in batch.schema.names else pa.nulls(n, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


class RunOutput:
    """The output of a job: what the last committed run left (for planning and carry-forward), and the
    staging and commit of a new run. Use as a context manager; close() removes S3 work folders."""

    def __init__(self, uri: str, s3_options: dict[str, Any] | None = None, compression: str = "zstd"):
        self.uri = uri
        self.compression = compression
        self.remote = None
        self.previous_run: str | None = None
        if uri.startswith("s3://"):
            # Object stores cannot rename: the run is built in a local work folder seeded with the
            # committed snapshot, then uploaded as a new snapshot and committed with one manifest PUT.
            from unitok.connectors.s3_snapshots import S3Snapshots

            self.remote = S3Snapshots(uri, **(s3_options or {}))
            self.dir = Path(tempfile.mkdtemp(prefix="unitok-out-"))
            previous = self.remote.read_manifest()
            if previous:
                self.previous_run = previous["run_id"]
                self.remote.download_snapshot(previous, self.dir)
        else:
            self.dir = path_from_uri(uri).resolve()
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                # Probe now: a read-only or full disk should stop the job before any conversion.
                with tempfile.NamedTemporaryFile(dir=self.dir, prefix=".unitok-probe-"):
                    pass
            except OSError as e:
                raise OutputError(
                    f"output.uri {redact_uri(uri)}: cannot write there ({_os_reason(e)})"
                ) from None

    def __enter__(self) -> RunOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.remote is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- what the last committed run left ---------------------------------------------------------------
    def previous_rows(self, name: str) -> list[dict[str, Any]]:
        folder = self.dir / name
        if not folder.is_dir():
            return []
        return pads.dataset(folder, format="parquet").to_table().to_pylist()

    # -- a new run ----------------------------------------------------------------------------------------
    def begin(self, run_id: str) -> Path:
        """The run's staging folder. One run per output at a time: staging left by a crashed run is stale
        and is cleared."""
        shutil.rmtree(self.dir / STAGING, ignore_errors=True)
        staging = self.dir / STAGING / run_id
        try:
            staging.mkdir(parents=True)
        except OSError as e:
            raise OutputError(
                f"output.uri {redact_uri(self.uri)}: cannot stage the run ({_os_reason(e)})"
            ) from None
        return staging

    def carry_forward(self, staging: Path, schemas: dict[str, pa.Schema], uris: list[str]) -> None:
        """Copy the previous snapshot's rows of unchanged objects into the new staging, batch by batch, in
        today's schemas (a snapshot from an earlier version may lack a column added since)."""
        if not uris:
            return
        wanted = pa.array(uris, pa.string())
        for name, schema in schemas.items():
            src = self.dir / name
            if not src.is_dir():
                continue
            scanner = pads.dataset(src, format="parquet").scanner(
                filter=pc.field("source_uri").isin(wanted), batch_size=4096
            )
            (staging / name).mkdir(parents=True, exist_ok=True)
            path = staging / name / "part-carried.parquet"
            with pq.ParquetWriter(path, schema, compression=compression_codec(self.compression)) as w:
                for batch in scanner.to_batches():
                    if batch.num_rows:
                        w.write_batch(conform(batch, schema))

    def write_table(self, staging: Path, name: str, table: pa.Table, part: str = "part-00000") -> None:
        (staging / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(
            table, staging / name / f"{part}.parquet", compression=compression_codec(self.compression)
        )

    def commit(
        self, staging: Path, run_id: str, schemas: dict[str, pa.Schema], manifest: dict[str, Any]
    ) -> dict[str, Any]:
        """Publish every dataset of the run together; the manifest is written last."""
        for name, schema in schemas.items():
            ensure_dataset(staging, name, schema, self.compression)
        manifest = self._publish_local(staging, run_id, list(schemas), manifest)
        if self.remote is not None:
            manifest = self.remote.publish(self.dir, run_id, list(schemas), manifest)
            # Keep the previous snapshot too: a reader that fetched the old manifest may still be reading.
            self.remote.prune({run_id, self.previous_run} - {None})
        return manifest

    def discard(self, run_id: str) -> None:
        shutil.rmtree(self.dir / STAGING / run_id, ignore_errors=True)

    def _publish_local(
        self, staging: Path, run_id: str, datasets: list[str], manifest: dict[str, Any]
    ) -> dict[str, Any]:
        """Swap the staged datasets in with renames (same filesystem), then write the manifest last. A crash
        before the manifest leaves the previous run's manifest in place; readers that go through
        _manifest.json's file lists never see a half-published run."""
        out = self.dir
        trash = out / STAGING / f"{run_id}.replaced"
        trash.mkdir(parents=True, exist_ok=True)
        files: dict[str, list[str]] = {}
        for name in datasets:
            target = out / name
            if target.exists():
                os.replace(target, trash / name)
            os.replace(staging / name, target)
            files[name] = sorted(p.relative_to(out).as_posix() for p in target.glob("*.parquet"))
        manifest = {**manifest, "files": files, "status": "committed"}
        (out / RUNS).mkdir(exist_ok=True)
        _write_json_atomic(out / RUNS / f"{run_id}.json", manifest)
        _write_json_atomic(out / MANIFEST, manifest)
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            (out / STAGING).rmdir()
        except OSError:
            pass  # other runs' staging folders remain
        return manifest
