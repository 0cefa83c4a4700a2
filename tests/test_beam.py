"""The Beam driver (DirectRunner: Beam's portable runner with worker processes) against the Ray driver on
one corpus of every kind, bad files included; incremental runs that switch between the two; and the
config checks that stop a bad Beam job before it lists anything."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, corpus, every_modality
from unitok.connectors.output import read_table
from unitok.pipeline.core.config import ConfigError, parse_config
from unitok.pipeline.core.schemas import TABLES
from unitok.pipeline.job import check_engines, run_job

pytest.importorskip("apache_beam")
if not shutil.which("ffmpeg"):
    pytest.skip("ffmpeg is needed", allow_module_level=True)

FIELDS = ("segment_kind", "engine", "model_id", "prompt_id", "markdown", "spans", "warnings", "page_number",
          "time_start_s", "time_end_s", "source_version", "mime_type", "modality")  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Every modality, and bad files of two kinds (encrypted, truncated) and a malformed deck."""
    src = every_modality(tmp_path_factory.mktemp("beam-src"))
    shutil.copy(corpus("bad/password.pdf"), src)
    shutil.copy(corpus("bad/fake-power-point-malformed.pptx"), src)
    png = (REPO / "sample" / "signup-sheet.png").read_bytes()
    (src / "truncated.png").write_bytes(png[: len(png) // 3])
    return src


def job(source, out, executor: str, **runtime):
    spec = {
        "mode": "incremental",
        "source": {"uri": str(source)},
        "output": {"uri": str(out)},
        "runtime": {"executor": executor, "max_workers": 2, "engine_batch_size": 4, **runtime},
    }
    return parse_config(spec)


def tables(out):
    """What a reader sees, keyed by file name and segment: everything but the run's own id and clock."""

    def name(uri):
        return uri.rsplit("/", 1)[-1]

    segs = {(name(r["source_uri"]), r["segment_index"]): {k: r[k] for k in FIELDS}
            for r in read_table(out, "segments").to_pylist()}  # fmt: skip
    docs = {name(d["source_uri"]): (d["markdown"], d["warnings"], d["n_segments"], d["engines"])
            for d in read_table(out, "documents").to_pylist()}  # fmt: skip
    errors = sorted((name(e["source_uri"]), e["segment_index"], e["stage"], e["error_type"], e["message"])
                    for e in read_table(out, "errors").to_pylist())  # fmt: skip
    counts = {t: read_table(out, t).num_rows for t in TABLES}
    return segs, docs, errors, counts


@pytest.fixture(scope="module")
def ray_and_beam(source, ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("beam-out")
    runs = {}
    for executor in ("ray", "beam"):
        summary = run_job(job(source, out / executor, executor))
        assert summary.committed and summary.executor == executor
        runs[executor] = (summary, tables(out / executor))
    return runs


def test_beam_gives_the_ray_drivers_markdown_rows_and_error_reasons(ray_and_beam):
    (ray_summary, (r_segs, r_docs, r_errors, r_counts)) = ray_and_beam["ray"]
    (beam_summary, (b_segs, b_docs, b_errors, b_counts)) = ray_and_beam["beam"]
    kinds = {v["segment_kind"] for v in r_segs.values()}
    assert {"page", "image", "slide", "audio_window", "video_frames"} <= kinds, kinds
    assert {"pdf_text", "tesseract", "slide_text", "whisper"} <= {v["engine"] for v in r_segs.values()}
    assert {e[0] for e in r_errors} >= {"password.pdf", "truncated.png"}
    assert r_counts["segments"] > 10 and r_counts["chunks"] > 0
    assert b_docs == r_docs
    assert b_segs == r_segs
    assert b_errors == r_errors
    assert b_counts == r_counts
    for field in ("objects", "documents", "segments", "failed_objects", "failed_segments", "chunks"):
        assert getattr(beam_summary, field) == getattr(ray_summary, field), field


def test_beam_commits_each_table_once_with_its_run(ray_and_beam, tmp_path):
    from deltalake import DeltaTable

    summary, _ = ray_and_beam["beam"]
    out = summary.output_uri
    for name in TABLES:
        history = DeltaTable(f"{out}/{name}").history()
        runs = [h.get("run_id") for h in history if h.get("run_id")]
        assert runs == [summary.run_id], (name, runs)
    assert not (REPO / ".unitok-staging").exists()
    assert not list((tmp_path.parent).glob("**/beam-temp-*"))


def test_incremental_runs_switch_between_ray_and_beam(source, ray_local, tmp_path):
    """Ray, then Beam after a change, then Ray after another: each run converts only what changed, and
    the tables end as a full run of the final folder leaves them."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("field-report.pdf", "signup-sheet.png", "sample-presentation.pptx"):
        shutil.copy(source / name, src)
    out = tmp_path / "out"
    first = run_job(job(src, out, "ray"))
    assert (first.converted_objects, first.carried_objects) == (3, 0)

    shutil.copy(source / "scanned-memo.pdf", src)  # added
    (src / "signup-sheet.png").unlink()  # deleted
    second = run_job(job(src, out, "beam"), allow_mass_delete=True)
    assert (second.converted_objects, second.carried_objects, second.deleted_objects) == (1, 2, 1)
    assert second.segments == 1  # the scan's one page, nothing else converted again

    shutil.copy(source / "signup-sheet.png", src / "field-report.pdf")  # changed in place
    third = run_job(job(src, out, "ray"))
    assert (third.converted_objects, third.carried_objects, third.deleted_objects) == (1, 2, 0)

    fresh = tmp_path / "fresh"
    run_job(job(src, fresh, "local"))
    assert tables(out) == tables(fresh)


def test_beam_then_ray_converts_only_what_changed(source, ray_local, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("field-report.pdf", "password.pdf"):
        shutil.copy(source / name, src)
    out = tmp_path / "out"
    assert run_job(job(src, out, "beam")).converted_objects == 2
    shutil.copy(source / "signup-sheet.png", src)
    after = run_job(job(src, out, "ray"))
    # The new image, and the PDF that failed last time (failed objects are always tried again).
    assert (after.converted_objects, after.carried_objects) == (2, 1)
    assert after.segments == 1 and after.failed_objects == 1
    names = {r["source_uri"].rsplit("/", 1)[-1] for r in read_table(out, "documents").to_pylist()}
    assert names == {"field-report.pdf", "signup-sheet.png"}
    assert [e["source_uri"].rsplit("/", 1)[-1] for e in read_table(out, "errors").to_pylist()] == [
        "password.pdf"
    ]


@pytest.mark.parametrize(
    ("beam", "expected"),
    [
        ({"runner": "NoSuchRunner"}, "runtime.beam.runner: NoSuchRunner cannot be loaded"),
        ({"options": {"flink_mastr": "localhost:8081"}}, "runtime.beam.options.flink_mastr: not a Beam"),
        ({"options": {"runner": "FlinkRunner"}}, "runtime.beam.options.runner: set the runner in"),
        ({"options": {"direct_num_workers": "two"}}, "runtime.beam.options.direct_num_workers: invalid int"),
        (
            {"options": {"direct_running_mode": "bogus"}},
            "runtime.beam.options.direct_running_mode: invalid ch",
        ),
    ],
)
def test_a_bad_beam_runner_or_option_stops_the_job_before_it_lists(tmp_path, beam, expected):
    cfg = job(tmp_path / "missing-source", tmp_path / "out", "beam", beam=beam)
    with pytest.raises(ConfigError, match=expected):
        check_engines(cfg)


@pytest.mark.parametrize("name", ["DirectRunner", "directrunner", "direct"])
def test_the_direct_runner_is_named_in_any_case_as_beam_does(tmp_path, name):
    """Beam resolves "directrunner" to its own DirectRunner (which downloads Prism): unitok takes every
    spelling to its local worker processes."""
    from unitok.pipeline.drivers.beam import pipeline_options

    options = pipeline_options(job(tmp_path, tmp_path / "out", "beam", beam={"runner": name}))
    assert (options["direct_running_mode"], options["direct_num_workers"]) == ("multi_processing", 2)


def test_unitok_run_executor_beam_from_the_command_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "sample" / "field-report.pdf", src)
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"source: {{uri: {src}}}\noutput: {{uri: {tmp_path / 'out'}}}\n")
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    unitok = [sys.executable, "-m", "unitok.pipeline.cli"]
    r = subprocess.run([*unitok, "run", str(cfg), "--executor", "beam"], capture_output=True, text=True,
                       env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "executor           beam" in r.stdout
    assert "documents written  1" in r.stdout
    assert "beam (DirectRunner, " in r.stderr and "worker processes): 1 object(s) in" in r.stderr
    # Beam's own start-up chatter stays out of the log: the run's lines only.
    noise = [line for line in r.stderr.splitlines() if "apache_beam" in line or "Worker:" in line]
    assert not noise, noise[:5]
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text() + "runtime: {executor: beam, beam: {options: {no_such_option: 1}}}\n")
    r = subprocess.run([*unitok, "run", str(bad)], capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"unitok: invalid config {bad}: runtime.beam.options.no_such_option: not a Beam pipeline option"
    ]
