"""Ray's staged plan: segments of many objects share an engine pool's calls, a long object spreads over the
pool, and nothing is lost or doubled when a worker dies in any stage.

The model case runs in a child process with a Ray of its own that declares one GPU (the tiny random-weight
Phi-4 runs on the CPU in its place), so the session's shared Ray is left as it is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from conftest import REPO
from PIL import Image, ImageDraw
from unitok.connectors.output import read_table

VOLATILE = {"run_id", "processed_at", "elapsed_ms", "at"}


def scans(
    folder: Path, n: int, pages: int = 1, size=(600, 400), stem: str = "scan", lines: int = 1
) -> list[Path]:
    """Image-only PDFs (no text layer: they go to the pixel engines), every page one size, each with its
    own words (`lines` of them: OCR's time grows with them)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        images = []
        for p in range(pages):
            img = Image.new("RGB", size, "white")
            draw = ImageDraw.Draw(img)
            for ln in range(lines):
                words = f"Invoice {i} page {p + 1} line {ln} total {7 * i + p + ln} to bay {ln * 3 + p}"
                draw.text((30, 20 + (p % 5) * 8 + ln * 14), words, fill="black")
            images.append(img)
        path = folder / f"{stem}-{i:02d}.pdf"
        images[0].save(path, "PDF", resolution=72.0, save_all=True, append_images=images[1:])
        out.append(path)
    return out


def recordings(folder: Path, n: int) -> None:
    """Tones of 17 s with a second of silence at 8 s: two windows each where windows are at most 10 s (the
    cut goes at the quietest point)."""
    for i in range(n):
        tone = f"if(between(t\\,8\\,9)\\,0\\,0.3*sin(2*PI*{300 + 40 * i}*t))"  # commas escaped for lavfi
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", f"aevalsrc={tone}:d=17:s=16000",
             "-ac", "1", str(folder / f"memo-{i}.wav")],
            check=True,
        )  # fmt: skip


def unitok_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "unitok.pipeline.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=env)  # fmt: skip


def rows(out, name: str) -> list[dict]:
    table = read_table(str(out), name)
    table = table.drop_columns([c for c in table.column_names if c in VOLATILE])
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


MODEL_RUNS = textwrap.dedent(
    """
    import json, sys
    import ray
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.core.workerenv import worker_env_vars
    from unitok.pipeline.job import run_job

    temp, src, out, engine = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, _temp_dir=temp,
             runtime_env={"env_vars": worker_env_vars()})
    for label, batch in (("wide", 16), ("one", 1)):
        engine["phi4"]["batch_size"] = batch
        cfg = parse_config({"source": {"uri": src}, "output": {"uri": f"{out}/{label}"}, "engine": engine,
                            "audio": {"max_window_s": 10, "overlap_s": 0}, "pdf": {"ocr_dpi": 72},
                            "runtime": {"executor": "ray"}})
        summary = run_job(cfg)
        print("RUN " + json.dumps({"label": label, **summary.as_dict()}, default=str), flush=True)
    ray.shutdown()
    """
)


def test_one_page_files_and_short_recordings_fill_the_model_pools_batches(tmp_path, tiny_model):
    from phi4_tiny import tiny_engine_config

    src, out = tmp_path / "src", tmp_path / "out"
    scans(src, 24)
    recordings(src, 4)
    temp = tempfile.mkdtemp(prefix="unitok-gpu1-", dir="/tmp")  # short: Ray's socket paths live in it
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ""}
    engine = tiny_engine_config(tiny_model)
    proc = subprocess.Popen([sys.executable, "-c", MODEL_RUNS, temp, str(src), str(out), json.dumps(engine)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr[-3000:]
    found = [json.loads(ln[4:]) for ln in stdout.splitlines() if ln.startswith("RUN ")]
    runs = {r["label"]: r for r in found}
    wide, one = runs["wide"], runs["one"]
    model = wide["engines"]["phi4"]
    # 24 pages and 8 windows: two calls of 16, each from many objects (one object has 1 or 2).
    assert model["segments"] == 32 and model["batch_fill"] >= 0.9, model
    assert one["engines"]["phi4"]["calls"] == 32
    assert wide["converted_objects"] == one["converted_objects"] == 28 and not wide["failed_objects"]
    for name in ("documents", "segments", "chunks", "errors"):
        assert rows(out / "wide", name) == rows(out / "one", name), name


def job(src, out, **runtime) -> dict:
    return {"source": {"uri": str(src)}, "output": {"uri": str(out)},
            "runtime": {"executor": "ray", "max_workers": 2, **runtime}}  # fmt: skip


def test_a_long_scan_spreads_over_the_pool_and_gives_the_local_drivers_rows(tmp_path, ray_local):
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.job import run_job

    src = tmp_path / "src"
    scans(src, 1, pages=24, stem="long", lines=24)
    low = {"pdf": {"ocr_dpi": 150}}  # where the pages go is the point, not how well they read
    summary = run_job(parse_config({**job(src, tmp_path / "ray"), **low}))
    assert summary.segments == 24 and not summary.failed_objects
    tess = summary.engines["tesseract"]
    # Its pages went to both replicas of the pool, in calls of 4 (one object's 24 pages: 6 calls).
    assert tess["segments"] == 24 and tess["calls"] == 6
    workers = {w for ws in summary._engine_workers.values() for w in ws}
    assert len(workers) == 2, workers
    local = run_job(parse_config({**job(src, tmp_path / "local"), **low, "runtime": {"executor": "local"}}))
    assert local.segments == 24
    for name in ("documents", "segments", "chunks", "errors"):
        assert rows(tmp_path / "ray", name) == rows(tmp_path / "local", name), name


STAGES = ("split", "engines", "assemble")


def test_a_worker_killed_in_any_stage_loses_and_doubles_nothing_after_the_rerun(tmp_path):
    """One run, three objects that each kill the worker of one stage (the splitter's task, an engine
    replica, the assembly task) every time they reach it, beside two that convert."""
    src = tmp_path / "src"
    scans(src, 5, pages=2)
    for i, stage in enumerate(STAGES):
        (src / f"scan-{i:02d}.pdf").rename(src / f"kills-{stage}.pdf")
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps({**job(src, tmp_path / "out"), "pdf": {"ocr_dpi": 150}}))
    kills = ",".join(f"object.{stage}@kills-{stage}.pdf" for stage in STAGES)
    first = unitok_cli("run", str(path), "--json", env_extra={"UNITOK_KILL_AT": kills})
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    assert summary["failed_objects"] == 3 and summary["documents"] == 2
    errors = read_table(str(tmp_path / "out"), "errors").to_pylist()
    assert {e["source_uri"].rsplit("/", 1)[-1] for e in errors} == {f"kills-{s}.pdf" for s in STAGES}
    assert all(e["error_type"] == "WorkerCrashed" for e in errors)
    states = {
        s["source_uri"].rsplit("/", 1)[-1]: s["status"]
        for s in read_table(str(tmp_path / "out"), "objects").to_pylist()
    }
    # A whole object that kills its workers is skipped until it changes; a segment that does fails its object.
    assert states["kills-split.pdf"] == states["kills-assemble.pdf"] == "crashed"
    assert states["kills-engines.pdf"] == "failed"
    again = unitok_cli("run", str(path), "--json", "--retry-failed")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["failed_objects"] == 0
    local = tmp_path / "local"
    assert unitok_cli("run", str(path), "--executor", "local", "--output", str(local)).returncode == 0
    for name in ("documents", "segments", "chunks", "errors"):
        assert rows(tmp_path / "out", name) == rows(local, name), name
    assert len(rows(tmp_path / "out", "segments")) == 10
