"""Incremental runs: what changed since the last committed run, and carrying unchanged rows forward.

State lives in the published `objects/` dataset (one row per listed object of the last run). An object
is converted again when it is new, when its listing version changed (S3 ETag; size and mtime for local
files), or when it failed last time. Unchanged objects' rows are copied from the previous snapshot into
the new one, so every run publishes a complete snapshot and a crash at any point loses nothing.
Objects listed last time and gone now become rows of `deletions/` (the deletions this run detected).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

OBJECTS_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),
        ("listing_version", pa.string()),
        ("size", pa.int64()),
        ("modified_at", pa.float64()),
        ("status", pa.string()),  # ok | failed
        ("run_id", pa.string()),  # the run that converted it
    ]
)
DELETIONS_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),
        ("listing_version", pa.string()),
        ("run_id", pa.string()),  # the run that detected the deletion
        ("detected_at", pa.timestamp("us", tz="UTC")),
    ]
)


def listing_version(obj: dict[str, Any]) -> str:
    return obj.get("version") or f"size:{obj['size']}/mtime:{obj['modified_at']:.6f}"


@dataclass
class Plan:
    convert: list[dict[str, Any]]
    carried: list[str] = field(default_factory=list)  # source URIs whose rows are copied forward
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: list[dict[str, Any]] = field(default_factory=list)


def load_previous(output_dir: Path) -> dict[str, dict[str, Any]]:
    folder = output_dir / "objects"
    if not folder.is_dir():
        return {}
    return {r["source_uri"]: r for r in pads.dataset(folder, format="parquet").to_table().to_pylist()}


def plan_run(listing: list[dict[str, Any]], output_dir: Path, mode: str) -> Plan:
    previous = load_previous(output_dir)
    listed = {o["uri"] for o in listing}
    deleted = [r for uri, r in previous.items() if uri not in listed]
    if mode != "incremental" or not previous:
        return Plan(convert=listing, previous=previous, deleted=deleted)
    convert, carried = [], []
    for obj in listing:
        before = previous.get(obj["uri"])
        if before and before["status"] == "ok" and before["listing_version"] == listing_version(obj):
            carried.append(obj["uri"])
        else:
            convert.append(obj)
    return Plan(convert=convert, carried=carried, previous=previous, deleted=deleted)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch written by an earlier pipeline version in today's schema: columns added since are null."""
    n = batch.num_rows
    columns = [
        batch.column(f.name).cast(f.type) if f.name in batch.schema.names else pa.nulls(n, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def carry_forward(
    output_dir: Path, staging: Path, schemas: dict[str, pa.Schema], uris: list[str], compression: str | None
) -> None:
    """Copy the previous snapshot's rows of unchanged objects into the new staging, batch by batch, in
    today's schemas (a snapshot from an earlier version may lack a column added since)."""
    if not uris:
        return
    wanted = pa.array(uris, pa.string())
    for name, schema in schemas.items():
        src = output_dir / name
        if not src.is_dir():
            continue
        dataset = pads.dataset(src, format="parquet")
        scanner = dataset.scanner(filter=pc.field("source_uri").isin(wanted), batch_size=4096)
        (staging / name).mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(staging / name / "part-carried.parquet", schema, compression=compression) as w:
            for batch in scanner.to_batches():
                if batch.num_rows:
                    w.write_batch(conform(batch, schema))


def write_state(
    staging: Path, plan: Plan, listing: list[dict[str, Any]], failed_uris: set[str], run_id: str,
    compression: str | None,
) -> None:  # fmt: skip
    carried = set(plan.carried)
    rows = []
    for obj in listing:
        if obj["uri"] in carried:
            rows.append(plan.previous[obj["uri"]])
            continue
        status = "failed" if obj["uri"] in failed_uris else "ok"
        rows.append(
            {
                "source_uri": obj["uri"],
                "listing_version": listing_version(obj),
                "size": obj["size"],
                "modified_at": obj["modified_at"],
                "status": status,
                "run_id": run_id,
            }
        )
    now = datetime.now(UTC)
    deletions = [
        {
            "source_uri": r["source_uri"],
            "listing_version": r["listing_version"],
            "run_id": run_id,
            "detected_at": now,
        }
        for r in plan.deleted
    ]
    for name, schema, data in (("objects", OBJECTS_SCHEMA, rows), ("deletions", DELETIONS_SCHEMA, deletions)):
        (staging / name).mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in data], schema=schema)
        pq.write_table(table, staging / name / "part-00000.parquet", compression=compression)
