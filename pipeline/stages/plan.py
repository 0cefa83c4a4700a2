"""Incremental runs: what changed since the last committed run, and the run state to commit.

State lives in the `objects` table (one row per listed object). An object is converted again when it is
new, when its listing version changed (S3 ETag; size and mtime for local files), or when it failed last
time. Unchanged objects' rows are left as they are in the tables (connectors.output replaces only the
converted objects' files); objects listed last time and gone now are deleted from every table, which the
tables' change feed shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from unitok.connectors.objects import ObjectInfo

# The listing in the driver: one Arrow row per object (a few dozen bytes each beside its URI), never a
# Python object per object, so a million-object listing is a few hundred MB at most.
LISTING_SCHEMA = pa.schema(
    [("uri", pa.string()), ("key", pa.string()), ("size", pa.int64()), ("modified_at", pa.float64()),
     ("version", pa.string())]
)  # fmt: skip
_CHUNK = 65_536


def listing_version(obj: dict[str, Any]) -> str:
    return obj.get("version") or f"size:{obj['size']}/mtime:{obj['modified_at']:.6f}"


def listing_table(objects: Iterable[ObjectInfo]) -> pa.Table:
    """The store's listing, streamed into Arrow a chunk at a time."""
    batches, chunk = [], []
    for obj in objects:
        chunk.append(obj)
        if len(chunk) == _CHUNK:
            batches.append(_batch(chunk))
            chunk = []
    if chunk:
        batches.append(_batch(chunk))
    return pa.Table.from_batches(batches, LISTING_SCHEMA)


def _batch(objs: list[ObjectInfo]) -> pa.RecordBatch:
    columns = {name: [getattr(o, name) for o in objs] for name in LISTING_SCHEMA.names}
    return pa.RecordBatch.from_pydict(columns, schema=LISTING_SCHEMA)


def _versions(listing: pa.Table) -> pa.Array:
    out = []
    for batch in listing.to_batches(max_chunksize=_CHUNK):
        out.extend(listing_version(r) for r in batch.to_pylist())
    return pa.array(out, pa.string())


@dataclass
class Plan:
    convert: pa.Table  # the listing rows to convert
    deleted: pa.Array  # source URIs gone from the listing
    carried: int = 0  # objects whose rows stay as they are
    previous: int = 0  # objects the last run's state records


def plan_run(listing: pa.Table, previous_objects: pa.Table, mode: str) -> Plan:
    """previous_objects: the objects table's source_uri, listing_version and status columns."""
    listed = listing["uri"].combine_chunks()
    prev_uris = previous_objects["source_uri"].combine_chunks()
    deleted = pc.filter(prev_uris, pc.invert(pc.is_in(prev_uris, value_set=listed)))
    base = Plan(convert=listing, previous=len(prev_uris), deleted=deleted)
    if mode != "incremental" or not len(prev_uris):
        return base
    ok = previous_objects.filter(pc.equal(previous_objects["status"], "ok"))
    # An object is carried when its last state is ok and its listing version is the same.
    now = pc.binary_join_element_wise(listed, _versions(listing), "\x00")
    before = pc.binary_join_element_wise(ok["source_uri"], ok["listing_version"], "\x00")
    same = pc.is_in(now, value_set=before.combine_chunks())
    return Plan(
        convert=listing.filter(pc.invert(same)),
        carried=pc.sum(same).as_py() or 0,
        previous=len(prev_uris),
        deleted=deleted,
    )


class MassDeleteError(RuntimeError):
    """The run would delete much of what the last run listed: stopped before committing, for a person to
    confirm (an unmounted volume, a wrong prefix or an expired credential lists nothing)."""


def check_deletions(plan: Plan, n_listed: int, source_uri: str, max_fraction: float) -> None:
    """Raise MassDeleteError when this run lists nothing where the last run listed objects, or would
    delete more than max_fraction of them."""
    before = plan.previous
    if not before or not len(plan.deleted):
        return
    how = "check the source; to commit the deletions, pass --allow-mass-delete"
    if n_listed == 0:
        raise MassDeleteError(
            f"source {source_uri} lists 0 objects where the last run listed {before}; nothing was "
            f"committed ({how})"
        )
    share = len(plan.deleted) / before
    if share > max_fraction:
        raise MassDeleteError(
            f"this run would delete {len(plan.deleted)} of the {before} objects the last run listed "
            f"({share:.0%}, above runtime.max_delete_fraction {max_fraction:g}); nothing was committed "
            f"({how} or raise runtime.max_delete_fraction)"
        )


def state_row(obj: dict[str, Any], failed: bool, run_id: str) -> dict[str, Any]:
    """The objects table's row for one object this run converted."""
    return {
        "source_uri": obj["uri"],
        "listing_version": listing_version(obj),
        "size": obj["size"],
        "modified_at": obj["modified_at"],
        "status": "failed" if failed else "ok",
        "run_id": run_id,
    }
