"""Ray's staged plan against one worker per object (runtime.ray_plan: staged | per_object), on this
machine's cores, each run a fresh process that starts its own local Ray as `unitok run` does (the
unitok.pipeline.drivers.ray_data.ensure_ray it calls) and then runs `run_job`. One JSON document on stdout.

1. Speed, same run: scanned pages and recordings through both plans, alternating (S P, P S, S P, ...), so
   drift on a shared machine falls on both. Per plan: every repetition's wall time and the median; the
   ratio per_object / staged (above 1: staged faster) on the run's own time (`run_s`: from run_job's
   start, Ray already up), on the whole process (`process_s`: Python, imports and Ray's start-up too) and
   on the CPU seconds of the run's process tree (`cpu_s`: the work done, whatever else ran on the machine).
   The engine pool's busy fraction, as the run summary gives it (engine seconds / replicas x the run's
   converting seconds, start-up and the tail included), and in steady state (see busy_figures).
   Inputs, made by the script: image-only PDFs (pages of the corpus' DA-619p.pdf rendered at 150 dpi,
   grayscale: a scan, so every page goes to Tesseract), the corpus' two scanned PDFs (single_table.pdf,
   pdf-with-ocr-text.pdf), recordings of the sample talk's speech looped (16 kHz WAV) and the corpus' WAV.
2. Soak: N copies of a cut of the corpus' 400-page PDF (4, 10, 20 copies of 20 pages), and the whole PDF
   once (one object larger than a small budget), every page forced to OCR at the default 300 dpi
   (pdf.min_text_chars 0, min_text_quality 1, reocr_below_quality 1: its text layers count as poor), so
   the splitter renders pages (about 0.3 MiB each) faster than the engines read them. Per size and
   runtime.object_store_mib: the object store's peak use (the raylet's store stats, sampled in the run's
   process every 0.2 s), spilled bytes, and the peak PSS of the process tree, of Ray's workers and of the
   driver (sampled from outside every 0.2 s, bench/tree_memory.py).

    python bench/bench_staged.py --corpus ../shared/corpus            # about 30 minutes on 2 cores
    python bench/bench_staged.py --skip-soak --repeat 1                # the speed part once

Where others commit to the checkout during the runs, import unitok from a snapshot of one commit
(PYTHONPATH to a folder whose unitok/ holds api/ with pipeline/, actors/ and connectors/ beside it): Ray
starts worker processes through a run, and a commit landing mid-run mixes versions inside it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tree_memory import _children, _pss_kib

REPO = Path(__file__).resolve().parent.parent
MARK = "BENCH_STAGED_RESULT "  # the child's result line (Ray's workers may print on the same streams)
POOLED = ("tesseract", "whisper", "phi4", "vllm")
LONG_PDF = "pdf2image-memory-error-test-400p.pdf"
FORCE_OCR = {"min_text_chars": 0, "min_text_quality": 1.0, "reocr_below_quality": 1.0}


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


# -- inputs -----------------------------------------------------------------------------------------------


def make_scans(corpus: Path, folder: Path, sizes: list[int], dpi: int = 150) -> int:
    """Image-only PDFs of `sizes` pages each (DA-619p's pages from page 6 on, grayscale at `dpi`), and the
    corpus' scanned PDFs. Returns the pages."""
    import pypdfium2 as pdfium

    folder.mkdir(parents=True, exist_ok=True)
    pdf = pdfium.PdfDocument(corpus / "pdf" / "DA-619p.pdf")
    page = 5
    for i, n in enumerate(sizes):
        images = []
        for _ in range(n):
            images.append(pdf[page % len(pdf)].render(scale=dpi / 72, grayscale=True).to_pil())
            page += 1
        images[0].save(folder / f"scan-{i:02d}-{n}p.pdf", "PDF", resolution=dpi, save_all=True,
                       append_images=images[1:])  # fmt: skip
    for name in ("single_table.pdf", "pdf-with-ocr-text.pdf"):
        shutil.copy(corpus / "pdf" / name, folder / name)
    return sum(sizes) + 2


def make_recordings(corpus: Path, folder: Path, seconds: list[float]) -> float:
    """WAV recordings (16 kHz mono) of the sample talk's speech, looped, each from another offset, and the
    corpus' WAV files. Returns the seconds of audio."""
    import wave

    folder.mkdir(parents=True, exist_ok=True)
    talk = REPO / "sample" / "talk.mp4"
    for i, s in enumerate(seconds):
        sh("ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(talk), "-ss",
           f"{(i * 1.7) % 12:.2f}", "-t", f"{s:g}", "-vn", "-ac", "1", "-ar", "16000",
           str(folder / f"talk-{i:02d}.wav"))  # fmt: skip
    total = float(sum(seconds))
    for wav in sorted((corpus / "audio").glob("*.wav")):
        shutil.copy(wav, folder / wav.name)
        with wave.open(str(wav)) as w:
            total += w.getnframes() / w.getframerate()
    return round(total, 1)


def make_cut(corpus: Path, target: Path, pages: int) -> None:
    """The first `pages` pages of the corpus' 400-page PDF, as a PDF of their own."""
    import pypdfium2 as pdfium

    src = pdfium.PdfDocument(corpus / "pdf" / LONG_PDF)
    cut = pdfium.PdfDocument.new()
    cut.import_pages(src, list(range(min(pages, len(src)))))
    target.parent.mkdir(parents=True, exist_ok=True)
    cut.save(target)


# -- the child: one run in a fresh process -----------------------------------------------------------------


class StoreSampler:
    """The object store's use (all nodes: here one) every `every` seconds, from the raylet's store stats
    (what `ray memory --stats-only` prints), in a thread of the run's process."""

    def __init__(self, every: float = 0.2):
        self.every = every
        self.samples: list[tuple[float, int, int, int]] = []  # (time.time(), used, primary copies, objects)
        self.last: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="store-sampler", daemon=True)

    def __enter__(self) -> StoreSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        from ray._private import state
        from ray._private.internal_api import get_memory_info_reply

        while not self._stop.is_set():
            try:
                st = get_memory_info_reply(state.state, timeout_seconds=5).store_stats
            except Exception:  # noqa: BLE001 - a missed sample (the raylet busy, or going)
                st = None
            if st is not None:
                self.last = st
                sample = (time.time(), st.object_store_bytes_used, st.object_store_bytes_primary_copy,
                          st.num_local_objects)  # fmt: skip
                self.samples.append(sample)
            self._stop.wait(self.every)

    def figures(self) -> dict[str, Any]:
        if not self.samples:
            return {"samples": 0}
        mib = 1 / 2**20
        used = [s[1] for s in self.samples]
        peak = max(range(len(used)), key=used.__getitem__)
        st = self.last
        return {
            "samples": len(self.samples),
            "peak_used_mib": round(used[peak] * mib, 1),
            "peak_at_s": round(self.samples[peak][0] - self.samples[0][0], 1),
            "peak_primary_mib": round(max(s[2] for s in self.samples) * mib, 1),
            "peak_objects": max(s[3] for s in self.samples),
            "mean_used_mib": round(statistics.fmean(used) * mib, 1),
            "capacity_mib": round(st.object_store_bytes_avail * mib),
            "spilled_mib": round(st.spilled_bytes_total * mib, 1),
            "fallback_mib": round(st.object_store_bytes_fallback * mib, 1),
        }


def engine_calls(rows: list[dict[str, Any]]) -> list[tuple[float, float, int]]:
    """The pooled engines' calls, (start, end, segments), rebuilt from the segments table: a row's
    processed_at is stamped as its call returns and its elapsed_ms is the call's time over its segments
    (to the microsecond), so one call's rows have the same elapsed_ms and processed_at close together
    (within 2 s here: a loaded machine may pause between rows)."""
    rows = sorted((r["processed_at"].timestamp(), r["elapsed_ms"] / 1000) for r in rows)
    calls: list[list[float]] = []  # [first end, last end, per-segment seconds, segments]
    for end, each in rows:
        c = calls[-1] if calls else None
        if c is not None and abs(c[2] - each) < 1e-6 and end - c[1] < 2.0:
            c[1], c[3] = end, c[3] + 1
        else:
            calls.append([end, end, each, 1])
    return [(c[0] - c[2] * c[3], c[0], int(c[3])) for c in calls]


def busy_figures(
    calls: list[tuple[float, float, int]], run_start: float, run_end: float, pool: int
) -> dict[str, Any]:
    """The busy fraction of a pool of `pool` replicas from its engines' calls (OCR and ASR share the pool):
    the seconds inside calls (at most `pool` at once) / (pool x the window's seconds), over windows:
    - `run`: run_job's start to its end (Ray already up): listing, the replicas' start and the engines'
      load, the last assemblies and the commits included;
    - `engine_span`: the first call's start to the last call's end (the engines' load and the run's
      start-up before it, the assemblies and commits after it, left out);
    - `steady`: from the first moment `pool` calls ran at once (every replica up and fed) to the last
      (after it the pool drains: a replica has nothing left): the pool while it had work to share."""
    if not calls:
        return {"calls": 0}
    edges = sorted([(s, 1) for s, _, _ in calls] + [(e, -1) for _, e, _ in calls])
    steps: list[tuple[float, int]] = []  # (from this time, calls running)
    running = most = 0
    for t, d in edges:
        running += d
        most = max(most, running)
        steps.append((t, running))

    def busy(lo: float, hi: float) -> float | None:
        if hi <= lo:
            return None
        inside = 0.0
        for (t, n), (t_next, _) in zip(steps, steps[1:] + [(math.inf, 0)], strict=True):
            inside += min(n, pool) * max(0.0, min(t_next, hi) - max(t, lo))
        return round(inside / (pool * (hi - lo)), 3)

    first, last = edges[0][0], edges[-1][0]
    full = [i for i, (_, n) in enumerate(steps) if n >= pool]
    steady: dict[str, Any] = {"busy_fraction": None}
    if full:
        lo, hi = steps[full[0]][0], steps[full[-1] + 1][0]
        steady = {"from_s": round(lo - run_start, 1), "s": round(hi - lo, 1), "busy_fraction": busy(lo, hi)}
    return {
        "calls": len(calls),
        "pool": pool,
        "most_at_once": most,
        "first_call_s": round(first - run_start, 1),  # from run_job's start
        "busy_s": round(sum(e - s for s, e, _ in calls), 1),
        "run": {"s": round(run_end - run_start, 1), "busy_fraction": busy(run_start, run_end)},
        "engine_span": {"s": round(last - first, 1), "busy_fraction": busy(first, last)},
        "steady": steady,
    }


def child(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    os.environ["RAY_AUTH_MODE"] = "disabled"
    from unitok.connectors.output import read_table
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.drivers.ray_data import ensure_ray
    from unitok.pipeline.job import run_job

    raw = spec["job"]
    cfg = parse_config(raw)
    t0 = time.perf_counter()
    ensure_ray(cfg)  # as run_job would: the store sampler needs Ray up first
    ray_s = time.perf_counter() - t0
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    pool = min(cfg.runtime.max_workers or cpus, cpus)  # the engine replicas (actors) of either plan
    with StoreSampler(0.2) as store:
        start, t1 = time.time(), time.perf_counter()
        summary = run_job(cfg, raw)
        run_s = time.perf_counter() - t1
        end = time.time()
    s = summary.as_dict()
    out = raw["output"]["uri"]
    segs = read_table(out, "segments").select(["engine", "processed_at", "elapsed_ms"])
    errors = []
    if summary.failures:
        errors = [f"{e['stage']}: {e['error_type']}: {e['message']}"[:300]
                  for e in read_table(out, "errors").to_pylist()[:3]]  # fmt: skip
    pooled = [r for r in segs.to_pylist() if r["engine"] in POOLED]
    result = {
        "ray_start_s": round(ray_s, 2),
        "run_s": round(run_s, 2),
        "elapsed_s": s["elapsed_s"],
        "segments": s["segments"],
        "segments_by_engine": s["segments_by_engine"],
        "engines": s["engines"],
        "failures": summary.failures,
        "errors": errors,
        "first_commit_s": s["first_commit_s"],
        "store": store.figures(),
        "busy": busy_figures(engine_calls(pooled), start, end, pool),
    }
    print(MARK + json.dumps(result), flush=True)
    ray.shutdown()
    return 0


# -- the parent: runs, memory from outside -----------------------------------------------------------------


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read(5) == b"ray::"
    except OSError:
        return False


def _cpu_ticks(pid: int) -> tuple[int, int] | None:
    """(the process's start time, its user + system CPU time so far), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19]), int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def measure_run(
    cmd: list[str], env: dict[str, str]
) -> tuple[float, dict[str, float], subprocess.CompletedProcess]:
    """Wall seconds and peak PSS (MiB) of the process tree, of Ray's workers together (processes named
    ray::...), of the largest worker, and of the command's own process (the driver); and the most worker
    processes seen at once; and the CPU seconds the tree used (user + system, each process's last sample:
    a process that ends loses up to a sampling interval)."""
    peak = {"tree": 0, "workers": 0, "largest_worker": 0, "driver": 0}
    most = 0
    ticks: dict[tuple[int, int], int] = {}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    done = threading.Event()

    def sample() -> None:
        nonlocal most
        while not done.is_set():
            pids = _children(proc.pid)
            pss = {p: _pss_kib(p) for p in pids}
            for p in pids:
                got = _cpu_ticks(p)
                if got is not None:
                    ticks[(p, got[0])] = got[1]
            workers = [v for p, v in pss.items() if _is_worker(p)]
            now = {"tree": sum(pss.values()), "workers": sum(workers),
                   "largest_worker": max(workers, default=0), "driver": pss.get(proc.pid, 0)}  # fmt: skip
            for k, v in now.items():
                peak[k] = max(peak[k], v)
            most = max(most, len(workers))
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    return (
        wall,
        {
            **{k: round(v / 1024) for k, v in peak.items()},
            "worker_processes": most,
            "cpu_s": round(sum(ticks.values()) / os.sysconf("SC_CLK_TCK"), 1),
        },  # fmt: skip
        subprocess.CompletedProcess(cmd, proc.returncode, out, err),
    )


def run_one(job: dict[str, Any], work: Path, label: str) -> dict[str, Any]:
    out = Path(job["output"]["uri"])
    shutil.rmtree(out, ignore_errors=True)
    spec = work / "spec.json"
    spec.write_text(json.dumps({"job": job}))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_THREAD_LIMIT": "1"}
    print(f"{label} ...", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    wall, mem, done = measure_run([sys.executable, __file__, "--child", str(spec)], env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{label} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(lines[-1][len(MARK) :])
    result.update(
        process_s=round(wall, 2),
        cpu_s=mem.pop("cpu_s"),
        peak_pss_mib=mem,
        load_before=round(load, 2),
        load_after=round(os.getloadavg()[0], 2),
    )
    shutil.rmtree(out, ignore_errors=True)
    print(f"{label}: process {wall:.1f} s, run {result['run_s']:.1f} s, cpu {result['cpu_s']} s, "
          f"{result['segments']} segments, store peak {result['store'].get('peak_used_mib')} MiB, "
          f"tree peak {mem['tree']} MiB, busy {json.dumps(result['busy'].get('steady'))}",
          file=sys.stderr, flush=True)  # fmt: skip
    return result


def median(xs: list[float]) -> float:
    return round(statistics.median(xs), 2)


def speed(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    src = work / "speed-src"
    sizes = [int(x) for x in args.scans.split(",") if x]
    seconds = [float(x) for x in args.recordings.split(",") if x]
    pages = make_scans(args.corpus, src / "scans", sizes)
    audio_s = make_recordings(args.corpus, src / "audio", seconds)
    runs: dict[str, list[dict[str, Any]]] = {"staged": [], "per_object": []}
    for rep in range(args.repeat):
        order = ("staged", "per_object") if rep % 2 == 0 else ("per_object", "staged")
        for plan in order:
            job = {
                "source": {"uri": str(src)},
                "output": {"uri": str(work / "speed-out")},
                "runtime": {"executor": "ray", "ray_plan": plan},
                "audio": {"language": "en"},
            }
            runs[plan].append(run_one(job, work, f"speed {plan} #{rep + 1}"))
    staged, per_object = runs["staged"], runs["per_object"]
    ratios = {}
    for key in ("run_s", "process_s", "cpu_s"):
        ratios[key] = {
            "median_ratio": round(median([r[key] for r in per_object]) / median([r[key] for r in staged]), 3),
            # Each repetition's pair (the two runs next to each other in time).
            "pairwise": [round(p[key] / s[key], 3) for s, p in zip(staged, per_object, strict=True)],
        }

    def plan_figures(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "run_s": [r["run_s"] for r in rs],
            "run_s_median": median([r["run_s"] for r in rs]),
            "process_s": [r["process_s"] for r in rs],
            "process_s_median": median([r["process_s"] for r in rs]),
            "ray_start_s": [r["ray_start_s"] for r in rs],
            # CPU seconds of the run's whole process tree: the work done, whatever else ran on the machine.
            "cpu_s": [r["cpu_s"] for r in rs],
            "cpu_s_median": median([r["cpu_s"] for r in rs]),
            "engines": [r["engines"] for r in rs],
            "busy": [r["busy"] for r in rs],
            "peak_pss_mib": [r["peak_pss_mib"] for r in rs],
            "store_peak_mib": [r["store"].get("peak_used_mib") for r in rs],
            "segments_by_engine": rs[0]["segments_by_engine"],
            "failures": sum(r["failures"] for r in rs),
            "errors": [e for r in rs for e in r["errors"]],
            "load_before": [r["load_before"] for r in rs],
            "load_after": [r["load_after"] for r in rs],
        }

    by_engine = [{e: v["busy_fraction"] for e, v in r["engines"].items() if e in POOLED} for r in staged]
    return {
        "inputs": {
            "scanned_pdfs": sizes,
            "corpus_scans": ["single_table.pdf", "pdf-with-ocr-text.pdf"],
            "scan_pages": pages,
            "scan_dpi": 150,
            "recordings_s": seconds,
            "corpus_audio": [p.name for p in sorted((args.corpus / "audio").glob("*.wav"))],
            "audio_s": audio_s,
        },  # fmt: skip
        "repeat": args.repeat,
        "order": "alternating: S P, P S, S P, ...",
        "staged": plan_figures(staged),
        "per_object": plan_figures(per_object),
        "per_object_over_staged": ratios,
        "staged_pool_busy_fraction": {
            # The run summary's, per engine: its calls' seconds / (the replicas that made them x the run's
            # converting seconds); OCR and ASR share the pool's replicas, so the pool's is their sum.
            "run_summary_by_engine": by_engine,
            "run_summary_sum": [round(sum(b.values()), 3) for b in by_engine],
            "run": [r["busy"].get("run", {}).get("busy_fraction") for r in staged],
            "engine_span": [r["busy"].get("engine_span", {}).get("busy_fraction") for r in staged],
            "steady": [r["busy"].get("steady", {}).get("busy_fraction") for r in staged],
        },
    }


def soak_job(src: Path, work: Path, args: argparse.Namespace, bound: int) -> dict[str, Any]:
    runtime: dict[str, Any] = {"executor": "ray", "ray_plan": "staged", "object_store_mib": bound}
    if args.soak_workers:
        runtime["max_workers"] = args.soak_workers
    return {
        "source": {"uri": str(src)},
        "output": {"uri": str(work / "soak-out")},
        "runtime": runtime,
        "pdf": {**FORCE_OCR, "ocr_dpi": args.soak_dpi},
    }


def soak_row(r: dict[str, Any], bound: int, copies: int, pages: int) -> dict[str, Any]:
    keys = ("run_s", "process_s", "cpu_s", "segments", "failures", "errors", "store", "peak_pss_mib",
            "engines", "busy", "load_before", "load_after")  # fmt: skip
    return {"object_store_mib": bound, "copies": copies, "pages": pages, **{k: r[k] for k in keys}}


def soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    copies = [int(x) for x in args.soak_copies.split(",")]
    bounds = [int(x) for x in args.soak_bounds.split(",")]
    cut = work / "cut.pdf"
    make_cut(args.corpus, cut, args.soak_pages)
    rows = []
    for bound in bounds:
        for n in copies:
            src = work / f"soak-src-{n}"
            if not src.is_dir():
                src.mkdir()
                for i in range(n):
                    os.link(cut, src / f"copy-{i:02d}.pdf")
            r = run_one(soak_job(src, work, args, bound), work,
                        f"soak {n} x {args.soak_pages} pages, object_store_mib {bound}")  # fmt: skip
            rows.append(soak_row(r, bound, n, n * args.soak_pages))
    by_bound = {}
    for bound in bounds:
        rs = [r for r in rows if r["object_store_mib"] == bound]
        peaks = [r["store"]["peak_used_mib"] for r in rs]
        trees = [r["peak_pss_mib"]["tree"] for r in rs]
        span = rs[-1]["copies"] - rs[0]["copies"]
        by_bound[str(bound)] = {
            "copies": [r["copies"] for r in rs],
            "store_peak_mib": peaks,
            "store_peak_over_bound": [round(p / bound, 3) for p in peaks],
            "store_mean_mib": [r["store"]["mean_used_mib"] for r in rs],
            "spilled_mib": [r["store"]["spilled_mib"] for r in rs],
            "tree_peak_mib": trees,
            "workers_peak_mib": [r["peak_pss_mib"]["workers"] for r in rs],
            "largest_worker_peak_mib": [r["peak_pss_mib"]["largest_worker"] for r in rs],
            "driver_peak_mib": [r["peak_pss_mib"]["driver"] for r in rs],
            "worker_processes": [r["peak_pss_mib"].get("worker_processes") for r in rs],
            # Growth from the smallest to the largest size, per added copy.
            "store_mib_per_copy": round((peaks[-1] - peaks[0]) / span, 2) if span else None,
            "tree_mib_per_copy": round((trees[-1] - trees[0]) / span, 2) if span else None,
        }
    result: dict[str, Any] = {
        "inputs": {"pdf": LONG_PDF, "pages_per_copy": args.soak_pages, "copies": copies,
                   "page_png_kib": page_png_kib(cut, args.soak_dpi), "ocr_dpi": args.soak_dpi,
                   "pdf_settings": FORCE_OCR, "max_workers": args.soak_workers or "default (one per CPU)"},
        "runs": rows,
        "by_bound": by_bound,
    }  # fmt: skip
    if args.soak_whole_bound:
        # One object larger than the budget: the split task's own stream of pages must wait.
        src = work / "soak-src-whole"
        src.mkdir()
        shutil.copy(args.corpus / "pdf" / LONG_PDF, src / LONG_PDF)
        bound = args.soak_whole_bound
        r = run_one(
            soak_job(src, work, args, bound), work, f"soak the whole 400-page PDF, object_store_mib {bound}"
        )
        result["whole_pdf"] = soak_row(r, bound, 1, r["segments"])
    return result


def page_png_kib(pdf_path: Path, dpi: int, n: int = 10) -> float:
    """The mean size of a page as the splitter renders it for OCR (grayscale PNG), over the first n."""
    import pypdfium2 as pdfium
    from unitok.pipeline.formats.pdf import render_page_png

    pdf = pdfium.PdfDocument(pdf_path)
    sizes = [len(render_page_png(pdf[i], dpi)) for i in range(min(n, len(pdf)))]
    return round(statistics.fmean(sizes) / 1024, 1)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True)  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus = os.environ.get("UNITOK_CORPUS", str(REPO.parent / "shared" / "corpus"))
    ap.add_argument("--corpus", type=Path, default=Path(corpus), help="$UNITOK_CORPUS or %(default)s")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each plan, alternating")
    ap.add_argument("--scans", default="16,6,4,2,1,1,1,1", help="pages of each image-only PDF made")
    ap.add_argument("--recordings", default="90,60,30", help="seconds of each recording made")
    ap.add_argument("--soak-copies", default="4,10,20", help="copies of the cut, comma-separated")
    ap.add_argument("--soak-pages", type=int, default=20, help="pages of the 400-page PDF in the cut")
    ap.add_argument("--soak-bounds", default="64,2048", help="runtime.object_store_mib values")
    ap.add_argument("--soak-dpi", type=int, default=300, help="pdf.ocr_dpi of the soak")
    ap.add_argument(
        "--soak-whole-bound",
        type=int,
        default=64,
        help="runtime.object_store_mib of one run of the whole 400-page PDF (0: none)",
    )
    ap.add_argument("--soak-workers", type=int, help="runtime.max_workers of the soak (engine replicas)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-soak", action="store_true")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    if not (args.corpus / "pdf" / LONG_PDF).is_file():
        print(f"no {args.corpus}/pdf/{LONG_PDF}: pass --corpus or set UNITOK_CORPUS", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    import unitok.pipeline

    result: dict[str, Any] = {
        "bench": "bench/bench_staged.py",
        "commit": git_commit(),
        "pipeline_dir": str(Path(unitok.pipeline.__file__).parent),  # where unitok was imported from
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PHYS_PAGES")
                                                                  * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)},
    }  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="unitok-bench-staged-"))
    try:
        if not args.skip_speed:
            result["speed"] = speed(args, work)
        if not args.skip_soak:
            result["soak"] = soak(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["total_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    runs = [*(result.get("speed", {}).get(p, {}).get("failures", 0) for p in ("staged", "per_object"))]
    soaked = result.get("soak", {})
    runs += [r["failures"] for r in soaked.get("runs", [])] + [soaked.get("whole_pdf", {}).get("failures", 0)]
    return 1 if any(runs) else 0


if __name__ == "__main__":
    sys.exit(main())
