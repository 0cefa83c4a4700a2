"""A nightly job's rerun with nothing changed: what the driver costs per object already in the output. The
same folder of small Markdown files (one section each: the conversion itself is cheap, so the planning and
commit costs show) is converted once, then run again as the nightly incremental job does, at growing
sizes; each run is a fresh `unitok run` process on the local driver. Reported per size: the first run's
wall time, the rerun's wall time and the driver's peak PSS in the rerun, the data files per table, and the
slopes per 1,000 objects (least squares).

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

UNITOK = [sys.executable, "-m", "unitok.pipeline.cli"]


def make_source(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"note-{i:06d}.md").write_text(f"# Note {i}\n\nThe river rose {i} cm overnight.\n")


def data_files(out: Path) -> dict[str, int]:
    from deltalake import DeltaTable

    return {t: len(DeltaTable(str(out / t)).file_uris()) for t in ("segments", "documents", "chunks", "objects")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,4000,10000")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="unitok-rerun-") as tmp:
            src, out = Path(tmp) / "src", Path(tmp) / "out"
            make_source(src, n)
            job = Path(tmp) / "job.yaml"
            job.write_text(json.dumps({"mode": "incremental", "source": {"uri": str(src)},
                                       "output": {"uri": str(out)},
                                       "runtime": {"executor": "local", "max_workers": args.workers}}))  # fmt: skip
            first_s, _, _, first = measure_driver([*UNITOK, "run", str(job)])
            assert first.returncode == 0, first.stderr[-2000:]
            rerun_s, _, driver_mib, again = measure_driver([*UNITOK, "run", str(job)])
            assert again.returncode == 0, again.stderr[-2000:]
            files = data_files(out)
        rows.append((n, first_s, rerun_s, driver_mib, files))
        print(f"{n:>6} objects: first run {first_s:6.1f} s, rerun {rerun_s:5.2f} s, rerun driver peak "
              f"{driver_mib:6.1f} MiB, data files {files}", flush=True)  # fmt: skip
    if len(rows) > 1:
        n = np.array([r[0] for r in rows], dtype=float) / 1000
        for name, col in (("rerun wall s", 2), ("rerun driver MiB", 3)):
            slope = np.polyfit(n, np.array([r[col] for r in rows]), 1)[0]
            print(f"{name}: {slope:+.3f} per 1,000 objects")


if __name__ == "__main__":
    main()
