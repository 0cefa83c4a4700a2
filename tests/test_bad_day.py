"""A bad day for a scheduled job, run as the console script: a source that lists nothing, a config bomb,
an output that cannot be written, an unexpected failure. Each stops with exit 2 and one line, commits
nothing, and keeps secrets out of what it prints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, committed_run, corpus, deleted_by_last_run
from unitok.connectors.output import read_table
from unitok.pipeline.core.config import MAX_CONFIG_VALUES, ConfigError, load_config
from unitok.pipeline.core.redact import redact_text, redact_uri

from infra.local_s3 import free_port


def unitok(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env_extra or {})}
    # The timeout guards against a hang; it is not a speed target.
    return subprocess.run([sys.executable, "-m", "unitok.pipeline.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    """The stop's line: stderr without the log records, exactly one line, no traceback."""
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("unitok:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    return lines[0]


def job_file(tmp_path: Path, source: Path, out: Path, extra: str = "") -> Path:
    p = tmp_path / "job.yaml"
    p.write_text(f"source:\n  uri: {source}\noutput:\n  uri: {out}\nruntime:\n  executor: local\n{extra}")
    return p


@pytest.fixture
def corpus10(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        shutil.copy(corpus("pdf/fake-memo.pdf"), src / f"memo-{i}.pdf")
    return src


# -- deletion guard -------------------------------------------------------------------------------------
def test_a_source_that_lists_nothing_stops_before_deleting_the_corpus(tmp_path, corpus10):
    out = tmp_path / "out"
    job = job_file(tmp_path, corpus10, out)
    assert unitok("run", str(job)).returncode == 0
    first = committed_run(out)
    for p in corpus10.iterdir():  # an unmounted volume: the folder is there, empty
        p.unlink()
    r = unitok("run", str(job))
    assert r.returncode == 2
    line = one_line(r)
    assert "lists 0 objects where the last run listed 10" in line and "--allow-mass-delete" in line
    assert committed_run(out) == first and read_table(out, "documents").num_rows == 10
    assert not (out / "_staging").exists()

    r = unitok("run", str(job), "--allow-mass-delete")
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_table(out, "documents").num_rows == 0
    assert len(deleted_by_last_run(out)) == 10


def test_deleting_more_than_max_delete_fraction_needs_a_person(tmp_path, corpus10):
    out = tmp_path / "out"
    job = job_file(tmp_path, corpus10, out)
    assert unitok("run", str(job)).returncode == 0
    for i in range(4):  # 40%: under the default 0.5, an ordinary day
        (corpus10 / f"memo-{i}.pdf").unlink()
    assert unitok("run", str(job)).returncode == 0
    assert len(deleted_by_last_run(out)) == 4
    for i in range(4, 8):  # 4 of the 6 left: 67%
        (corpus10 / f"memo-{i}.pdf").unlink()
    r = unitok("run", str(job))
    assert r.returncode == 2
    assert "would delete 4 of the 6 objects the last run listed (67%" in one_line(r)
    assert read_table(out, "documents").num_rows == 6
    relaxed = job_file(tmp_path, corpus10, out, "  max_delete_fraction: 0.7\n")
    assert unitok("run", str(relaxed)).returncode == 0
    assert read_table(out, "documents").num_rows == 2


# -- bounded config parsing -----------------------------------------------------------------------------
BOMB = "".join(
    f"{a}: &{a} [" + ",".join([f"*{p}" if p else '"lol"'] * 9) + "]\n"
    for a, p in zip("abcdefghi", [None, *"abcdefgh"], strict=True)
)


def test_a_yaml_alias_bomb_is_refused_with_one_line(tmp_path):
    job = tmp_path / "bomb.yaml"
    job.write_text(f"source:\n  uri: {tmp_path}\noutput:\n  uri: {tmp_path / 'out'}\nunused:\n" +
                   "".join("  " + ln + "\n" for ln in BOMB.splitlines()))  # fmt: skip
    for cmd in ("validate", "run"):
        r = unitok(cmd, str(job))
        assert r.returncode == 2
        assert f"expands to more than {MAX_CONFIG_VALUES:,} values through YAML aliases" in one_line(r)
    job.write_text("a: &a [*a]\n")
    with pytest.raises(ConfigError, match="recursive alias"):
        load_config(job)
    job.write_text("source: {uri: /tmp}\n" + "# padding\n" * 150_000)
    with pytest.raises(ConfigError, match="too large for a job config"):
        load_config(job)


def test_aliases_within_bounds_still_work(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(f"defaults: &s3 {{endpoint_url: http://127.0.0.1:1}}\n"
                   f"source: {{uri: s3://b/in, s3: *s3}}\noutput: {{uri: {tmp_path}}}\n")  # fmt: skip
    with pytest.raises(ConfigError, match="defaults: unknown key"):
        load_config(job)
    job.write_text(f"source: &src {{uri: {tmp_path}}}\noutput: {{uri: {tmp_path / 'o'}}}\n")
    cfg, _ = load_config(job)
    assert cfg.source.uri == str(tmp_path)


# -- output problems: exit 2, one line --------------------------------------------------------------------
def test_an_output_that_cannot_be_written_stops_with_exit_2_and_one_line(tmp_path, corpus10):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    r = unitok("run", str(job_file(tmp_path, corpus10, a_file)))
    assert r.returncode == 2 and "a file is in the way" in one_line(r)

    r = unitok("run", str(job_file(tmp_path, corpus10, corpus10 / "out")))
    assert r.returncode == 2 and "is inside source.uri" in one_line(r)
    assert not (corpus10 / "out").exists()

    if os.geteuid() == 0:
        read_only = Path("/sys/unitok-out")  # sysfs refuses new entries, even to root
    else:
        read_only = tmp_path / "ro"
        read_only.mkdir()
        read_only.chmod(0o500)
    r = unitok("run", str(job_file(tmp_path, corpus10, read_only)))
    assert r.returncode == 2 and "cannot write there" in one_line(r)

    dead = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "job.yaml").write_text(
        f"source: {{uri: {corpus10}}}\noutput: {{uri: 's3://out/x', s3: {{endpoint_url: '{dead}', "
        "max_attempts: 1, connect_timeout_s: 1}}\n"
    )
    r = unitok(
        "run", str(tmp_path / "job.yaml"), env_extra={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    )
    assert r.returncode == 2 and "cannot reach the endpoint" in one_line(r)


def test_an_unexpected_failure_is_one_line_with_the_traceback_kept(tmp_path, corpus10):
    out = tmp_path / "out"
    job = job_file(tmp_path, corpus10, out)
    assert unitok("run", str(job)).returncode == 0
    for part in (out / "objects").glob("*.parquet"):  # the last run's state, damaged on disk
        part.write_bytes(b"PAR1 not really")
    r = unitok("run", str(job))
    assert r.returncode == 2
    line = one_line(r)
    assert line.startswith("unitok: the job stopped: ") and "rerun with --debug" in line
    log = Path(line.split("traceback in ", 1)[1].split(" (or rerun", 1)[0])
    assert "Traceback (most recent call last)" in log.read_text()
    log.unlink()
    r = unitok("--debug", "run", str(job))
    assert r.returncode == 2 and "Traceback (most recent call last)" in r.stderr


# -- secrets ------------------------------------------------------------------------------------------
def test_secrets_in_uris_are_redacted_and_provenance_kept():
    assert redact_uri("s3://AKIAX:se/cr+et@bucket/in/") == "s3://AKIAX:REDACTED@bucket/in/"
    signed = "https://b.s3.amazonaws.com/a%20b.pdf?X-Amz-Credential=AKIA%2Fx&X-Amz-Signature=f00&versionId=7"
    assert redact_uri(signed) == (
        "https://b.s3.amazonaws.com/a%20b.pdf?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&versionId=7"
    )
    for kept in (
        "s3://bucket/mail/jo@example.com.pdf",
        "/data/in?x",
        "file:///tmp/a",
        "s3://b/p?versionId=3",
    ):
        assert redact_uri(kept) == kept
    assert redact_text("s3://u:pw@b/x at http://k:s3cr3t@h:1: down") == (
        "s3://u:REDACTED@b/x at http://k:REDACTED@h:1: down"
    )


def test_a_secret_expanded_into_a_uri_is_never_printed(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    job = tmp_path / "job.yaml"
    s3 = f"{{endpoint_url: '{dead}', max_attempts: 1, connect_timeout_s: 1}}"
    job.write_text(f"source:\n  uri: s3://${{KEY}}:${{SECRET}}@bucket/in\n  s3: {s3}\n"
                   f"output: {{uri: {tmp_path / 'out'}}}\n")  # fmt: skip
    env = {
        "KEY": "AKIATEST",
        "SECRET": "do-not/print-me",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    r = unitok("run", str(job), env_extra=env)
    assert r.returncode == 2 and "do-not/print-me" not in r.stderr + r.stdout
    assert "AKIATEST:REDACTED@" in one_line(r)
