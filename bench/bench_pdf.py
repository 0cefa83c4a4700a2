"""PDF throughput and peak memory: `unitok run` against a peer (markitdown) in the same run.

Both are measured as a user runs them: a fresh process per case, start-up included (unitok's includes
starting the embedded Ray). Memory is the peak sum of PSS over the whole process tree (Ray's raylet,
GCS and workers included; PSS splits shared pages so the object store is not counted twice).

    python bench/bench_pdf.py --corpus ../shared/corpus
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pypdfium2 as pdfium
from tree_memory import measure

REPO = Path(__file__).resolve().parent.parent
LONG = ["DA-619p.pdf", "pdf2image-memory-error-test-400p.pdf"]


def unitok_cmd(files: list[Path], work: Path, executor: str) -> list[str]:
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for f in files:
        os.symlink(f, src / f.name)
    job = work / "job.yaml"
    job.write_text(
        f"source:\n  uri: {src}\n  follow_symlinks: true\noutput:\n  uri: {work / 'out'}\n"
        f"runtime:\n  executor: {executor}\n"
    )
    return [str(Path(sys.executable).parent / "unitok"), "run", str(job)]


def peer_cmd(files: list[Path]) -> list[str]:
    code = (
        "import sys; from markitdown import MarkItDown; md = MarkItDown()\n"
        "for f in sys.argv[1:]:\n    md.convert(f)\n"
    )
    return [sys.executable, "-c", code, *map(str, files)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    args = ap.parse_args()
    pdf_dir = args.corpus / "pdf"
    if not pdf_dir.is_dir():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    short = sorted(p for p in pdf_dir.glob("*.pdf") if p.name not in LONG)
    cases = [("corpus PDFs (short)", short)] + [(name, [pdf_dir / name]) for name in LONG]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_THREAD_LIMIT": "1"}
    print(f"{'case':<38}{'pages':>6}  {'executor':<9}{'unitok s':>9} {'pages/s':>8} {'MiB':>6}  "
          f"{'peer s':>7} {'pages/s':>8} {'MiB':>5}  {'speed ×':>7}")  # fmt: skip
    for name, files in cases:
        pages = sum(len(pdfium.PdfDocument(f)) for f in files)
        p_wall, p_mem, p = measure(peer_cmd(files), env)
        if p.returncode != 0:
            print(f"peer failed on {name}:\n{p.stderr[-2000:]}", file=sys.stderr)
            return 1
        for executor in ("auto", "ray"):
            with tempfile.TemporaryDirectory() as tmp:
                u_wall, u_mem, u = measure(unitok_cmd(files, Path(tmp), executor), env)
            if u.returncode != 0:
                print(f"unitok failed on {name}:\n{u.stderr[-2000:]}", file=sys.stderr)
                return 1
            print(
                f"{name:<38}{pages:>6}  {executor:<9}{u_wall:>9.1f} {pages / u_wall:>8.1f} {u_mem:>6.0f}  "
                f"{p_wall:>7.1f} {pages / p_wall:>8.1f} {p_mem:>5.0f}  {p_wall / u_wall:>7.2f}"
            )
    print("unitok auto = the default (local executor for small jobs); ray = forced Ray Data, embedded Ray")
    print(
        "started per case. peer: markitdown 0.1.8 (pdfminer.six), one process. speed × = peer s / unitok s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
