"""Keep a LanceDB table in step with an output's chunks table: the chunks table's change feed, since the
version last applied, is applied to LanceDB (deleted chunks removed by chunk_id, new ones upserted), and the
version applied is recorded in a small companion table. A run that dies between its Delta commit and this
sync is caught up by the next run; a LanceDB table that is new, or whose record is lost, is loaded whole."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
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
        current = _plain(delta_files(chunks, storage_options).to_table())
        db.create_table(table_name, current, mode="overwrite")
        _record(db, table_name, target)
        return {"loaded": current.num_rows, "upserted": 0, "deleted": 0, "version": target}
    if synced >= target:
        return {"loaded": 0, "upserted": 0, "deleted": 0, "version": target}
    feed = _plain(pa.table(chunks.load_cdf(starting_version=synced + 1, ending_version=target).read_all()))
    table = db.open_table(table_name)
    inserted = feed.filter(pa.compute.equal(feed["_change_type"], "insert"))
    deleted_ids = set(feed.filter(pa.compute.equal(feed["_change_type"], "delete"))["chunk_id"].to_pylist())
    # An object converted again keeps the ids of unchanged chunks: those are upserted, not deleted.
    gone = sorted(deleted_ids - set(inserted["chunk_id"].to_pylist()))
    for i in range(0, len(gone), 500):
        ids = ", ".join("'" + c.replace("'", "''") + "'" for c in gone[i : i + 500])
        table.delete(f"chunk_id IN ({ids})")
    if inserted.num_rows:
        rows = inserted.drop_columns([c for c in inserted.column_names if c.startswith("_")])
        table.merge_insert("chunk_id").when_matched_update_all().when_not_matched_insert_all().execute(rows)
    _record(db, table_name, target)
    return {"loaded": 0, "upserted": inserted.num_rows, "deleted": len(gone), "version": target}


def _record(db: Any, table_name: str, version: int) -> None:
    db.create_table(f"{table_name}{SYNC_SUFFIX}", pa.table({"chunks_version": [version]}), mode="overwrite")
