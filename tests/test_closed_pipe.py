# ruff: noqa: E501 - a command line per line
"""The read-only commands that print, to a reader that stops early (the README's `unitok changes ... | head`):
they end quietly with exit 0, no "the job stopped" line and no traceback file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

UNITOK = [sys.executable, "-m", "unitok.pipeline.cli"]


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """A committed output of three long notes (their chunks print as ~400 KB of JSON lines, past any pipe's
    buffer) and one file that is an error row."""
    root = tmp_path_factory.mktemp("pipe")
    src = root / "in"
    src.mkdir()
    for i in range(3):
        paragraphs = (
            f"Paragraph {k} of note {i}: the gauge at pier {k} reads {k * i} metres." for k in range(1500)
        )
        (src / f"notes-{i}.md").write_text("\n\n".join(paragraphs))
    (src / "broken.pdf").write_text("text, not a PDF")
    job = root / "job.yaml"
    job.write_text(f"source:\n  uri: {src}\noutput:\n  uri: {root / 'out'}\n")
    r = subprocess.run([*UNITOK, "run", str(job)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return job


def _traceback_files() -> set[str]:
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    return {p.name for p in tmp.glob("unitok-error-*.log")}


def test_changes_to_a_reader_that_stops_after_one_line_ends_quietly(job):
    before = _traceback_files()
    proc = subprocess.Popen([*UNITOK, "changes", str(job), "--since", "0", "--table", "chunks"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    first = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does: the command is still writing (the feed is past the pipe's buffer)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert b'"text": "Paragraph ' in first and first.endswith(b"}\n")  # one whole JSON line
    assert err == ""
    assert _traceback_files() == before


@pytest.mark.parametrize(
    "args",
    [
        ["changes", "{job}", "--since", "0", "--table", "documents"],
        ["errors", "{job}"],
        ["errors", "{job}", "--json"],
        ["plan", "{job}"],
        ["validate", "{job}"],
    ],
    ids=["changes", "errors", "errors-json", "plan", "validate"],
)
def test_a_read_only_command_whose_stdout_is_already_closed_exits_0(job, args):
    """The reader is gone before the first byte: the command's small output fails only when it is flushed."""
    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run([*UNITOK, *(a.format(job=job) for a in args)], stdout=write, stderr=subprocess.PIPE,
                           text=True, timeout=300)  # fmt: skip
    finally:
        os.close(write)
    assert r.returncode == 0, r.stderr
    assert "stopped" not in r.stderr and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr


def test_the_same_commands_still_print_everything_to_a_reader_that_stays(job):
    r = subprocess.run([*UNITOK, "errors", str(job)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "broken.pdf: split" in r.stdout and "1 error row(s) of run" in r.stderr
    r = subprocess.run([*UNITOK, "changes", str(job), "--since", "0", "--table", "chunks"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0 and r.stdout.count("\n") > 100
