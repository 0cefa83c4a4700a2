"""Seeded mutation fuzzing of every input format through the real stage functions (split, engines,
assembly: convert_file, as the HTTP endpoint and a job use them), each case in a worker process.

A case passes when it ends as segments or as error rows. A finding is a case that hangs past the time
limit, kills its worker (a crash in native code), lets an exception escape the stage functions, leaves no
row at all, or leaves a file open (a descriptor leak: a long-lived worker would run out).
Mutations: bit flips, truncation, an overwritten block, a duplicated block, and a header spliced onto
another format's body. Every case is reproducible from (seed, format, index)."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CASE_LIMIT_S = 300.0  # a hang guard far above any case's work; never a speed target
MUTATIONS = ("bitflip", "truncate", "overwrite", "duplicate", "splice")


@dataclass(frozen=True)
class Case:
    fmt: str
    index: int
    mutation: str
    path: Path


@dataclass(frozen=True)
class Finding:
    case: Case
    kind: str  # hang, crash, escaped
    detail: str


def mutate(data: bytes, other: bytes, mutation: str, rng: random.Random) -> bytes:
    buf = bytearray(data)
    n = len(buf)
    if mutation == "bitflip":
        for _ in range(rng.randint(1, 32)):
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
    elif mutation == "truncate":
        del buf[rng.randrange(n) :]
    elif mutation == "overwrite":
        i = rng.randrange(n)
        size = min(rng.choice((1, 4, 16, 256, 4096)), n - i)
        buf[i : i + size] = rng.randbytes(size)
    elif mutation == "duplicate":
        i = rng.randrange(n)
        size = min(rng.choice((16, 256, 4096, 65536)), n - i)
        buf[i:i] = buf[i : i + size] * rng.randint(2, 8)
    elif mutation == "splice":
        k = rng.choice((8, 64, 512, 4096))
        buf = bytearray(data[:k] + other[k:])
    return bytes(buf)


def make_cases(seeds: dict[str, Path], per_format: int, seed: int, folder: Path) -> list[Case]:
    """per_format mutated copies of each format's seed file, written to folder."""
    formats = sorted(seeds)
    cases = []
    for f_i, fmt in enumerate(formats):
        data = seeds[fmt].read_bytes()
        other = seeds[formats[(f_i + 1) % len(formats)]].read_bytes()
        for i in range(per_format):
            rng = random.Random(f"{seed}:{fmt}:{i}")
            mutation = MUTATIONS[i % len(MUTATIONS)]
            path = folder / f"{fmt}-{i:04d}-{mutation}{seeds[fmt].suffix}"
            path.write_bytes(mutate(data, other, mutation, rng))
            cases.append(Case(fmt, i, mutation, path))
    return cases


def _worker(conn: Any, cfg_data: dict[str, Any]) -> None:
    """Convert each path received; answer with what came out, or the exception that escaped."""
    from unitok.actors.registry import engine_options
    from unitok.pipeline.core.config import JobConfig
    from unitok.pipeline.stages.convert import EnginePool
    from unitok.pipeline.stages.convert_file import convert_file

    cfg = JobConfig.model_validate(cfg_data)
    engines = EnginePool(engine_options(cfg))
    while True:
        path = conn.recv()
        if path is None:
            return
        try:
            before = _open_files()
            out = convert_file(Path(path), Path(path).name, cfg, engines, "fuzz")
            conn.send(
                {
                    "segments": len(out["segments"]),
                    "document": out["document"] is not None,
                    "errors": [(e["stage"], e["error_type"]) for e in out["errors"]],
                    # The case's own file, or a unitok temporary one: a library's first-use files (a model
                    # cache, a telemetry database) opened once are not leaks.
                    "leaked": sorted(f for f in _open_files() - before if f == path or "/unitok-" in f),
                }
            )
        except BaseException as e:  # noqa: BLE001 - that it escaped is the finding
            conn.send({"escaped": f"{type(e).__name__}: {e}"[:500]})


def _open_files() -> set[str]:
    """The files this process holds open (Linux): a case that leaves one open leaks a descriptor."""
    import os

    out = set()
    for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
            out.add(target)
    return out


class Worker:
    def __init__(self, cfg_data: dict[str, Any]):
        ctx = mp.get_context("spawn")  # a clean interpreter: no inherited threads or Ray state
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, cfg_data), daemon=True)
        self.proc.start()
        child.close()

    def run(self, path: Path, limit_s: float) -> tuple[str, Any]:
        self.conn.send(str(path))
        if not self.conn.poll(limit_s):
            return "hang", f"no answer after {limit_s:.0f} s"
        try:
            return "answer", self.conn.recv()
        except EOFError:
            self.proc.join(5)
            return "crash", f"worker exited with code {self.proc.exitcode}"

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)


def run_cases(
    cases: list[Case], cfg_data: dict[str, Any], limit_s: float = CASE_LIMIT_S, progress: bool = False
) -> tuple[list[Finding], dict[str, dict[str, int]]]:
    """(findings, outcome counts per format). One worker converts the cases in turn; a hung or dead
    worker is replaced and the run goes on."""
    findings: list[Finding] = []
    counts: dict[str, dict[str, int]] = {}
    worker = Worker(cfg_data)
    try:
        for done, case in enumerate(cases):
            if progress and done % 100 == 0:
                print(f"  {done}/{len(cases)} cases, {len(findings)} findings", file=sys.stderr, flush=True)
            kind, answer = worker.run(case.path, limit_s)
            tally = counts.setdefault(case.fmt, {"document": 0, "error rows only": 0, "finding": 0})
            if kind != "answer" or "escaped" in answer:
                detail = answer["escaped"] if kind == "answer" else answer
                findings.append(Finding(case, kind if kind != "answer" else "escaped", detail))
                tally["finding"] += 1
                if kind != "answer":
                    worker.proc.kill()
                    worker.stop()
                    worker = Worker(cfg_data)
                continue
            if not answer["document"] and not answer["errors"]:
                findings.append(Finding(case, "lost", "neither a document nor an error row"))
                tally["finding"] += 1
                continue
            if answer.get("leaked"):
                findings.append(Finding(case, "leak", f"left open: {', '.join(answer['leaked'])}"))
                tally["finding"] += 1
                continue
            tally["document" if answer["document"] else "error rows only"] += 1
    finally:
        worker.stop()
    return findings, counts


def default_seeds() -> dict[str, Path]:
    corpus = Path(os.environ.get("UNITOK_CORPUS", REPO.parent / "shared" / "corpus"))
    seeds = {
        "pdf": REPO / "sample" / "field-report.pdf",
        "scan": REPO / "sample" / "scanned-memo.pdf",
        "png": REPO / "sample" / "signup-sheet.png",
        "mp4": REPO / "sample" / "talk.mp4",
        "pptx": corpus / "pptx" / "fake-power-point.pptx",
        "ppt": corpus / "ppt" / "fake-power-point.ppt",
        "jpg": corpus / "image" / "example.jpg",
        "wav": corpus / "audio" / "CantinaBand3.wav",
    }
    return {k: v for k, v in seeds.items() if v.is_file()}


def main() -> None:
    """make fuzz: many cases per format, a table of outcomes, every finding listed."""
    import argparse
    import json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=300, help="cases per format")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--formats", default="", help="comma-separated subset of " + ",".join(default_seeds()))
    args = p.parse_args()
    seeds = default_seeds()
    if args.formats:
        seeds = {k: v for k, v in seeds.items() if k in args.formats.split(",")}
    folder = Path(tempfile.mkdtemp(prefix="unitok-fuzz-"))
    try:
        cases = make_cases(seeds, args.cases, args.seed, folder)
        cfg = {"source": {"uri": str(folder)}, "output": {"uri": str(folder / "out")}}
        findings, counts = run_cases(cases, cfg, progress=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for fmt, tally in sorted(counts.items()):
        print(f"{fmt:5s} {json.dumps(tally)}")
    for f in findings:
        where = f"{f.case.fmt} #{f.case.index} ({f.case.mutation}, seed {args.seed})"
        print(f"FINDING {f.kind}: {where}: {f.detail}")
    print(f"{sum(sum(t.values()) for t in counts.values())} cases, {len(findings)} findings")
    raise SystemExit(1 if findings else 0)


if __name__ == "__main__":
    main()
