"""Pause points for tests: a test stops the pipeline at a known point instead of guessing with sleeps.

UNITOK_PAUSE_AT names the points to hold, as `point` (its first arrival) or `point#n` (its n-th arrival in
this process), comma-separated; UNITOK_PAUSE_DIR is a folder both sides see. At a held point the process
creates `<dir>/<point>#<n>.reached` and waits until `<dir>/<point>#<n>.go` exists. Without UNITOK_PAUSE_AT
a checkpoint costs one dictionary look-up.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

_arrivals: Counter[str] = Counter()


def checkpoint(point: str) -> None:
    held = os.environ.get("UNITOK_PAUSE_AT")
    if not held:
        return
    _arrivals[point] += 1
    n = _arrivals[point]
    wanted = {h.strip() for h in held.split(",")}
    if f"{point}#{n}" not in wanted and not (n == 1 and point in wanted):
        return
    folder = Path(os.environ.get("UNITOK_PAUSE_DIR") or ".")
    (folder / f"{point}#{n}.reached").touch()
    go = folder / f"{point}#{n}.go"
    while not go.exists():
        time.sleep(0.005)


def reset() -> None:
    """Forget the arrivals counted so far (a test that holds points in its own process)."""
    _arrivals.clear()


def wait_reached(folder: Path, point: str, n: int = 1, timeout_s: float = 120.0, alive=None) -> None:
    """For tests: block until the pipeline has arrived at the point (raises when it never does, or when
    `alive()` says the process it waits for has ended)."""
    marker = folder / f"{point}#{n}.reached"
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if alive is not None and not alive():
            raise AssertionError(f"the process ended before it reached {point}#{n}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the pipeline never reached {point}#{n}")
        time.sleep(0.005)


def release(folder: Path, point: str, n: int = 1) -> None:
    (folder / f"{point}#{n}.go").touch()


class InjectedFault(RuntimeError):
    """A failure a test asked for at a named point (UNITOK_FAIL_AT)."""


def fault(point: str, subject: str = "", fail: bool = True, kill: bool = True) -> None:
    """Raise InjectedFault where UNITOK_FAIL_AT names this point, as `point` (every arrival) or
    `point@text` (only where `subject`, e.g. an object's URI, contains text); comma-separated. Lets a test
    fail one object at one stage of its work and check that the rest of the run goes on. UNITOK_KILL_AT,
    the same way, kills the process there with SIGKILL. `fail`/`kill` off: a place that only raises (or
    only dies) for this point."""
    if fail and _wanted("UNITOK_FAIL_AT", point, subject):
        raise InjectedFault(f"injected at {point}")
    if kill and _wanted("UNITOK_KILL_AT", point, subject):  # a worker dying as the OOM killer ends it
        os.kill(os.getpid(), signal.SIGKILL)


def _wanted(variable: str, point: str, subject: str) -> bool:
    wanted = os.environ.get(variable)
    if not wanted:
        return False
    for item in wanted.split(","):
        name, _, text = item.strip().partition("@")
        if name == point and text in subject:
            return True
    return False
