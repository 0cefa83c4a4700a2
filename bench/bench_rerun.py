"""A nightly job's rerun with nothing changed: what the driver costs per object already in the output. The
same folder of small Markdown files (one section each: the conversion itself is cheap, so the planning and
commit costs show) is converted once, then run again as the nightly incremental job does, at growing
sizes; each run is a fresh `unitok run` process on the local driver. Reported per size: the first run's
wall time, the rerun's wall time and the driver's peak RSS in the rerun (the kernel's high-water mark;
PSS, which splits shared pages among whatever else maps them, moved with other processes on the
machine), the data files per table, and the slopes per 1,000 objects (least squares).

    python bench/bench_rerun.py --sizes 1000,4000,10000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from tree_memory import measure_driver

# Runs the command and prints the high-water RSS of its process tree's largest process, in KiB: in a
# rerun with nothing to convert, the driver (no worker starts).
PEAK_RSS = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print('peak-rss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(r.returncode)")  # fmt: skip

UNITOK = [sys.executable, "-m", "unitok.pipeline.cli"]


def make_source(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"note-{i:06d}.md").write_text(f"# Note {i}\n\nThe river rose {i} cm overnight.\n")


def data_files(out: Path) -> dict[str, int]:
    from deltalake import DeltaTable

    return {
        t: len(DeltaTable(str(out / t)).file_uris()) for t in ("segments", "documents", "chunks", "objects")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,4000,10000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--compact-at-files", type=int, default=512, help="output.compact_at_files (0: off)")
    args = ap.parse_args()
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="unitok-rerun-") as tmp:
            src, out = Path(tmp) / "src", Path(tmp) / "out"
            make_source(src, n)
            job = Path(tmp) / "job.yaml"
            output = {"uri": str(out), "compact_at_files": args.compact_at_files}
            runtime = {"executor": "local", "max_workers": args.workers}
            job.write_text(json.dumps({"mode": "incremental", "source": {"uri": str(src)}, "output": output,
                                       "runtime": runtime}))  # fmt: skip
            first_s, _, _, first = measure_driver([*UNITOK, "run", str(job)])
            assert first.returncode == 0, first.stderr[-2000:]
            rerun_s, _, _, again = measure_driver([sys.executable, "-c", PEAK_RSS, *UNITOK, "run", str(job)])
            assert again.returncode == 0, again.stderr[-2000:]
            driver_mib = int(again.stderr.rsplit("peak-rss ", 1)[1].split()[0]) / 1024
            files = data_files(out)
        rows.append((n, first_s, rerun_s, driver_mib, files))
        print(f"{n:>6} objects: first run {first_s:6.1f} s, rerun {rerun_s:5.2f} s, rerun driver peak "
              f"RSS {driver_mib:6.1f} MiB, data files {files}", flush=True)  # fmt: skip
    if len(rows) > 1:
        n = np.array([r[0] for r in rows], dtype=float) / 1000
        for name, col in (("rerun wall s", 2), ("rerun driver MiB", 3)):
            slope = np.polyfit(n, np.array([r[col] for r in rows]), 1)[0]
            print(f"{name}: {slope:+.3f} per 1,000 objects")


if __name__ == "__main__":
    main()
