"""Before, during and after a run, as a user sees it from the CLI: `validate` lists the source, `plan`
counts the work and estimates it, `run --json` gives the summary the commit stores, `errors` shows the
error rows, and the run report opens in headless Chromium with its plots drawn."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, corpus, last_commit, sh

UNITOK = [sys.executable, "-m", "unitok.pipeline.cli"]
SAMPLE = REPO / "sample"


def unitok(*args, env=None):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})}
    return subprocess.run([*UNITOK, *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Two PDFs (2 text pages, 1 scanned page), a 4-slide deck, an image, 9.8 s of audio, a 12 s video,
    and a file that is not a PDF."""
    src = tmp_path_factory.mktemp("mixed")
    for name in ("field-report.pdf", "scanned-memo.pdf", "signup-sheet.png", "talk.mp4", "not-really-a.pdf"):
        shutil.copy(SAMPLE / name, src)
    shutil.copy(corpus("pptx/sample-presentation.pptx"), src)
    sh("ffmpeg", "-y", "-i", str(src / "talk.mp4"), "-vn", "-c:a", "flac", str(src / "talk.flac"))
    job = src.parent / f"{src.name}.yaml"
    job.write_text(f"source:\n  uri: {src}\noutput:\n  uri: {src.parent / (src.name + '-out')}\n")
    return src, job


def test_validate_lists_the_source_and_warns_on_globs_that_match_nothing(mixed, tmp_path):
    src, _ = mixed
    job = tmp_path / "job.yaml"
    job.write_text(
        f"source:\n  uri: {src}\n  include: ['*.pdf', '*.docx']\noutput:\n  uri: {tmp_path / 'o'}\n"
    )
    r = unitok("validate", str(job))
    assert r.returncode == 0 and "3 objects selected" in r.stdout
    assert "source.include: 1 of 2 globs match nothing under" in r.stderr and "'*.docx'" in r.stderr
    strict = unitok("validate", str(job), "--strict")
    assert strict.returncode == 2 and len(strict.stderr.strip().splitlines()) == 1  # one line
    assert "'*.docx' (--strict)" in strict.stderr
    assert not (tmp_path / "o").exists()  # validate writes nothing
    unreachable = tmp_path / "s3.yaml"
    unreachable.write_text("source:\n  uri: s3://nowhere/x/\n  s3:\n    endpoint_url: http://127.0.0.1:9\n"
                           "    max_attempts: 1\n    connect_timeout_s: 1\noutput:\n  uri: o\n")  # fmt: skip
    r = unitok("validate", str(unreachable), env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    assert r.returncode == 2 and "cannot reach the endpoint" in r.stderr


def test_plan_counts_the_work_exactly_and_estimates_it_from_recorded_rates(mixed):
    from unitok.pipeline.stages.estimate import load_rates

    _, job = mixed
    r = unitok("plan", str(job), "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    counts = (plan["objects"], plan["pages"], plan["ocr_pages"], plan["slides"], plan["images"])
    assert counts == (7, 3, 1, 4, 1)
    assert plan["audio_seconds"] == pytest.approx(9.8, abs=0.05) and plan["video_seconds"] == pytest.approx(
        12, abs=0.1
    )
    assert plan["plan"]["convert"] == 7 and plan["problem_count"] == 1  # not-really-a.pdf
    assert plan["problems"][0]["uri"].endswith("not-really-a.pdf")
    est, rates = plan["estimate"], load_rates()
    cpu = rates["cpu"]
    av = plan["audio_seconds"] * cpu["audio_s_per_s"] + plan["video_seconds"] * cpu["video_s_per_s"]
    work = 2 * cpu["text_page_s"] + cpu["ocr_page_s"] + 4 * cpu["slide_s"] + cpu["image_s"] + av
    work += 7 * cpu["object_s"]
    assert est["wall_s"] == pytest.approx(
        est["start_up_s"] + est["first_use_s"] + max(work / est["workers"], est["largest_object_s"]), abs=0.15
    )
    assert est["rates"]["measured_at"] == rates["measured_at"]
    text = unitok("plan", str(job))
    assert text.returncode == 0 and "3 pages (1 likely OCR), 4 slides, 1 images" in text.stdout
    # The counts are the run's: its page, slide and image segments, and the pages it OCR'd.
    from unitok.connectors.output import read_table

    r = unitok("run", str(job))
    assert r.returncode == 0, r.stderr
    segments = read_table(str(job.parent / (job.stem + "-out")), "segments").to_pylist()
    kinds = [s["segment_kind"] for s in segments]
    ocr = [s for s in segments if s["segment_kind"] == "page" and s["engine"] == "tesseract"]
    assert (kinds.count("page"), len(ocr), kinds.count("slide"), kinds.count("image")) == counts[1:]


def test_run_json_agrees_with_the_stored_summary_errors_lists_rows_and_the_report_draws(mixed, tmp_path):
    src, job = mixed
    r = unitok("run", str(job), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    out = str(src.parent / (src.name + "-out"))
    assert summary["committed"] and summary["failed_objects"] == 1
    stored = json.loads(last_commit(out, "objects")["summary"])
    assert stored["committed"] and stored["table_versions"] == summary["table_versions"]
    assert summary["table_versions"] == {n: last_commit(out, n)["version"] for n in summary["table_versions"]}
    assert summary["errors_command"] == f"unitok errors {job}"

    errors = unitok("errors", str(job))
    assert errors.returncode == 0 and "not-really-a.pdf: split" in errors.stdout
    (row,) = [json.loads(line) for line in unitok("errors", str(job), "--json").stdout.splitlines()]
    assert row["run_id"] == summary["run_id"] and row["source_uri"].endswith("not-really-a.pdf")

    report = summary["report"]
    assert report.endswith(f"reports/{summary['run_id']}.html") and os.path.isfile(report)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    shot = tmp_path / "report.png"
    browser = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,5000",
         f"--screenshot={shot}", "--enable-logging=stderr", "--v=0", f"file://{report}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    console = [line for line in browser.stderr.splitlines() if "CONSOLE" in line]
    assert shot.is_file() and not console, console
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    drawn = int((np.abs(pixels - [31, 119, 180]).max(axis=2) < 12).sum())
    assert drawn > 20_000, drawn  # the bars and the throughput line, in the plots' blue
