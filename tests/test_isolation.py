"""No valid file stops a job: a failure anywhere in one object's work (split, engines, rows, assembly,
chunking, embedding, writing) becomes that object's error row, on every driver and in the Python API,
while the rest of the run goes on and commits; the next incremental run tries the object again. And text
is always valid Unicode: PDFs whose text layer holds characters outside the Basic Multilingual Plane
(mathematical letters, emoji, the private-use planes) and lone surrogates, made here."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys

import pytest
import unitok
from conftest import REPO
from handmade import hand_pdf, text_at
from unitok.connectors.output import read_table

UNITOK = [sys.executable, "-m", "unitok.pipeline.cli"]
STAGES = ("split", "engines", "rows", "assemble", "chunk", "embed", "write")
# Where the document stands after a failure: chunks and embeddings fail after it was made.
DOCUMENT_STANDS = {"chunk", "embed"}


def unitok_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env_extra or {})}
    return subprocess.run([*UNITOK, *args], cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    pytest.importorskip("torch")
    from encoder_tiny import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def faulted_folder(folder):
    """A good PDF and one PDF per stage, named for the stage it fails in."""
    folder.mkdir()
    for name in ("good", *(f"fails-{stage}" for stage in STAGES)):
        shutil.copy(REPO / "sample" / "field-report.pdf", folder / f"{name}.pdf")
    return folder


FAULTS = ",".join(f"object.{stage}@fails-{stage}.pdf" for stage in STAGES)


def job(tmp_path, src, out, executor, encoder) -> str:
    path = tmp_path / f"job-{executor}.yaml"
    path.write_text(
        f"mode: incremental\nsource:\n  uri: {src}\noutput:\n  uri: {out}\n"
        f"runtime:\n  executor: {executor}\n  max_workers: 2\n"
        f"embedding:\n  enabled: true\n  model: {encoder}\n"
    )
    return str(path)


def check_isolated(out) -> None:
    docs = {d["source_uri"].rsplit("/", 1)[-1] for d in read_table(out, "documents").to_pylist()}
    errors = {e["source_uri"].rsplit("/", 1)[-1]: e for e in read_table(out, "errors").to_pylist()}
    states = {s["source_uri"].rsplit("/", 1)[-1]: s["status"] for s in read_table(out, "objects").to_pylist()}
    assert "good.pdf" in docs and "good.pdf" not in errors and states["good.pdf"] == "ok"
    for stage in STAGES:
        name = f"fails-{stage}.pdf"
        assert name in errors, f"{stage}: no error row"
        row = errors[name]
        assert (row["stage"], row["error_type"]) == (stage, "InjectedFault"), row
        assert row["message"] == f"injected at object.{stage}" and row["segment_index"] == -1
        assert (name in docs) == (stage in DOCUMENT_STANDS), stage
        assert states[name] == "failed", stage  # tried again by the next incremental run


@pytest.mark.parametrize("executor", ["local", "ray", "beam"])
def test_a_failure_at_any_stage_is_its_objects_error_row_and_the_run_commits(tmp_path, executor, encoder):
    if executor == "beam":
        pytest.importorskip("apache_beam")
    src, out = faulted_folder(tmp_path / "src"), tmp_path / "out"
    r = unitok_cli("run", job(tmp_path, src, out, executor, encoder), env_extra={"UNITOK_FAIL_AT": FAULTS})
    assert r.returncode == 0, r.stderr[-3000:]
    check_isolated(out)
    if executor != "local":
        return
    # Without the faults, the next run converts the failed objects (and only those) again.
    again = unitok_cli("run", job(tmp_path, src, out, executor, encoder), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    docs = {d["source_uri"].rsplit("/", 1)[-1] for d in read_table(out, "documents").to_pylist()}
    assert len(docs) == 1 + len(STAGES) and not read_table(out, "errors").num_rows
    assert json.loads(again.stdout)["converted_objects"] == len(STAGES)


@pytest.mark.parametrize("stage", STAGES[:-1])
def test_the_python_api_returns_a_failed_stage_as_the_documents_error(stage, monkeypatch, encoder):
    monkeypatch.setenv("UNITOK_FAIL_AT", f"object.{stage}")
    config = {"embedding": {"enabled": True, "model": str(encoder)}}
    doc = unitok.convert(REPO / "sample" / "field-report.pdf", config=config)
    (error,) = [e for e in doc.errors if e["segment_index"] == -1]
    assert (error["stage"], error["error_type"]) == (stage, "InjectedFault")
    assert not doc.ok and (doc.markdown is None) == (stage not in DOCUMENT_STANDS)


# Characters outside the BMP as UTF-16 code units, as a PDF's ToUnicode map writes them: letters and
# digits (inside words), and symbols (tokens of their own, as emoji stand in text).
LETTERS = {
    "\U0001d400": "D835DC00",  # MATHEMATICAL BOLD CAPITAL A
    "\U0001d7ec": "D835DFEC",  # MATHEMATICAL SANS-SERIF BOLD DIGIT ZERO
    "\U00020000": "D840DC00",  # CJK Extension B
}
SYMBOLS = {
    "\U0001f600": "D83DDE00",  # GRINNING FACE
    "\U0001f4a7": "D83DDCA7",  # DROPLET
    "\U000f0001": "DB80DC01",  # plane 15, private use
    "\U00100fff": "DBC3DFFF",  # plane 16, private use
}
LONE = ("D800", "DBFF", "DC00", "DFFF")


def astral_pdf(seed: int) -> tuple[bytes, list[str], int]:
    """A PDF of words with letters outside the BMP among ASCII ones, and symbols outside the BMP and lone
    surrogates between them (the capitals of /F1, glyphs Helvetica has, map to them): its bytes, the
    words as they must come out, how many lone surrogates it holds."""
    rng = random.Random(seed)
    table = {c: f"{c:04X}" for c in range(0x20, 0x7F)}
    letters, symbols = list(LETTERS.items()), list(SYMBOLS.items())
    for k, (_, units) in enumerate(letters + symbols):
        table[ord("A") + k] = units
    for k, units in enumerate(LONE):
        table[ord("W") + k] = units
    words, expected, lone = [], [], 0
    for _ in range(24):
        if rng.random() < 0.15:  # a symbol, or a lone surrogate, standing alone
            if rng.random() < 0.7:
                k = rng.randrange(len(symbols))
                words.append(chr(ord("A") + len(letters) + k))
                expected.append(symbols[k][0])
            else:
                words.append(chr(ord("W") + rng.randrange(len(LONE))))
                expected.append("\ufffd")
                lone += 1
            continue
        code = out = ""
        for _ in range(rng.randint(2, 7)):
            if rng.random() < 0.7:
                letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
                code, out = code + letter, out + letter
            else:
                k = rng.randrange(len(letters))
                code, out = code + chr(ord("A") + k), out + letters[k][0]
        words.append(code)
        expected.append(out)
    content = "".join(text_at(72, 700 - 20 * i, " ".join(words[i : i + 8])) for i in range(0, 24, 8))
    return hand_pdf(content, table), expected, lone


def test_text_outside_the_bmp_comes_out_as_its_characters_and_lone_surrogates_are_counted(tmp_path):
    for seed in range(20):
        data, expected, lone = astral_pdf(seed)
        doc = unitok.convert(data, name=f"astral-{seed}.pdf")
        assert doc.ok, (seed, doc.errors)
        assert doc.markdown.split() == expected, seed
        doc.markdown.encode("utf-8")  # valid Unicode
        warned = [w for w in doc.warnings if "not valid Unicode" in w]
        if lone:
            assert warned == [f"page 1: {lone} character{'s' if lone > 1 else ''} "
                              f"{'that are' if lone > 1 else 'that is'} not valid Unicode (lone surrogates) "
                              "replaced with U+FFFD"], (seed, warned)  # fmt: skip
        else:
            assert not warned


def test_a_folder_with_astral_pdfs_among_good_files_commits_them_all(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    shutil.copy(REPO / "sample" / "field-report.pdf", src / "good.pdf")
    expected = {}
    for seed in range(3):
        data, words, _ = astral_pdf(100 + seed)
        (src / f"astral-{seed}.pdf").write_bytes(data)
        expected[f"astral-{seed}.pdf"] = words
    r = unitok_cli("run", "configs/demo.yaml", "--source", str(src), "--output", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    docs = {
        d["source_uri"].rsplit("/", 1)[-1]: d["markdown"] for d in read_table(out, "documents").to_pylist()
    }
    assert set(docs) == {"good.pdf", *expected} and not read_table(out, "errors").num_rows
    for name, words in expected.items():
        assert docs[name].split() == words
    chunks = read_table(out, "chunks").to_pylist()
    assert any("\U0001d400" in c["text"] for c in chunks)


def plain_job(tmp_path, src, out, executor: str = "local") -> str:
    path = tmp_path / f"plain-{executor}.yaml"
    path.write_text(
        f"mode: incremental\nsource:\n  uri: {src}\noutput:\n  uri: {out}\n"
        f"runtime:\n  executor: {executor}\n  max_workers: 2\n"
    )
    return str(path)


def reports_folder(folder, n: int):
    folder.mkdir()
    for i in range(n):
        shutil.copy(REPO / "sample" / "field-report.pdf", folder / f"report-{i}.pdf")
    shutil.copy(REPO / "sample" / "field-report.pdf", folder / "poison.pdf")
    return folder


def test_an_object_that_kills_its_worker_is_named_and_skipped_until_it_changes(tmp_path):
    src, out = reports_folder(tmp_path / "src", 5), tmp_path / "out"
    job_file = plain_job(tmp_path, src, out)
    kill = {"UNITOK_KILL_AT": "object.split@poison.pdf"}
    r = unitok_cli("run", job_file, "--json", env_extra=kill)
    assert r.returncode == 0, r.stderr[-3000:]
    docs = {d["source_uri"].rsplit("/", 1)[-1] for d in read_table(out, "documents").to_pylist()}
    assert docs == {f"report-{i}.pdf" for i in range(5)}
    (error,) = read_table(out, "errors").to_pylist()
    assert error["source_uri"].endswith("/poison.pdf") and error["stage"] == "worker"
    assert error["error_type"] == "WorkerCrashed"
    assert (
        error["message"]
        == "the worker converting this object was killed by SIGKILL (out of memory, or killed)"
    )
    states = {s["source_uri"].rsplit("/", 1)[-1]: s["status"] for s in read_table(out, "objects").to_pylist()}
    assert states["poison.pdf"] == "crashed"
    assert "poison.pdf" in r.stderr and "recorded as crashed" in r.stderr
    # The next run does not feed it to a worker again (it would kill one each run) ...
    again = unitok_cli("run", job_file, "--json", env_extra=kill)
    assert again.returncode == 0 and json.loads(again.stdout)["converted_objects"] == 0, again.stderr[-2000:]
    # ... until asked to, or until it changes.
    retried = unitok_cli("run", job_file, "--json", "--retry-failed")
    assert retried.returncode == 0 and json.loads(retried.stdout)["converted_objects"] == 1
    assert not read_table(out, "errors").num_rows and len(read_table(out, "documents")) == 6


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def _gone(pid: int, timeout_s: float) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_a_stopped_driver_leaves_no_worker_behind(tmp_path, sig):
    import signal

    from unitok.pipeline.core.testhooks import release, wait_reached

    src, out = reports_folder(tmp_path / "src", 3), tmp_path / "out"
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "UNITOK_PAUSE_AT": "converted.batch",
           "UNITOK_PAUSE_DIR": str(pause)}  # fmt: skip
    proc = subprocess.Popen([*UNITOK, "run", plain_job(tmp_path, src, out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_reached(pause, "converted.batch", alive=lambda: proc.poll() is None)
        workers = _children(proc.pid)
        assert workers, "no pool worker"
        proc.send_signal(getattr(signal, sig))
        _, stderr = proc.communicate(timeout=60)  # the workers held stdout too: this returns once all end
    finally:
        release(pause, "converted.batch")
        if proc.poll() is None:
            proc.kill()
    # Each had stdout open: communicate returned once they had all closed it. A dying process closes its
    # files before it becomes a zombie, so the last may still be exiting: it must be gone within seconds.
    for pid in workers:
        assert _gone(pid, 30), f"worker {pid} outlived the driver"
    if sig == "SIGTERM":
        assert proc.returncode == 143
        assert (
            stderr.strip().splitlines()[-1]
            == "unitok: terminated (SIGTERM); nothing was committed by this run"
        )


def test_on_ray_an_object_that_kills_its_workers_is_recorded_not_retried_forever(tmp_path):
    src, out = reports_folder(tmp_path / "src", 3), tmp_path / "out"
    r = unitok_cli(
        "run", plain_job(tmp_path, src, out, "ray"), env_extra={"UNITOK_KILL_AT": "object.split@poison.pdf"}
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(read_table(out, "documents")) == 3
    (error,) = read_table(out, "errors").to_pylist()
    assert error["source_uri"].endswith("/poison.pdf") and error["error_type"] == "WorkerCrashed"
    states = {s["source_uri"].rsplit("/", 1)[-1]: s["status"] for s in read_table(out, "objects").to_pylist()}
    assert states["poison.pdf"] == "crashed"


def test_a_file_name_that_is_not_utf8_is_converted_under_its_exact_uri(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    shutil.copy(REPO / "sample" / "field-report.pdf", src / "good.pdf")
    shutil.copy(
        REPO / "sample" / "field-report.pdf", os.fsdecode(bytes(src) + b"/caf\xe9 \xf0\x9f\x92\xa7.pdf")
    )
    r = unitok_cli("run", plain_job(tmp_path, src, out))
    assert r.returncode == 0, r.stderr[-3000:]
    uris = sorted(d["source_uri"] for d in read_table(out, "documents").to_pylist())
    # Latin-1 é as its byte, the droplet (UTF-8) as its bytes: the URI names the file exactly.
    assert [u.rsplit("/", 1)[-1] for u in uris] == ["caf%E9%20%F0%9F%92%A7.pdf", "good.pdf"]
    assert not read_table(out, "errors").num_rows


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Raw Windows-1252 bytes in headers and a body that declares no charset, as old mailers send them.
        (b"From: J\xf6rg <j@example.com>\r\nSubject: Gr\xfc\xdfe aus K\xf6ln\r\n"
         b"Content-Type: text/plain\r\n\r\nThe b\xe9ll rang twice.\r\n",
         "**From:** J\u00f6rg <j@example.com>  \n**Subject:** Gr\u00fc\u00dfe aus K\u00f6ln\n\n"
         "The b\u00e9ll rang twice."),
        # Raw UTF-8 beside an RFC 2047 word; characters outside the BMP in both.
        (b"From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\r\nSubject: Caf\xc3\xa9 \xf0\x9f\x92\xa7\r\n"
         b"Content-Type: text/plain\r\n\r\nThe b\xc3\xa9ll \xf0\x9f\x98\x80.\r\n",
         "**From:** J\u00f6rg <j@example.com>  \n**Subject:** Caf\u00e9 \U0001f4a7\n\n"
         "The b\u00e9ll \U0001f600."),
    ],
)  # fmt: skip
def test_e_mail_headers_and_bodies_in_raw_8_bit_keep_every_character(raw, expected):
    doc = unitok.convert(raw, name="message.eml")
    assert doc.ok and doc.markdown == expected


def test_sigterm_stops_a_ray_run_with_its_line(tmp_path):
    """ray.init makes SIGTERM a bare exit 15; the command's own handler is put back after it."""
    import signal

    from unitok.pipeline.core.testhooks import release, wait_reached

    src, out = reports_folder(tmp_path / "src", 2), tmp_path / "out"
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "UNITOK_PAUSE_AT": "converted.batch",
           "UNITOK_PAUSE_DIR": str(pause)}  # fmt: skip
    proc = subprocess.Popen([*UNITOK, "run", plain_job(tmp_path, src, out, "ray")], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_reached(pause, "converted.batch", alive=lambda: proc.poll() is None)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        release(pause, "converted.batch")
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr[-2000:]
    assert (
        stderr.strip().splitlines()[-1] == "unitok: terminated (SIGTERM); nothing was committed by this run"
    )
