"""How close `unitok plan`'s estimate comes to the run: plan, then run, the same job on the same machine,
for a few folders (mixed sample files; a long text PDF; scanned pages), and the ratio estimate / actual.

    python bench/bench_plan.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
CLI = [sys.executable, "-m", "unitok.pipeline.cli"]


def folder(work: Path, name: str, files: list[Path]) -> Path:
    dst = work / name
    dst.mkdir()
    for f in files:
        shutil.copy(f, dst / f.name)
    return dst


def measure(src: Path, work: Path, executor: str) -> tuple[float, float]:
    job = work / f"{src.name}-{executor}.yaml"
    out = work / f"{src.name}-{executor}-out"
    job.write_text(f"source:\n  uri: {src}\noutput:\n  uri: {out}\nruntime:\n  executor: {executor}\n")
    plan = json.loads(subprocess.run([*CLI, "plan", str(job), "--json"], capture_output=True, text=True,
                                     check=True).stdout)  # fmt: skip
    t0 = time.perf_counter()
    summary = json.loads(subprocess.run([*CLI, "run", str(job), "--json"], capture_output=True, text=True,
                                        check=True).stdout)  # fmt: skip
    wall = time.perf_counter() - t0
    return plan["estimate"]["wall_s"], min(wall, summary["elapsed_s"])


def main() -> None:
    sample = REPO / "sample"
    work = Path(tempfile.mkdtemp(prefix="unitok-bench-plan-"))
    flac = work / "talk.flac"
    subprocess.run(
        ["ffmpeg", "-y", "-v", "error", "-i", str(sample / "talk.mp4"), "-vn", str(flac)], check=True
    )
    cases = {
        "mixed": [*sample.glob("*.*"), CORPUS / "pptx" / "sample-presentation.pptx", flac],
        "long-text-pdf": [CORPUS / "pdf" / "DA-619p.pdf"],
        "scans": [CORPUS / "pdf" / "layout-parser-paper-fast.pdf", sample / "scanned-memo.pdf",
                  CORPUS / "image" / "layout-parser-paper-fast.tiff", CORPUS / "image" / "DA-1p.png"],
    }  # fmt: skip
    print("| case | executor | estimate s | run s | estimate / run |\n|---|---|---|---|---|")
    for name, files in cases.items():
        src = folder(work, name, [f for f in files if f.is_file()])
        for executor in ("local", "ray"):
            est, actual = measure(src, work, executor)
            print(f"| {name} | {executor} | {est:.1f} | {actual:.1f} | {est / actual:.2f} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
