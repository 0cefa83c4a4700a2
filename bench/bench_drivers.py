"""The three drivers on one machine, same run, same cores: `unitok run` with runtime.executor local, ray
and beam (Beam's DirectRunner, worker processes), each a fresh process as a user runs it.

Cases: one one-page PDF (the fixed start-up cost of each driver: listing, pool/Ray/Beam start, commit),
the corpus's two long PDFs, and the held-in corpus (every file the demo config takes: PDFs, scans,
images, decks, audio, bad files). Throughput is pages (segments) per second, start-up included, and the
same figure with the one-page run's time taken off. Memory is the peak PSS of the whole process tree.

    python bench/bench_drivers.py --corpus ../shared/corpus
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import yaml
from tree_memory import measure

REPO = Path(__file__).resolve().parent.parent
LONG = ["DA-619p.pdf", "pdf2image-memory-error-test-400p.pdf"]
EXECUTORS = ("ray", "local", "beam")


def run_cmd(files: list[Path], work: Path, executor: str, workers: int) -> list[str]:
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    for f, rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f.resolve(), src / rel)
    demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    job = {
        "source": {"uri": str(src), "include": demo["source"]["include"], "follow_symlinks": True},
        "output": {"uri": str(work / "out")},
        "runtime": {"executor": executor, "max_workers": workers, "num_cpus": workers},
    }
    (work / "job.yaml").write_text(yaml.safe_dump(job))
    return [str(Path(sys.executable).parent / "unitok"), "run", str(work / "job.yaml")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=1, help="runs per case and executor (the best is kept)")
    args = ap.parse_args()
    if not (args.corpus / "pdf").is_dir():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    held_in = [(p, str(p.relative_to(args.corpus))) for p in sorted(args.corpus.rglob("*"))
               if p.is_file() and p.name not in LONG]  # fmt: skip
    cases = [
        ("start-up: 1-page PDF", [(args.corpus / "pdf" / "fake-memo.pdf", "fake-memo.pdf")]),
        *[(name, [(args.corpus / "pdf" / name, name)]) for name in LONG],
        (f"held-in corpus ({len(held_in)} files)", held_in),
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_THREAD_LIMIT": "1"}
    print(f"{args.workers} workers per executor, {os.cpu_count()} cores; best of {args.repeat}")
    print(f"{'case':<38}{'executor':<9}{'pages':>6}{'wall s':>8}{'pages/s':>9}{'net pages/s':>12}{'MiB':>7}"
          f"{'vs ray':>8}")  # fmt: skip
    startup: dict[str, float] = {}
    for name, files in cases:
        walls: dict[str, float] = {}
        for executor in EXECUTORS:
            best = None
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as tmp:
                    wall, mem, p = measure(run_cmd(files, Path(tmp), executor, args.workers), env)
                if p.returncode != 0:
                    print(f"{executor} failed on {name}:\n{p.stderr[-2000:]}", file=sys.stderr)
                    return 1
                if best is None or wall < best[0]:
                    best = (wall, mem, p.stdout)
            wall, mem, out = best
            pages = int(re.search(r"segments written\s+(\d+)", out).group(1))
            if pages == 0:
                print(f"{executor} converted nothing on {name}:\n{out}", file=sys.stderr)
                return 1
            walls[executor] = wall
            if name.startswith("start-up"):
                startup[executor] = wall
            net = pages / (wall - startup[executor]) if wall > startup[executor] + 0.5 else float("nan")
            print(f"{name:<38}{executor:<9}{pages:>6}{wall:>8.1f}{pages / wall:>9.1f}{net:>12.1f}{mem:>7.0f}"
                  f"{walls['ray'] / wall if 'ray' in walls else float('nan'):>8.2f}")  # fmt: skip
    print("net pages/s: the one-page run's wall time (each driver's fixed cost) taken off.")
    print("vs ray: the Ray driver's wall time / this driver's (above 1: faster than Ray).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
