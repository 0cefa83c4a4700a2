"""Wall time and peak memory of a command as a user runs it: a fresh process, start-up included. Memory is
the peak sum of PSS over the whole process tree (Ray's raylet, GCS and workers, pool workers, ffmpeg),
sampled every 0.1 s; PSS splits shared pages, so pages shared by workers or the object store are not
counted twice. Shared by the benchmarks in this folder."""

from __future__ import annotations

import os
import subprocess
import threading
import time


def _children(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(
    cmd: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and peak tree PSS (MiB) of a command."""
    wall, peak, _, done = measure_driver(cmd, env)
    return wall, peak, done


def measure_driver(
    cmd: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, float, subprocess.CompletedProcess]:
    """Wall seconds, peak tree PSS and peak PSS of the command's own process (the driver, apart from the
    workers and services it starts), in MiB."""
    peak = own = 0
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, own
        while not done.is_set():
            peak = max(peak, sum(_pss_kib(p) for p in _children(proc.pid)))
            own = max(own, _pss_kib(proc.pid))
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    return wall, peak / 1024, own / 1024, subprocess.CompletedProcess(cmd, proc.returncode, out, err)
