"""Progress commits: the driver gathers the metadata of objects the workers have finished (their data files
are already in the tables' folders) and commits them every commit_every_s seconds or commit_every_objects
objects, whichever comes first, and once at the end with the deletions. Each commit carries the objects
rows of exactly the objects it covers, so a killed run's rerun converts only what was not committed, and
the change feed shows each changed object once.

The driver keeps only the pending objects' file metadata (bounded by commit_every_objects) and counts:
never a row of the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from unitok.connectors.output import RunOutput
from unitok.pipeline.core.schemas import TABLES
from unitok.pipeline.core.testhooks import checkpoint

log = logging.getLogger("unitok")


class PartialCommitError(RuntimeError):
    """The run stopped after some of its output was committed (exit 3): the line says what is committed
    and what is not; the next run completes the tables."""


class ProgressCommits:
    def __init__(
        self,
        output: RunOutput,
        run_id: str,
        metadata: Callable[[dict[str, int], bool], dict[str, Any]],
        every_s: float,
        every_objects: int,
        started: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.output, self.run_id, self.metadata = output, run_id, metadata
        self.every_s, self.every_objects, self.clock = every_s, every_objects, clock
        self.pending: list[dict[str, Any]] = []
        self.oldest: float | None = None  # when the oldest pending object arrived
        self.objects_committed = 0
        self.rounds = 0
        self.versions: dict[str, int] = {}
        self.first_commit_s: float | None = None  # seconds from the run's start to its first commit
        self._t0 = clock() if started is None else started

    def add(self, meta: dict[str, Any]) -> None:
        """An object the workers finished; commits when the pending objects are due."""
        if self.oldest is None:
            self.oldest = self.clock()
        self.pending.append(meta)
        if len(self.pending) >= self.every_objects or self.clock() - self.oldest >= self.every_s:
            self.flush()

    def flush(self, listed_uris: pa.Array | None = None, deletes: bool = False) -> None:
        """Commit what is pending; with listed_uris (the run's last commit), the deletions too. A run's
        last commit lands even with nothing pending when it deletes or made no commit yet, so every
        table records every run."""
        if not self.pending and (listed_uris is None or (self.rounds and not deletes)):
            return
        final = listed_uris is not None

        def metadata(versions: dict[str, int]) -> dict[str, Any]:
            return self.metadata(versions, final)

        # The listed URIs only where the plan deletes: else no file can hold an object no longer listed,
        # and the commit need not read the source_uri of every file of several objects (compacted).
        listed = listed_uris if deletes else None
        self.versions = self.output.commit(self.pending, self.run_id, TABLES, metadata, listed)
        self.rounds += 1
        self.objects_committed += len(self.pending)
        if self.first_commit_s is None and self.pending:
            self.first_commit_s = round(self.clock() - self._t0, 3)
        log.info("committed %d object(s) (%d in all) at %s", len(self.pending), self.objects_committed,
                 ", ".join(f"{k} v{v}" for k, v in self.versions.items()))  # fmt: skip
        self.pending, self.oldest = [], None
        checkpoint("commit.progress")  # tests kill a run here: one progress commit landed

    def partial(self, exc: BaseException) -> PartialCommitError | None:
        """What a failure at this point means for the output: None where nothing of this run was
        committed (exit 2), else the exit-3 error that says what is and is not committed."""
        done_in_round = self.output.committing  # the tables of a commit cut short that had landed
        if not self.rounds and not done_in_round:
            return None
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, KeyboardInterrupt):
            reason = str(exc) or "interrupted"  # SIGTERM's says so
        tables = list(TABLES)
        parts = (
            [f"{self.objects_committed} object(s) committed in every table"] if self.objects_committed else []
        )
        if done_in_round:
            missing = [t for t in tables if t not in done_in_round]
            parts.append(
                f"{len(self.pending)} object(s) committed in {', '.join(done_in_round)} but not in "
                f"{', '.join(missing)}"
            )
        return PartialCommitError(
            f"the run stopped after committing part of its output ({reason}): {'; '.join(parts)}; the rest "
            "of the run is not committed; the next run completes the tables"
        )
