"""The whole Ray plan on one GPU machine: scanned pages and recordings through `run_job` (staged plan: CPU
split tasks → a Phi-4-multimodal engine pool, one replica per GPU → assembly tasks → Delta tables), with
the FULL-SIZE Phi-4-multimodal architecture on random weights (no download), and the figures as JSON:
pages/s, audio real-time factor (audio seconds converted / wall seconds), GPU utilisation and peak GPU
memory sampled from nvidia-smi every 0.5 s during the run, and the engine's batch fill and busy fraction
from the run summary.

The random checkpoint (about 11 GB of bf16 safetensors, with the tests' tiny tokenizer and processor) is
written once to --checkpoint (default /tmp/unitok-phi4-random-full), built on the GPU, and reused. Every
model item generates at most --new-tokens tokens: the config has no min_new_tokens, so a random model may
stop early at its end token; the JSON counts the items that ran to the limit (`ran_to_max_new_tokens`).

    python bench/bench_gpu_pipeline.py                        # a CUDA machine: under 9 minutes on an H100
    python bench/bench_gpu_pipeline.py --compare              # and runtime.ray_plan: per_object, same inputs
    python bench/bench_gpu_pipeline.py --vllm-model DIR       # engine.name: vllm on a real checkpoint
    python bench/bench_gpu_pipeline.py --tiny --device cpu    # the script checked on CPU (tiny model)
"""

from __future__ import annotations

import argparse
import json
import logging
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

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

DEFAULT_CHECKPOINT = Path("/tmp/unitok-phi4-random-full")
RAY_TEMP = "/tmp/ugpb-ray"  # short: Ray's socket paths live under it
MODEL_ENGINES = ("phi4", "vllm")
CUT = "generation stopped at max_new_tokens"
# Sized for under 9 minutes on one H100 with the full model (the checkpoint written once included);
# --tiny: about a minute on 2 CPU cores.
FULL = {"pages": 64, "recordings": 8, "recording_s": 75.0, "new_tokens": 64, "max_crops": 16}
TINY = {"pages": 4, "recordings": 2, "recording_s": 35.0, "new_tokens": 4, "max_crops": 1}


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


# -- inputs -----------------------------------------------------------------------------------------------


def make_pages(corpus: Path, folder: Path, n: int, dpi: int = 150) -> None:
    """n one-page image-only PDFs (a scan: no text layer, so every page goes to the model), rendered from
    pages of the corpus' DA-619p.pdf."""
    import io

    from bench_phi4 import page_images
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, png in enumerate(page_images(corpus, n, dpi)):
        Image.open(io.BytesIO(png)).convert("RGB").save(folder / f"scan-{i:03d}.pdf", "PDF", resolution=dpi)


def make_recordings(folder: Path, n: int, seconds: float) -> float:
    """n WAV recordings (16 kHz mono) of the sample talk's speech, looped, each from another offset, so
    their windows are cut at different places (as real recordings'). Returns the seconds of audio."""
    folder.mkdir(parents=True, exist_ok=True)
    talk = REPO / "sample" / "talk.mp4"
    for i in range(n):
        sh("ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(talk), "-ss",
           f"{(i * 1.7) % 12:.2f}", "-t", f"{seconds:g}", "-vn", "-ac", "1", "-ar", "16000",
           str(folder / f"talk-{i:02d}.wav"))  # fmt: skip
    return n * seconds


# -- the model ----------------------------------------------------------------------------------------------


def make_checkpoint(folder: Path, device: str, layers: int | None) -> None:
    """The full-size Phi-4-multimodal (Phi4MultimodalConfig(): the real 5.6B architecture) with random bf16
    weights, built on `device`, saved with the tiny model's tokenizer and processor. Run in a process of
    its own, so the bench's process never holds a CUDA context (it would count in the GPU's memory).
    layers: fewer layers of every tower, same widths (a check of this path on a CPU, not a benchmark)."""
    import torch
    from phi4_tiny import build_tiny_phi4
    from unitok.actors.torch_compat import import_torchvision_safely

    import_torchvision_safely()  # a CPU torch beside PyPI's CUDA torchvision (actors/torch_compat.py)
    from transformers import Phi4MultimodalConfig, Phi4MultimodalForCausalLM, Phi4MultimodalProcessor

    with tempfile.TemporaryDirectory() as tmp:
        processor = Phi4MultimodalProcessor.from_pretrained(build_tiny_phi4(Path(tmp)))
    tok = processor.tokenizer
    config = Phi4MultimodalConfig()
    config.tie_word_embeddings = True  # as the real checkpoint's config.json (transformers' default: False)
    config.vision_config.image_token_id = tok.image_token_id
    config.audio_config.audio_token_id = tok.audio_token_id
    config.bos_token_id = config.pad_token_id = tok.pad_token_id
    config.eos_token_id = [tok.eos_token_id]
    if layers:
        config.num_hidden_layers = layers
        config.vision_config.num_hidden_layers = layers
        config.audio_config.num_blocks = layers
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = Phi4MultimodalForCausalLM(config).eval()
    torch.set_default_dtype(torch.float32)
    model.generation_config.bos_token_id = model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id]
    part = folder.with_name(folder.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    model.save_pretrained(part)
    processor.save_pretrained(part)
    part.rename(folder)


def ensure_checkpoint(folder: Path, device: str, layers: int | None) -> dict[str, Any]:
    """The random checkpoint, written once and reused: how long writing it took, and its size."""
    t0 = time.perf_counter()
    created = not (folder / "config.json").is_file()
    if created:
        print(f"writing the random full-size checkpoint to {folder} (about 11 GB, once)", file=sys.stderr)
        cmd = [sys.executable, __file__, "--make-checkpoint", str(folder), "--device", device]
        subprocess.run(cmd + (["--layers", str(layers)] if layers else []), check=True)
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    return {"folder": str(folder), "created": created, "seconds": round(time.perf_counter() - t0, 1),
            "gib": round(size / 2**30, 2), "params_b": round(size / 2 / 1e9, 2)}  # fmt: skip


# -- GPU sampling -------------------------------------------------------------------------------------------


def nvidia_smi(query: str) -> list[list[str]] | None:
    """nvidia-smi's rows for a --query-gpu, one per GPU; None without a working nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return [[v.strip() for v in line.split(",")] for line in out.strip().splitlines()]


class GpuSampler:
    """utilization.gpu (mean over the GPUs) and memory.used (summed) every `every` seconds, in a thread."""

    def __init__(self, every: float = 0.5):
        self.every = every
        self.samples: list[tuple[float, float, float]] = []  # (time.time(), util %, memory MiB)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if nvidia_smi("name") is not None:
            self._thread = threading.Thread(target=self._loop, name="gpu-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            rows = nvidia_smi("utilization.gpu,memory.used")
            if rows:
                try:
                    util = statistics.fmean(float(r[0]) for r in rows)
                    self.samples.append((time.time(), util, sum(float(r[1]) for r in rows)))
                except (ValueError, IndexError):
                    pass  # "[N/A]" and the like: a missed sample
            due += self.every
            self._stop.wait(max(0.0, due - time.monotonic()))

    def figures(self, start: float | None = None, end: float | None = None) -> dict[str, Any] | None:
        """Utilisation mean, p50 and p90 and the peak memory over the samples (between start and end)."""
        if self._thread is None:
            return None
        lo, hi = start or 0.0, end or float("inf")
        picked = [s for s in self.samples if lo <= s[0] <= hi]
        if not picked:
            return {"samples": 0}
        util = sorted(s[1] for s in picked)

        def pct(q: float) -> float:
            return util[min(len(util) - 1, round(q * (len(util) - 1)))]

        return {"samples": len(picked), "util_mean": round(statistics.fmean(util), 1), "util_p50": pct(0.5),
                "util_p90": pct(0.9), "peak_memory_mib": max(s[2] for s in picked)}  # fmt: skip


# -- one run ------------------------------------------------------------------------------------------------


def job_config(args: argparse.Namespace, src: Path, out: Path, plan: str, model: str) -> dict[str, Any]:
    phi4: dict[str, Any] = {
        "model": model,
        "local_files_only": True,
        "max_new_tokens": args.new_tokens,
        "max_crops": args.max_crops,
        "device": args.device,
        "num_gpus": args.num_gpus if args.device == "cuda" else 0,
    }
    if args.batch_size:
        phi4["batch_size"] = args.batch_size
    if args.token_budget:
        phi4["token_budget"] = args.token_budget
    return {
        "source": {"uri": str(src)},
        "output": {"uri": str(out)},
        "engine": {"name": "vllm" if args.vllm_model else "phi4", "phi4": phi4},
        "runtime": {"executor": "ray", "ray_plan": plan},
    }


def run_plan(args: argparse.Namespace, src: Path, out: Path, plan: str, model: str, audio_s: float) -> dict:
    from unitok.connectors.output import read_table
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.job import run_job

    raw = job_config(args, src, out, plan, model)
    cfg = parse_config(raw)
    print(f"running runtime.ray_plan: {plan}", file=sys.stderr)
    with GpuSampler(0.5) as gpu:
        before = time.time()
        t0 = time.perf_counter()
        summary = run_job(cfg, raw)
        wall = time.perf_counter() - t0
        after = time.time()
    s = summary.as_dict()
    segs = read_table(str(out), "segments").to_pylist()
    model_rows = [r for r in segs if r["engine"] in MODEL_ENGINES]
    pages = [r for r in model_rows if r["segment_kind"] == "page"]
    windows = [r for r in model_rows if r["segment_kind"] == "audio_window"]
    done = sorted(r["processed_at"].timestamp() for r in model_rows)
    first, last = (done[0], done[-1]) if done else (None, None)
    errors = []
    if summary.failures:
        errors = [f"{e['stage']}: {e['error_type']}: {e['message']}"[:300]
                  for e in read_table(str(out), "errors").to_pylist()[:3]]  # fmt: skip
    return {
        "ray_plan": plan,
        "wall_s": round(wall, 2),
        "pages": len(pages),
        "audio_windows": len(windows),
        "audio_s": audio_s,
        "pages_per_s": round(len(pages) / wall, 3),
        "audio_rtf": round(audio_s / wall, 3) if windows else None,  # audio seconds / wall second
        # Seconds inside the model's calls, a call's time shared evenly by its segments.
        "model_call_s": {
            "pages": round(sum(r["elapsed_ms"] for r in pages) / 1000, 2),
            "audio": round(sum(r["elapsed_ms"] for r in windows) / 1000, 2),
        },
        # From the run's start to the first model call's end (the replica's start and model load included),
        # and from there to the last model output.
        "first_model_output_s": round(first - before, 2) if first else None,
        "model_outputs_span_s": round(last - first, 2) if first else None,
        "ran_to_max_new_tokens": sum(any(CUT in w for w in r["warnings"] or []) for r in model_rows),
        "model_items": len(model_rows),
        "engines": s["engines"],  # segments, calls, batch_fill, busy_fraction per engine
        "nodes": len(s["nodes"]),
        "segments_by_engine": s["segments_by_engine"],
        "failures": summary.failures,
        "errors": errors,
        "run_elapsed_s": s["elapsed_s"],
        "gpu": gpu.figures(before, after),
        # The same samples between the first and the last model output: the GPU while it converts (the
        # model load and the first call's wait left out).
        "gpu_converting": gpu.figures(first, last) if first else None,
    }


# -- main ---------------------------------------------------------------------------------------------------


def start_ray(cpus: int, gpus: int) -> None:
    """A local Ray of this process (run_job reuses it), its workers started under the worker contract."""
    import ray
    from unitok.pipeline.core.workerenv import worker_env_vars

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the replicas load local folders; no machine asks a hub
    saved = dict(os.environ)
    os.environ.update(worker_env_vars())
    try:
        ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, _temp_dir=RAY_TEMP)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def git_commit() -> str | None:
    try:
        return sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD").strip()
    except (OSError, subprocess.SubprocessError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus = os.environ.get("UNITOK_CORPUS", "/work/shared/corpus")
    ap.add_argument("--corpus", type=Path, default=Path(corpus), help="$UNITOK_CORPUS or %(default)s")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny model: a check of the script")
    ap.add_argument("--pages", type=int, help=f"one-page scanned PDFs (default {FULL['pages']}, tiny 4)")
    ap.add_argument("--recordings", type=int, help=f"WAV recordings (default {FULL['recordings']}, tiny 2)")
    ap.add_argument("--recording-s", type=float, help="seconds per recording (default 75, tiny 35)")
    ap.add_argument("--new-tokens", type=int, help="engine.phi4.max_new_tokens (default 64, tiny 4)")
    ap.add_argument("--max-crops", type=int, help="engine.phi4.max_crops (default 16, tiny 1)")
    ap.add_argument("--batch-size", type=int, help="engine.phi4.batch_size (default: the config's, 16)")
    ap.add_argument("--token-budget", type=int, help="engine.phi4.token_budget (default: the config's)")
    ap.add_argument("--num-gpus", type=float, default=1.0, help="engine.phi4.num_gpus per replica")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the local Ray")
    ap.add_argument("--compare", action="store_true", help="also runtime.ray_plan: per_object, same inputs")
    ap.add_argument("--vllm-model", type=Path, help="engine.name: vllm on this checkpoint folder")
    ap.add_argument("--checkpoint", type=Path, help=f"the random checkpoint's folder ({DEFAULT_CHECKPOINT})")
    ap.add_argument("--layers", type=int, help="fewer layers in the random checkpoint (a check on CPU)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the inputs and outputs (printed)")
    ap.add_argument("--make-checkpoint", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.make_checkpoint:
        make_checkpoint(args.make_checkpoint, args.device, args.layers)
        return 0
    for key, value in (TINY if args.tiny else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.tiny and args.vllm_model:
        ap.error("--tiny and --vllm-model do not go together")
    if not (args.corpus / "pdf" / "DA-619p.pdf").is_file():
        print(f"no {args.corpus}/pdf/DA-619p.pdf: pass --corpus or set UNITOK_CORPUS", file=sys.stderr)
        return 2
    gpus = nvidia_smi("name,memory.total")
    if args.device == "cuda" and not gpus:
        print("nvidia-smi found no GPU: run on a GPU machine, or pass --tiny --device cpu", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    t_start = time.perf_counter()
    checkpoint = None
    work = Path(tempfile.mkdtemp(prefix="unitok-gpu-bench-"))
    try:
        if args.vllm_model:
            model, label = str(args.vllm_model), f"vLLM, checkpoint {args.vllm_model}"
        elif args.tiny:
            from phi4_tiny import build_tiny_phi4
            from unitok.actors.torch_compat import import_torchvision_safely

            import_torchvision_safely()
            model = str(build_tiny_phi4(work / "tiny-phi4"))
            label = "the tests' tiny Phi-4-multimodal, random weights"
        else:
            layered = DEFAULT_CHECKPOINT.with_name(f"unitok-phi4-random-L{args.layers}")
            folder = args.checkpoint or (layered if args.layers else DEFAULT_CHECKPOINT)
            checkpoint = ensure_checkpoint(folder, args.device, args.layers)
            model = str(folder)
            label = "full-size Phi-4-multimodal architecture, random bf16 weights"
            if args.layers:
                label += f" ({args.layers} layer(s) per tower: a check of the path, not a benchmark)"
        src = work / "src"
        t0 = time.perf_counter()
        make_pages(args.corpus, src / "scans", args.pages)
        audio_s = make_recordings(src / "audio", args.recordings, args.recording_s)
        inputs_s = time.perf_counter() - t0

        start_ray(args.cpus, len(gpus or []) if args.device == "cuda" else 0)
        runs = {}
        for plan in ("staged", "per_object") if args.compare else ("staged",):
            runs[plan] = run_plan(args, src, work / f"out-{plan}", plan, model, audio_s)
        result: dict[str, Any] = {
            "bench": "bench/bench_gpu_pipeline.py",
            "commit": git_commit(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": args.cpus, "gpus": [", ".join(g) for g in gpus or []] or None},
            "model": label,
            "engine": "vllm" if args.vllm_model else "phi4",
            "settings": {
                "device": args.device,
                "max_new_tokens": args.new_tokens,
                "max_crops": args.max_crops,
                "batch_size": args.batch_size or "config default",
                "token_budget": args.token_budget or "config default",
            },
            "inputs": {
                "pages": args.pages,
                "page_pdf": "one-page image-only PDFs (DA-619p pages, 150 dpi)",
                "recordings": args.recordings,
                "recording_s": args.recording_s,
                "audio_s": audio_s,
                "made_s": round(inputs_s, 1),
            },
            "checkpoint": checkpoint,
            "runs": runs,
        }
        if args.compare:
            staged, per_object = runs["staged"], runs["per_object"]

            def ratio(key: str) -> float | None:
                a, b = staged[key], per_object[key]
                return round(a / b, 2) if a and b else None

            result["staged_over_per_object"] = {
                "pages_per_s": ratio("pages_per_s"),
                "audio_rtf": ratio("audio_rtf"),
                "wall_speedup": round(per_object["wall_s"] / staged["wall_s"], 2),
            }
        result["total_s"] = round(time.perf_counter() - t_start, 1)
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if args.keep:
            print(f"inputs and outputs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    failed = sum(r["failures"] for r in runs.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
