"""The console script as a user runs it: a subprocess with its own embedded Ray."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, committed_run, corpus, last_commit
from unitok.connectors.output import read_table
from unitok.pipeline.core.testhooks import wait_reached

UNITOK = [sys.executable, "-m", "unitok.pipeline.cli"]


def unitok(*args, cwd=REPO, env_extra=None):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env_extra or {})}
    return subprocess.run([*UNITOK, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_validate_reports_each_bad_field_and_exits_2(tmp_path):
    bad = tmp_path / "job.yaml"
    bad.write_text(
        "source:\n  uri: /data\n  includ: ['*.pdf']\noutput:\n  uri: out\nruntime:\n  min_workers: 0\n"
    )
    r = unitok("validate", str(bad))
    assert r.returncode == 2
    assert "source.includ: unknown key" in r.stderr
    assert "runtime.min_workers: Input should be greater than or equal to 1" in r.stderr
    assert "Traceback" not in r.stderr


def test_validate_accepts_the_demo_config_and_checks_the_source(tmp_path):
    r = unitok("validate", "configs/demo.yaml", "--source", "sample")
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout
    r = unitok("validate", "configs/demo.yaml", "--source", str(tmp_path / "missing"))
    assert r.returncode == 2 and "source.uri:" in r.stderr and "does not exist" in r.stderr


def test_run_with_overrides_prints_a_summary_and_keeps_secrets_out(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(corpus("pdf/fake-memo.pdf"), src / "memo.pdf")
    (src / "notes.pdf").write_text("text, not a PDF")
    job = tmp_path / "job.yaml"
    job.write_text(
        "source:\n  uri: /nowhere\noutput:\n  uri: /nowhere-either\n"
        "runtime:\n  ray_address: ${UNITOK_TEST_RAY:-}\n"
    )
    out = tmp_path / "out"
    r = unitok("run", str(job), "--source", str(src), "--output", str(out), env_extra={"UNITOK_TEST_RAY": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "objects listed     2" in r.stdout and "failed objects     1" in r.stdout
    docs = read_table(out, "documents").to_pylist()
    assert len(docs) == 1 and "20,000 bottles" in docs[0]["markdown"]
    config = last_commit(out, "documents")["config"]
    assert "${UNITOK_TEST_RAY:-}" in config  # the config as written, references unexpanded

    r = unitok("run", str(job), "--source", str(src), "--output", str(out), "--fail-on-error")
    assert r.returncode == 1


@pytest.mark.parametrize("executor", ["local", "beam"])
def test_a_killed_run_leaves_the_published_output_and_the_rerun_completes(tmp_path, executor):
    """Held after a converted batch (in the driver's pool, or in a Beam worker process), then the whole
    process group is killed: nothing of the run is committed, and the rerun is complete and exact."""
    import signal

    if executor == "beam":
        pytest.importorskip("apache_beam")

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(corpus("pdf/fake-memo.pdf"), src / "memo.pdf")
    job = tmp_path / "job.yaml"
    out = tmp_path / "out"
    job.write_text(f"source:\n  uri: {src}\noutput:\n  uri: {out}\nruntime:\n  executor: {executor}\n")
    assert unitok("run", str(job)).returncode == 0
    first = {"run_id": committed_run(out)}

    shutil.copy(corpus("pdf/DA-619p.pdf"), src / "long.pdf")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    # Held after its first converted batch: staging has started, nothing is committed.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "UNITOK_PAUSE_AT": "converted.batch",
           "UNITOK_PAUSE_DIR": str(hooks)}  # fmt: skip
    proc = subprocess.Popen([*UNITOK, "run", str(job)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    wait_reached(hooks, "converted.batch", alive=lambda: proc.poll() is None)
    assert list((out / "_staging").glob("*"))
    os.killpg(proc.pid, signal.SIGKILL)  # mid-run: staging has started, nothing committed
    proc.wait()
    assert committed_run(out) == first["run_id"]
    docs = read_table(out, "documents").to_pylist()
    assert [d["run_id"] for d in docs] == [first["run_id"]]  # readers still see the first run, whole

    r = unitok("run", str(job))
    assert r.returncode == 0, r.stderr[-2000:]
    segs = read_table(out, "segments").select(["doc_id", "segment_index", "source_uri"]).to_pylist()
    keys = [(s["doc_id"], s["segment_index"]) for s in segs]
    assert len(keys) == len(set(keys)) == 620  # 619 pages + the memo, none lost, none twice
    assert not (out / "_staging").exists()


def test_the_command_ends_as_the_interpreter_would_without_its_teardown():
    """main's exit code, its buffered output and a thread still running when it returns: the command
    waits for the thread and flushes the output, as the interpreter's own exit does."""
    code = (
        "import sys, threading\n"
        "from unitok.pipeline import cli\n"
        "def after_main():\n"
        "    threading.main_thread().join()  # returns once the main thread is exiting\n"
        "    sys.stdout.write(' and a thread after main returned')\n"
        "def main(argv=None):\n"
        "    threading.Thread(target=after_main).start()\n"
        "    sys.stdout.write('buffered output')\n"
        "    return 3\n"
        "cli.main = main\n"
        "cli.entry()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "buffered output and a thread after main returned"
