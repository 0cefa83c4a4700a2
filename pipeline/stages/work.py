"""Listed objects → engine batches: split, route, and batch, in the one place every driver calls.

Each batch is one engine call: segments of one object routed to one engine, in segment order, up to that
engine's preferred size (routing.batch_size). The local pool, Ray Data and Serve all feed the engines these
same batches, so a padded model (Phi-4) sees the same batch whichever driver runs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from unitok.actors.routing import batch_size, renditions, route
from unitok.connectors.objects import ObjectInfo
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import Segment
from unitok.pipeline.formats.split import split_file


def engine_batches(segments: Iterable[Segment], cfg: JobConfig) -> Iterator[list[Segment]]:
    """One object's segments → routed batches, yielded as they fill (streaming: a long document never
    sits whole in memory). Each batch gets a `batch` number, unique within its object."""
    pending: dict[tuple[str, int], list[Segment]] = {}
    number = 0
    for seg in segments:
        seg.route = route(seg, cfg)
        key = (seg.route, batch_size(seg, cfg))
        group = pending.setdefault(key, [])
        group.append(seg)
        if len(group) >= key[1]:
            yield _numbered(pending.pop(key), number)
            number += 1
    for group in pending.values():
        yield _numbered(group, number)
        number += 1


def _numbered(group: list[Segment], number: int) -> list[Segment]:
    for seg in group:
        seg.batch = number
    return group


def file_batches(path: Path, obj: ObjectInfo, cfg: JobConfig) -> Iterator[list[Segment]]:
    """A local file (an upload) → its engine batches, with obj's provenance."""
    yield from engine_batches(split_file(path, obj, cfg, renditions(cfg)), cfg)
