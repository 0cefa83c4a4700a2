"""Incremental runs: what changed since the last committed run, and the run state to commit.

State lives in the `objects` table (one row per listed object). An object is converted again when it is
new, when its listing version changed (S3 ETag; size and mtime for local files), or when it failed last
time. Unchanged objects' rows are left as they are in the tables (connectors.output replaces only the
converted objects' files); objects listed last time and gone now are deleted from every table, which the
tables' change feed shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def listing_version(obj: dict[str, Any]) -> str:
    return obj.get("version") or f"size:{obj['size']}/mtime:{obj['modified_at']:.6f}"


@dataclass
class Plan:
    convert: list[dict[str, Any]]
    carried: list[str] = field(default_factory=list)  # source URIs whose rows are copied forward
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: list[dict[str, Any]] = field(default_factory=list)


def plan_run(listing: list[dict[str, Any]], previous_objects: list[dict[str, Any]], mode: str) -> Plan:
    previous = {r["source_uri"]: r for r in previous_objects}
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


class MassDeleteError(RuntimeError):
    """The run would delete much of what the last run listed: stopped before committing, for a person to
    confirm (an unmounted volume, a wrong prefix or an expired credential lists nothing)."""


def check_deletions(plan: Plan, n_listed: int, source_uri: str, max_fraction: float) -> None:
    """Raise MassDeleteError when this run lists nothing where the last run listed objects, or would
    delete more than max_fraction of them."""
    before = len(plan.previous)
    if not before or not plan.deleted:
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
