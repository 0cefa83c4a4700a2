"""Incremental runs: what changed since the last committed run, and the run state to commit.

State lives in the `objects` table (one row per listed object: the version listed, the version of the
bytes converted, the settings' fingerprints). Each listed object gets an action: converted again (new,
failed last time, changed, other conversion settings or pipeline version), re-chunked or re-embedded from
its stored rows (only those settings changed), its state refreshed (a local file touched but not changed:
its worker hashes it first), or nothing (carried: its rows are left as they are; connectors.output
replaces only the files of what a run works on). Objects listed last time and gone now are deleted from
every table, which the tables' change feed shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from unitok.connectors.objects import ObjectInfo
from unitok.pipeline.core.fingerprint import OFF

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


# What a run does to one object (the `action` column of Plan.convert):
CONVERT = "convert"  # split, convert, assemble, chunk, embed: every table's rows replaced
RECHUNK = "rechunk"  # chunks (and embeddings) again from the stored document: chunks replaced
EMBED = "embed"  # embeddings again on the stored chunks: chunks replaced
# The enrichments again on the stored segments (the object read and split again, its engines not run):
# segments, documents and chunks replaced; an object with nothing the enrichments touch keeps its rows.
ENRICH = "enrich"
REFRESH = "refresh"  # nothing to redo: the run state records the new listing version
# An object's status in the run state: converted; failed (converted again next run); crashed (its worker
# died converting it: converted again only once it changes, or by a run that retries failed objects).
OK, FAILED, CRASHED = "ok", "failed", "crashed"
# Why, in the order a reason wins; the summary and the log count objects by these.
REASONS = {
    "new": "new objects",
    "failed": "failed last run",
    "changed": "changed",
    "full": "full run",
    "convert_settings": "conversion settings changed",
    "pipeline": "pipeline upgraded",
    "enrich_settings": "enrichment settings changed",
    "chunk_settings": "chunking settings changed",
    "embed_settings": "embedding settings changed",
    "touched": "touched (content checked)",
}
# stored_version: the version of the bytes the stored rows came from (actions other than convert); verify:
# the listing changed, so the worker hashes the bytes first and converts them when the hash differs.
PLAN_COLUMNS = [("action", pa.string()), ("reason", pa.string()), ("stored_version", pa.string()),
                ("verify", pa.bool_())]  # fmt: skip


@dataclass
class Plan:
    convert: pa.Table  # the listing rows to work on, with action, reason and expect_version
    deleted: pa.Array  # source URIs gone from the listing
    carried: int = 0  # objects whose rows stay as they are
    previous: int = 0  # objects the last run's state records
    reasons: dict[str, int] = field(default_factory=dict)  # REASONS key -> objects

    def describe(self) -> list[str]:
        """One line per reason, for the log: 'chunking settings changed: 15 objects'."""
        return [f"{REASONS[k]}: {n} object(s)" for k, n in self.reasons.items() if n]


def _with_plan(listing: pa.Table, *columns: Any) -> pa.Table:
    for (name, type_), values in zip(PLAN_COLUMNS, columns, strict=True):
        array = pa.array(values, type_) if isinstance(values, list) else values.cast(type_)
        listing = listing.append_column(pa.field(name, type_), array)
    return listing


def _column(table: pa.Table, name: str) -> Any:
    """A column, or nulls where a run state from before it was handed in."""
    if name in table.column_names:
        return table[name]
    return pa.nulls(table.num_rows, pa.string())


def plan_run(
    listing: pa.Table,
    previous_objects: pa.Table,
    mode: str,
    current: dict[str, str] | None = None,
    pipeline_version: str = "",
    on_pipeline_upgrade: str = "reconvert",
    retry_failed: bool = False,
) -> Plan:
    """previous_objects: the objects table (as OBJECTS_SCHEMA). current: this config's fingerprints
    (pipeline.core.fingerprint). In incremental mode an object is converted again when it is new, failed
    last time, changed (S3 ETag), was converted with other conversion settings or (unless
    on_pipeline_upgrade is keep) another pipeline version; re-chunked or re-embedded from its stored rows
    when only those settings changed; and a local file whose size or mtime changed is hashed by its
    worker, which converts it only when its content differs from the version converted."""
    current = current or {}
    listed = listing["uri"].combine_chunks()
    prev_uris = previous_objects["source_uri"].combine_chunks()
    deleted = pc.filter(prev_uris, pc.invert(pc.is_in(prev_uris, value_set=listed)))
    n = listing.num_rows
    if mode != "incremental" or not len(prev_uris):
        why = "full" if mode != "incremental" else "new"
        convert = _with_plan(listing, [CONVERT] * n, [why] * n, [None] * n, [False] * n)
        return Plan(convert=convert, previous=len(prev_uris), deleted=deleted, reasons={why: n})

    prev = previous_objects.rename_columns([f"prev_{c}" for c in previous_objects.column_names])
    joined = (
        listing.append_column("_order", pa.array(range(n), pa.int64()))
        .join(prev, "uri", "prev_source_uri", join_type="left outer")
        .sort_by("_order")
    )
    keep = on_pipeline_upgrade == "keep"

    def same(column: str, value: str | Any, unknown_is_same: bool = False) -> Any:
        old = joined[f"prev_{column}"]
        eq = pc.equal(old, value)
        if unknown_is_same:
            eq = pc.or_kleene(eq, pc.is_null(old))
        return pc.fill_null(eq, False)

    def true(length: int) -> Any:
        return pa.array([True] * length, pa.bool_())

    versions = _versions(listing)
    has_prev = pc.is_valid(joined["prev_status"])
    listing_same = same("listing_version", versions)
    ok = pc.fill_null(pc.equal(joined["prev_status"], OK), False)
    if not retry_failed:  # an object that killed its worker stays skipped while it is the same object
        ok = pc.or_(ok, pc.and_(pc.fill_null(pc.equal(joined["prev_status"], CRASHED), False), listing_same))
    hashed = pc.fill_null(pc.starts_with(joined["prev_source_version"], "sha256:"), False)
    conv_same = same("convert_fingerprint", current.get("convert_fingerprint", ""), keep)
    pipe_same = true(n) if keep else same("pipeline_version", pipeline_version)
    chunks_same = same("chunks_fingerprint", current.get("chunks_fingerprint", ""), keep)
    embeds_same = same("embeddings_fingerprint", current.get("embeddings_fingerprint", ""), keep)
    # Rows written before enrichments existed have no enrich fingerprint: they had none (off).
    enrich_same = pc.fill_null(
        pc.equal(
            pc.fill_null(_column(joined, "prev_enrich_fingerprint"), OFF),
            current.get("enrich_fingerprint", OFF),
        ),
        False,
    )
    changed = pc.and_(pc.invert(listing_same), pc.invert(hashed))
    # A reason per object, the first that holds; null: nothing to do.
    cases = [
        ("new", pc.invert(has_prev)), ("failed", pc.invert(ok)), ("changed", changed),
        ("convert_settings", pc.invert(conv_same)), ("pipeline", pc.invert(pipe_same)),
        ("enrich_settings", pc.invert(enrich_same)), ("chunk_settings", pc.invert(chunks_same)),
        ("embed_settings", pc.invert(embeds_same)),
        ("touched", pc.invert(listing_same)),
    ]  # fmt: skip
    reason = pa.nulls(n, pa.string())
    for key, mask in reversed(cases):
        reason = pc.if_else(mask, key, reason)
    to_convert = {"new", "failed", "changed", "convert_settings", "pipeline"}
    kind = {**{k: CONVERT for k in to_convert}, "enrich_settings": ENRICH, "chunk_settings": RECHUNK,
            "embed_settings": EMBED, "touched": REFRESH}  # fmt: skip
    action = pa.nulls(n, pa.string())
    for key, act in kind.items():
        action = pc.if_else(pc.fill_null(pc.equal(reason, key), False), act, action)
    reuse = pc.invert(pc.fill_null(pc.equal(action, CONVERT), True))
    stored = pc.if_else(reuse, joined["prev_source_version"], pa.nulls(n, pa.string()))
    verify = pc.and_(reuse, pc.invert(listing_same))  # not converted anyway, but listed differently
    plan = _with_plan(listing, action, reason, stored, verify).filter(pc.is_valid(action))
    counts = pc.value_counts(plan["reason"]).to_pylist() if plan.num_rows else []
    found = {c["values"]: c["counts"] for c in counts}
    return Plan(
        convert=plan,
        carried=n - plan.num_rows,
        previous=len(prev_uris),
        deleted=deleted,
        reasons={k: found[k] for k in REASONS if k in found},
    )


class MassDeleteError(RuntimeError):
    """The run would delete much of what the last run listed: stopped before committing, for a person to
    confirm (an unmounted volume, a wrong prefix or an expired credential lists nothing)."""


def mass_deletion(plan: Plan, n_listed: int, source_uri: str, max_fraction: float) -> str | None:
    """Why a run of this plan stops at the mass-deletion guard (None: it does not): it lists nothing where
    the last run listed objects, or would delete more than max_fraction of them. `unitok plan` says it
    too, before anyone runs."""
    before = plan.previous
    if not before or not len(plan.deleted):
        return None
    if n_listed == 0:
        return f"source {source_uri} lists 0 objects where the last run listed {before}"
    share = len(plan.deleted) / before
    if share <= max_fraction:
        return None
    why = (
        f"this run would delete {len(plan.deleted)} of the {before} objects the last run listed "
        f"({share:.0%}, above runtime.max_delete_fraction {max_fraction:g})"
    )
    if len(plan.deleted) == before:  # not one object in common: most likely two jobs share an output
        why += f"; not one of them is listed under {source_uri} (is output.uri another job's output?)"
    return why


def check_deletions(plan: Plan, n_listed: int, source_uri: str, max_fraction: float) -> None:
    """Raise MassDeleteError when this run lists nothing where the last run listed objects, or would
    delete more than max_fraction of them."""
    why = mass_deletion(plan, n_listed, source_uri, max_fraction)
    if why is None:
        return
    how = "check the source; to commit the deletions, pass --allow-mass-delete"
    raise MassDeleteError(
        f"{why}; nothing was committed ({how}"
        + (")" if n_listed == 0 else " or raise runtime.max_delete_fraction)")
    )


def state_row(
    obj: dict[str, Any], failed: bool, run_id: str, source_version: str | None, settings: dict[str, str]
) -> dict[str, Any]:
    """The objects table's row for one object this run worked on: source_version is the version of the
    bytes converted (None: none were, as for a download that failed), settings its fingerprints and
    pipeline version."""
    return {
        "source_uri": obj["uri"],
        "listing_version": listing_version(obj),
        "size": obj["size"],
        "modified_at": obj["modified_at"],
        "status": FAILED if failed else OK,
        "run_id": run_id,
        "source_version": source_version,
        **settings,
    }
