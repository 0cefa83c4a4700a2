"""A whole conversion against raw text extraction, same run, start-up included: `unitok run` with the demo
config (Markdown, tables, chunks) on the corpus's two long PDFs against pypdfium2's raw text of every page
(a fresh process each, as a user runs them), on 1 and 2 workers, with and without chunking; where a run's
time goes; and the small job `executor: auto` must not send to Ray (15 small corpus files: auto against
the local and Ray drivers).

    python bench/bench_speed.py --corpus ../shared/corpus
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
LONG = ["DA-619p.pdf", "pdf2image-memory-error-test-400p.pdf"]
RAW = (
    "import sys, pypdfium2 as pdfium\n"
    "pdf = pdfium.PdfDocument(sys.argv[1])\n"
    "for i in range(len(pdf)):\n"
    "    page = pdf[i]; text = page.get_textpage(); text.get_text_range(); text.close(); page.close()\n"
)
# Run inside the measured process (forked workers inherit it): when each part and the object's finish
# ran, and the finish's stages, on stderr.
TIMELINE = """
import sys, time
T0 = time.perf_counter()
from unitok.pipeline.stages import per_object as PO
def wrap(f, name):
    def timed(self, *a):
        t = time.perf_counter(); r = f(self, *a)
        print(f"@ {name} {a[1] if name == 'pages' else ''} {t - T0:.2f} {time.perf_counter() - T0:.2f}"
              + (f" {r['timings']}" if name == 'finish' else ''), file=sys.stderr, flush=True)
        return r
    return timed
PO.ObjectConverter.convert_pages = wrap(PO.ObjectConverter.convert_pages, "pages")
PO.ObjectConverter.finish_pages = wrap(PO.ObjectConverter.finish_pages, "finish")
PO.ObjectConverter.convert = wrap(PO.ObjectConverter.convert, "object")
from unitok.pipeline.cli import main
print(f"@ imports 0 {time.perf_counter() - T0:.2f}", file=sys.stderr, flush=True)
rc = main(["run", sys.argv[1]])
print(f"@ done 0 {time.perf_counter() - T0:.2f}", file=sys.stderr, flush=True)
sys.exit(rc)
"""


def job(work: Path, files: list[Path], executor: str, workers: int, chunks: bool = True) -> Path:
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(work / "out", ignore_errors=True)
    src.mkdir(parents=True)
    for f in files:
        shutil.copy(f, src / f.name)  # copies: a folder source skips symbolic links unless told
    demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    demo["source"] = {"uri": str(src), "include": demo["source"]["include"]}
    demo["output"]["uri"] = str(work / "out")
    demo["runtime"] = {**demo.get("runtime", {}), "executor": executor, "max_workers": workers}
    demo["chunking"]["enabled"] = chunks
    path = work / "job.yaml"
    path.write_text(yaml.safe_dump(demo))
    return path


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return wall, p


def best(cmd: list[str], env: dict[str, str], repeat: int) -> tuple[float, subprocess.CompletedProcess]:
    runs = [timed(cmd, env) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (the fastest is kept)")
    args = ap.parse_args()
    if not (args.corpus / "pdf").is_dir():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_THREAD_LIMIT": "1"}
    unitok = str(Path(sys.executable).parent / "unitok")
    import pypdfium2 as pdfium

    print(f"{os.cpu_count()} cores; fastest of {args.repeat}; wall seconds, start-up included")
    print(f"{'file':<40}{'pages':>6}{'raw s':>7}  {'workers':>7}{'chunks':>7}{'unitok s':>9}{'pages/s':>8}"
          f"{'× raw':>7}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="unitok-speed-") as tmp:
        work = Path(tmp)
        for name in LONG:
            pdf = args.corpus / "pdf" / name
            pages = len(pdfium.PdfDocument(str(pdf)))
            raw, _ = best([sys.executable, "-c", RAW, str(pdf)], env, args.repeat)
            for workers, chunks in ((1, True), (2, True), (2, False)):
                path = job(work, [pdf], "local", workers, chunks)
                wall, _ = best([unitok, "run", str(path)], env, args.repeat)
                print(f"{name:<40}{pages:>6}{raw:>7.2f}  {workers:>7}{'yes' if chunks else 'no':>7}"
                      f"{wall:>9.2f}{pages / wall:>8.0f}{wall / raw:>7.1f}")  # fmt: skip
            path = job(work, [pdf], "local", 2, True)
            _, p = timed([sys.executable, "-c", TIMELINE, str(path)], env)
            steps = [line[2:] for line in p.stderr.splitlines() if line.startswith("@ ")]
            print("  where a 2-worker run's time goes (seconds since the process started):")
            for step in steps:
                print(f"    {step}")
        small = sorted((p for p in args.corpus.rglob("*") if p.is_file() and p.name not in LONG
                        and p.suffix.lower() in (".pdf", ".png", ".jpg", ".pptx")),
                       key=lambda p: p.stat().st_size)[:15]  # fmt: skip
        size = sum(p.stat().st_size for p in small) / 2**20
        print(f"\nsmall job: {len(small)} corpus files, {size:.1f} MiB")
        walls = {}
        for executor in ("auto", "local", "ray"):
            path = job(work, small, executor, os.cpu_count() or 1)
            walls[executor], p = best([unitok, "run", str(path)], env, args.repeat)
            chosen = next(
                (line.split()[-1] for line in p.stdout.splitlines() if line.startswith("executor")), "?"
            )
            print(f"  executor {executor:<6} ran {chosen:<6} {walls[executor]:>6.2f} s")
        faster = min(walls["local"], walls["ray"])
        print(f"  auto / faster driver: {walls['auto'] / faster:.2f} (target 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
