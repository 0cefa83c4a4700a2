"""Keep a LanceDB table in step with an output's chunks table: the chunks table's change feed, since the
version last applied, is applied to LanceDB (deleted chunks removed by chunk_id, new ones upserted), and the
version applied is recorded in a small companion table. A run that dies between its Delta commit and this
sync is caught up by the next run; a LanceDB table that is new, or whose record is lost, is loaded whole."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from unitok.connectors.output import delta_files, open_table, plain_types

SYNC_SUFFIX = "__unitok_sync"


def _plain(table: pa.Table) -> pa.Table:
    """Plain Arrow types, and embeddings as fixed-size vectors (what LanceDB searches) when present."""

    table = plain_types(table)
    if "embedding" in table.column_names and table["embedding"].null_count == table.num_rows:
        return table.drop_columns(["embedding"])  # embeddings off: no vector column (LanceDB infers one)
    if "embedding" in table.column_names and table.num_rows:
        column = table["embedding"]
        lengths = {len(v) for v in column.to_pylist() if v is not None}
        if len(lengths) == 1 and column.null_count == 0:
            dim = lengths.pop()
            vectors = pa.array(column.to_pylist(), type=pa.list_(pa.float32(), dim))
            table = table.set_column(table.schema.get_field_index("embedding"), "embedding", vectors)
    return table


def sync_lancedb(
    output_uri: str, storage_options: dict[str, str] | None, lance_uri: str, table_name: str
) -> dict[str, int]:
    """Bring LanceDB's `table_name` up to the chunks table's current version. Returns counts."""
    import lancedb

    chunks = open_table(output_uri, "chunks", storage_options)
    target = chunks.version()
    db = lancedb.connect(lance_uri)
    listed = db.list_tables()
    names = set(listed.tables) if hasattr(listed, "tables") else set(db.table_names())
    synced = None
    if table_name in names and f"{table_name}{SYNC_SUFFIX}" in names:
        rows = db.open_table(f"{table_name}{SYNC_SUFFIX}").to_arrow().to_pylist()
        synced = rows[0]["chunks_version"] if rows else None
    if synced is None:  # new, or nothing to go on: load the current chunks whole
        return _load(db, chunks, storage_options, table_name, target)
    if synced >= target:
        return {"loaded": 0, "upserted": 0, "deleted": 0, "version": target}
    feed = plain_types(
        pa.table(chunks.load_cdf(starting_version=synced + 1, ending_version=target).read_all())
    )
    table = db.open_table(table_name)
    inserted = feed.filter(pc.equal(feed["_change_type"], "insert"))
    rows = _plain(inserted.drop_columns([c for c in inserted.column_names if c.startswith("_")]))
    if rows.num_rows and not _same_columns(pa.schema(table.schema), rows.schema):
        # The chunks' schema changed (embeddings turned on or off, another dimension): LanceDB's table
        # follows it, reloaded whole from the chunks table (every chunk was rewritten anyway).
        return _load(db, chunks, storage_options, table_name, target)
    deleted_ids = set(feed.filter(pc.equal(feed["_change_type"], "delete"))["chunk_id"].to_pylist())
    # An object converted again keeps the ids of unchanged chunks: those are upserted, not deleted.
    gone = sorted(deleted_ids - set(inserted["chunk_id"].to_pylist()))
    for i in range(0, len(gone), 500):
        ids = ", ".join("'" + c.replace("'", "''") + "'" for c in gone[i : i + 500])
        table.delete(f"chunk_id IN ({ids})")
    if rows.num_rows:
        table.merge_insert("chunk_id").when_matched_update_all().when_not_matched_insert_all().execute(rows)
    _record(db, table_name, target)
    return {"loaded": 0, "upserted": rows.num_rows, "deleted": len(gone), "version": target}


def _same_columns(have: pa.Schema, rows: pa.Schema) -> bool:
    if set(have.names) != set(rows.names):
        return False
    return "embedding" not in rows.names or have.field("embedding").type == rows.field("embedding").type


def _load(
    db: Any, chunks: Any, storage_options: dict[str, str] | None, name: str, version: int
) -> dict[str, int]:
    current = _plain(delta_files(chunks, storage_options).to_table())
    db.create_table(name, current, mode="overwrite")
    _record(db, name, version)
    return {"loaded": current.num_rows, "upserted": 0, "deleted": 0, "version": version}


def _record(db: Any, table_name: str, version: int) -> None:
    db.create_table(f"{table_name}{SYNC_SUFFIX}", pa.table({"chunks_version": [version]}), mode="overwrite")


def maintain_lancedb(
    lance_uri: str, table_name: str, index_min_rows: int, retention_hours: int
) -> dict[str, Any]:
    """Compact the LanceDB table's fragments (and drop versions older than retention_hours), then, once it
    holds index_min_rows rows with vectors, build its vector index (IVF-PQ, cosine: the embeddings are
    unit length) if it has none, or bring the index up to date. Below that size a flat search is exact
    and fast enough, and an index would need retraining as the table grows. Returns what it did."""
    from datetime import timedelta

    import lancedb

    db = lancedb.connect(lance_uri)
    table = db.open_table(table_name)
    table.optimize(cleanup_older_than=timedelta(hours=retention_hours))
    rows = table.count_rows()
    schema = pa.schema(table.schema)
    report: dict[str, Any] = {"rows": rows, "index": None, "index_min_rows": index_min_rows}
    if "embedding" not in schema.names or not pa.types.is_fixed_size_list(schema.field("embedding").type):
        report["index"] = "none (no vector column)"
        return report
    indexed = any("embedding" in list(ix.columns) for ix in table.list_indices())
    if indexed:
        report["index"] = "up to date"  # optimize() above added new rows to it
    elif rows >= index_min_rows:
        dim = schema.field("embedding").type.list_size
        table.create_index(
            metric="cosine",
            vector_column_name="embedding",
            index_type="IVF_PQ",
            num_partitions=max(1, int(rows**0.5)),
            num_sub_vectors=next(d for d in (16, 8, 4, 2, 1) if dim % d == 0),
        )
        report["index"] = "created"
    else:
        report["index"] = f"none ({rows} rows, below index_min_rows {index_min_rows})"
    return report
