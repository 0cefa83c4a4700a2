"""The HTTP API's memory under four hostile loads (`unitok serve`, Ray Serve): PSS and RSS of the ingress
replica (`ray::ServeReplica:unitok:Api`), the engine replica (`...:Engines`) and Serve's HTTP proxy
(`ray::ProxyActor`), sampled every 0.2 s during each load (peak) and a few seconds after it; PSS split into
the process's own pages (anon) and its share of Ray's object store (shmem).

1. uploads: three concurrent uploads of a 300 MiB PDF (a real two-page PDF with a 300 MiB stream object
   appended as an incremental update, so the server accepts and converts it) to /v1/convert/file;
2. unauthenticated: a 400 MB JSON body without X-Api-Key to /v1/convert/source on a server with a key:
   the time to the 401 and how much of the body had been sent by then; then the same body sent whole
   whatever the answer, as `requests` sends a body before reading the answer;
3. tasks: 2,000 async tasks of sample/field-report.pdf (/v1/convert/file/async), all submitted, then all
   polled to completion and their results fetched; one more past serve.max_tasks (503); then a second
   server with serve.max_tasks 100 taking 200 submissions;
4. ocr: 20 distinct ocr_lang values (combinations and BCP-47 variants of the installed Tesseract packs,
   and packs that are not installed) on sample/scanned-memo.pdf, one request each: the engine replica's
   memory after each, against the distinct values and the distinct engine sets they need
   (serve.max_engine_sets at its default 4).

    python bench/bench_serve_memory.py [--quick] [--loads ocr,unauthenticated,uploads,tasks]
                                       [--upload-mib 300] [--out out/bench_serve_memory.json]

--quick: 30 MiB uploads, a 40 MB body, 200 tasks (a second server with max_tasks 20), 8 languages. The
servers run on 127.0.0.1 with a private Ray folder; every process they started is ended at the end (any
left is named in the JSON). A table on stdout, everything in the JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from tree_memory import _children  # noqa: E402 - shared by the benchmarks in this folder

MIB = 1 << 20
ROLES = {
    "api": "ray::ServeReplica:unitok:Api",
    "engines": "ray::ServeReplica:unitok:Engines",
    "proxy": "ray::ProxyActor",
}
# Request values and what they should resolve to with eng and deu installed: every value is distinct on
# the wire; the engine sets they need are fewer (eng, deu, eng+deu, deu+eng, auto).
LANGS: list[list[str]] = [
    ["en"],
    ["de"],
    ["en", "de"],
    ["de", "en"],
    ["mul"],
    ["de-DE"],
    ["en-US"],
    ["en-GB", "de-AT"],
    ["de-CH", "en-US"],
    ["deu"],
    ["eng", "deu"],
    ["fr", "de"],
    ["en", "es"],
    ["de", "fr", "en"],
    ["en", "de", "fr", "es"],
    ["de-DE", "de-AT"],
    ["en-AU", "en"],
    ["en-CA", "de-LU"],
    ["de-LI", "en-NZ"],
    ["en-Latn-US"],
]
LOADS = ("ocr", "unauthenticated", "uploads", "tasks")
QUICK_LANGS = [["en"], ["de"], ["en", "de"], ["de", "en"], ["mul"], ["de-DE"], ["fr", "de"], ["en-US"]]


# -- memory ---------------------------------------------------------------------------------------------
# PSS split by kind: the process's own heap (anon) and Ray's object store, a tmpfs file in /dev/shm that
# every process putting or getting an object maps (shmem; its pages are split among the mappers).
_KEYS = {"Pss:": "pss_mib", "Rss:": "rss_mib", "Pss_Anon:": "anon_mib", "Pss_Shmem:": "shmem_mib"}


def _rollup(pid: int) -> dict[str, int]:
    """PSS, RSS, PSS of anonymous and of shared-memory pages, in KiB."""
    out = dict.fromkeys(_KEYS.values(), 0)
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key = _KEYS.get(line.split(maxsplit=1)[0])
                if key:
                    out[key] = int(line.split()[1])
    except OSError:
        pass
    return out


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


class Sampler:
    """Per role (and the whole tree), PSS and RSS in MiB; a thread keeps each role's peak since `begin`.
    Roles are found by the replicas' process titles among the server's descendants, so another Ray on the
    machine is never counted."""

    def __init__(self, root: int, interval: float = 0.2):
        self.root, self.interval = root, interval
        self.pids: dict[str, list[int]] = {}
        self.seen: set[int] = set()
        self.peak: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._found = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _find(self) -> None:
        tree = _children(self.root)
        self.seen.update(tree)
        self.pids = {
            role: [p for p in tree if _title(p).startswith(title)] for role, title in ROLES.items()
        } | {"tree": tree}
        self._found = time.monotonic()

    def snapshot(self) -> dict[str, dict[str, float]]:
        # A replica that restarts has a new pid: look again every 2 s.
        if time.monotonic() - self._found > 2.0:
            self._find()
        out = {}
        for role, pids in self.pids.items():
            kib = [_rollup(p) for p in pids]
            out[role] = {k: round(sum(x[k] for x in kib) / 1024, 1) for k in _KEYS.values()}
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            snap = self.snapshot()
            with self._lock:
                for role, m in snap.items():
                    peak = self.peak.setdefault(role, dict(m))
                    for k, v in m.items():
                        peak[k] = max(peak[k], v)
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._find()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def begin(self) -> dict[str, dict[str, float]]:
        """Peaks reset; the memory now (the load's 'before')."""
        snap = self.snapshot()
        with self._lock:
            self.peak = {role: dict(m) for role, m in snap.items()}
        return snap

    def peaks(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {role: dict(m) for role, m in self.peak.items()}

    def settled(self, seconds: float = 3.0) -> dict[str, dict[str, float]]:
        """The memory once the load is over (freed buffers returned, Serve's own timers run)."""
        time.sleep(seconds)
        return self.snapshot()


def phase(sampler: Sampler, work: Callable[[], dict[str, Any]], settle_s: float = 3.0) -> dict[str, Any]:
    before = sampler.begin()
    t0 = time.perf_counter()
    out = work()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    # The peak runs on through the settling: a load's buffers may still be in use after its answers.
    after = sampler.settled(settle_s)
    out["memory"] = {"before": before, "peak": sampler.peaks(), "after": after}
    return out


# -- the server -----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    config: dict[str, Any]
    work: Path
    name: str
    port: int = 0
    proc: subprocess.Popen | None = None
    ray_dir: Path | None = None
    sampler: Sampler | None = None
    leftovers: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.work / f"{self.name}.log"

    def start(self, timeout_s: float = 300) -> float:
        import requests

        path = self.work / f"{self.name}.yaml"
        path.write_text(json.dumps(self.config))  # JSON is YAML
        # Ray's session folder under a short private path (socket paths have a length limit): nothing is
        # shared with another Ray on the machine, and every process of this one names it.
        self.ray_dir = Path(tempfile.mkdtemp(prefix="ubsm-", dir="/tmp"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        env |= {"RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(self.ray_dir)}
        # Ray's memory monitor kills workers when the node is nearly full, whoever fills it: on a machine
        # shared with other work it killed this server's replicas for another process's 18 GB, which would
        # end the measurement rather than measure anything of the server's.
        env["RAY_memory_monitor_refresh_ms"] = "0"
        self.port = free_port()
        cmd = [str(REPO / ".venv/bin/unitok"), "serve", str(path), "--host", "127.0.0.1"]
        t0 = time.perf_counter()
        with open(self.log, "wb") as log:
            # A session (and process group) of its own: stopped by its group at the end.
            self.proc = subprocess.Popen(
                cmd + ["--port", str(self.port)],
                env=env,
                cwd=self.work,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if requests.get(f"{self.url}/ready", timeout=5).status_code == 200:
                    self.sampler = Sampler(self.proc.pid)
                    self.sampler.start()
                    missing = [r for r in ROLES if not self.sampler.pids.get(r)]
                    if missing:
                        raise SystemExit(f"{self.name}: no process titled {[ROLES[r] for r in missing]}")
                    return time.perf_counter() - t0
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.name} not ready in {timeout_s:.0f} s:\n{self.tail()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _mine(self) -> list[int]:
        """Processes still alive that this server started: in its session, seen in its tree, or naming
        its private Ray folder in their command line or environment (Ray's workers retitle themselves)."""
        assert self.proc is not None
        key = str(self.ray_dir).encode()
        seen = self.sampler.seen if self.sampler else set()
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
                if rest[0] == "Z":
                    continue
                if int(rest[3]) == self.proc.pid or pid in seen:
                    out.append(pid)
                    continue
                for part in ("cmdline", "environ"):
                    with open(f"/proc/{pid}/{part}", "rb") as f:
                        if key in f.read():
                            out.append(pid)
                            break
            except (OSError, IndexError, ValueError):
                pass
        return out

    def stop(self) -> None:
        """SIGTERM to the server (it drains and shuts its Ray down), its process group after a minute, then
        SIGKILL to each process of its own still alive."""
        if self.sampler:
            self.sampler.stop()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        deadline = time.monotonic() + 15
        left = self._mine()
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = self._mine()
        for pid in left:
            try:
                self.leftovers.append(_title(pid)[:120])
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def config(work: Path, key: str, upload_mib: int, max_tasks: int, inflight_mib: int = 1024) -> dict[str, Any]:
    return {
        "source": {"uri": str(work)},
        "output": {"uri": str(work / "out")},
        # docling-serve's convert routes do not chunk: neither do these requests.
        "chunking": {"enabled": False},
        "ocr": {"languages": "eng"},
        "serve": {
            "api_key": key,
            "max_upload_mib": upload_mib + 16,
            # Three 300 MiB bodies at once on a loaded 2-core machine: the default 60 s is for clients,
            # not for this measurement.
            "body_timeout_s": 600,
            "request_timeout_s": 1800,
            "max_tasks": max_tasks,
            "max_engine_sets": 4,
            "max_inflight_mib": inflight_mib,
        },
    }


# -- clients --------------------------------------------------------------------------------------------
def padded_pdf(base: bytes, pad: int) -> tuple[bytes, int, bytes]:
    """(head, padding size, tail) of a PDF that is `base` plus an incremental update holding one stream
    object of `pad` bytes: a valid PDF of any size, written to the wire without being held in memory."""
    tail = base.rstrip()
    prev = int(tail.rsplit(b"startxref", 1)[1].split()[0])
    size = int(base.split(b"/Size", 1)[1].split()[0])
    root = base.split(b"/Root", 1)[1].split(b"R", 1)[0].strip() + b" R"
    offset = len(base) + 1
    head = base + b"\n" + f"{size} 0 obj\n<< /Length {pad} >>\nstream\n".encode()
    end = b"\nendstream\nendobj\n"
    xref = len(head) + pad + len(end)
    end += (
        f"xref\n0 1\n0000000000 65535 f \n{size} 1\n{offset:010d} 00000 n \n"
        f"trailer\n<< /Size {size + 1} /Root {root.decode()} /Prev {prev} >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return head, pad, end


def multipart(
    name: str, head: bytes, pad: int, end: bytes, fields: list[tuple[str, str]]
) -> tuple[str, int, Iterator[bytes]]:
    """(content type, length, chunks) of a multipart body with one file, streamed in 1 MiB chunks."""
    boundary = secrets.token_hex(16)
    pre = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    disposition = '\r\n--{}\r\nContent-Disposition: form-data; name="{}"\r\n\r\n{}'
    post = b"".join(disposition.format(boundary, k, v).encode() for k, v in fields)
    post += f"\r\n--{boundary}--\r\n".encode()
    length = len(pre) + len(head) + pad + len(end) + len(post)

    def chunks() -> Iterator[bytes]:
        yield pre + head
        block = b"\0" * MIB
        left = pad
        while left:
            n = min(left, MIB)
            yield block[:n]
            left -= n
        yield end + post

    return f"multipart/form-data; boundary={boundary}", length, chunks()


def big_upload(url_port: int, key: str, head: bytes, pad: int, end: bytes) -> dict[str, Any]:
    ctype, length, body = multipart("big.pdf", head, pad, end, [("to_formats", "md")])
    conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=1800)
    t0 = time.perf_counter()
    conn.putrequest("POST", "/v1/convert/file")
    for k, v in (("Content-Type", ctype), ("Content-Length", str(length)), ("X-Api-Key", key)):
        conn.putheader(k, v)
    conn.endheaders()
    for chunk in body:
        conn.send(chunk)
    sent = time.perf_counter() - t0
    r = conn.getresponse()
    data = r.read()
    conn.close()
    out: dict[str, Any] = {
        "http": r.status,
        "bytes": length,
        "sent_s": round(sent, 1),
        "answered_s": round(time.perf_counter() - t0, 1),
    }
    try:
        doc = json.loads(data)
        out["status"] = doc.get("status")
        out["errors"] = [e.get("error_message", "")[:160] for e in doc.get("errors") or []][:3]
        out["md_chars"] = len((doc.get("document") or {}).get("md_content") or "")
    except (ValueError, AttributeError):
        out["body"] = data[:200].decode(errors="replace")
    return out


def unauthenticated_body(port: int, size: int, whole: bool = False) -> dict[str, Any]:
    """A JSON body of `size` bytes without X-Api-Key, sent by one thread while this one waits for the
    answer: the server should answer before it has the body. whole: the client sends all of it whatever
    the answer (as `requests` and most clients do, reading the answer only after the body)."""
    prefix = b'{"sources": [{"kind": "file", "filename": "x.pdf", "base64_string": "'
    suffix = b'"}]}'
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(2.0)
    head = (
        f"POST /v1/convert/source HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    sent = 0
    stop = threading.Event()
    send_error: list[str] = []

    def send() -> None:
        nonlocal sent
        block = b"A" * MIB
        try:
            sock.sendall(head + prefix)
            sent = len(prefix)
            while sent < size - len(suffix) and (whole or not stop.is_set()):
                n = min(MIB, size - len(suffix) - sent)
                try:
                    sock.sendall(block[:n])
                except TimeoutError:
                    if whole and time.monotonic() > give_up:
                        raise
                    continue  # the server is not reading: its window is full
                sent += n
            if whole or not stop.is_set():
                sock.sendall(suffix)
                sent += len(suffix)
        except OSError as e:
            send_error.append(f"{type(e).__name__}: {e}")

    t0 = time.perf_counter()
    give_up = time.monotonic() + 120
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    deadline = time.monotonic() + 600
    while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
        try:
            got = sock.recv(65536)
        except TimeoutError:
            continue
        if not got:
            break
        answer += got
    elapsed = time.perf_counter() - t0
    sent_then = sent
    stop.set()
    sender.join(150 if whole else 10)
    sock.close()
    status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    return {
        "status_line": status_line,
        "http": int(status_line.split()[1]) if len(status_line.split()) > 1 else None,
        "body_bytes": size,
        "answer_s": round(elapsed, 3),
        "sent_before_answer_mib": round(sent_then / MIB, 1),
        "sent_in_all_mib": round(sent / MIB, 1),
        "send_s": round(time.perf_counter() - t0, 1),
        "send_error": send_error[0] if send_error else None,
    }


def async_tasks(server: Server, key: str, pdf: bytes, n: int, threads: int = 8) -> dict[str, Any]:
    import requests

    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.headers["X-Api-Key"] = key
        return local.s

    def submit(i: int) -> tuple[int, str | None]:
        r = session().post(
            f"{server.url}/v1/convert/file/async",
            files=[("files", (f"report-{i}.pdf", pdf))],
            data={"to_formats": "md"},
            timeout=300,
        )
        return r.status_code, r.json().get("task_id") if r.status_code == 200 else None

    def wait(task_id: str) -> str:
        while True:
            r = session().get(f"{server.url}/v1/status/poll/{task_id}", params={"wait": 10}, timeout=60)
            r.raise_for_status()
            status = r.json()["task_status"]
            if status in ("success", "failure", "partial_success"):
                return status

    def fetch(task_id: str) -> tuple[int, int]:
        r = session().get(f"{server.url}/v1/result/{task_id}", timeout=60)
        return r.status_code, len(r.content)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        submitted = list(pool.map(submit, range(n)))
        t_submit = time.perf_counter() - t0
        ids = [t for code, t in submitted if code == 200 and t]
        statuses = list(pool.map(wait, ids))
        t_done = time.perf_counter() - t0
        results = list(pool.map(fetch, ids))
    codes: dict[str, int] = {}
    for code, _ in submitted:
        codes[str(code)] = codes.get(str(code), 0) + 1
    return {
        "submitted": n,
        "answers": codes,
        "submit_s": round(t_submit, 1),
        "all_done_s": round(t_done, 1),
        "succeeded": statuses.count("success"),
        "results_200": sum(1 for code, _ in results if code == 200),
        "results_mib": round(sum(size for _, size in results) / MIB, 2),
    }


def past_max_tasks(server: Server, key: str, pdf: bytes, n: int) -> dict[str, Any]:
    import requests

    codes: dict[str, int] = {}
    retry_after = detail = None
    with requests.Session() as s:
        s.headers["X-Api-Key"] = key
        for i in range(n):
            r = s.post(
                f"{server.url}/v1/convert/file/async",
                files=[("files", (f"report-{i}.pdf", pdf))],
                data={"to_formats": "md"},
                timeout=300,
            )
            codes[str(r.status_code)] = codes.get(str(r.status_code), 0) + 1
            if r.status_code == 503 and retry_after is None:
                retry_after = r.headers.get("retry-after")
                detail = r.json().get("detail")
    return {"submitted": n, "answers": codes, "retry_after": retry_after, "detail": detail}


def resolved(tags: list[str], installed: set[str]) -> str:
    """The engine set a request's ocr_lang ends up with, as the ingress resolves it."""
    from unitok.pipeline.drivers.docling_api import tesseract_languages

    langs = tesseract_languages(tags)
    if langs == "auto":
        return langs
    return "+".join(x for x in langs.split("+") if x in installed)


def ocr_languages(server: Server, key: str, pdf: bytes, values: list[list[str]]) -> dict[str, Any]:
    import requests

    assert server.sampler is not None
    installed = {p.stem for p in Path("/usr/share").glob("tesseract-ocr/*/tessdata/*.traineddata")} - {"osd"}
    with requests.Session() as s:
        s.headers["X-Api-Key"] = key

        def convert(fields: list[tuple[str, str]]) -> tuple[int, dict[str, Any], float]:
            t0 = time.perf_counter()
            r = s.post(
                f"{server.url}/v1/convert/file",
                files=[("files", ("scanned-memo.pdf", pdf))],
                data=[("to_formats", "md"), *fields],
                timeout=600,
            )
            return r.status_code, (r.json() if r.status_code == 200 else {}), time.perf_counter() - t0

        # The config's own set (eng) is loaded on the first OCR, not at start: that is the baseline.
        code, _, _ = convert([])
        if code != 200:
            raise SystemExit(f"ocr warm-up: HTTP {code}")
        time.sleep(1.0)
        base = server.sampler.snapshot()["engines"]
        sets = {"eng"}
        steps = []
        for i, tags in enumerate(values, 1):
            code, doc, secs = convert([("ocr_lang", t) for t in tags])
            sets.add(resolved(tags, installed))
            time.sleep(1.0)
            m = server.sampler.snapshot()["engines"]
            steps.append(
                {
                    "n": i,
                    "ocr_lang": ",".join(tags),
                    "tesseract": resolved(tags, installed),
                    "distinct_sets": len(sets),
                    "http": code,
                    "status": doc.get("status"),
                    "md_chars": len((doc.get("document") or {}).get("md_content") or ""),
                    "seconds": round(secs, 1),
                    "engines_pss_mib": m["pss_mib"],
                    "engines_rss_mib": m["rss_mib"],
                    "growth_pss_mib": round(m["pss_mib"] - base["pss_mib"], 1),
                }
            )
            print(
                f"  ocr_lang {steps[-1]['ocr_lang']:<16} -> {steps[-1]['tesseract']:<8} "
                f"{code} {doc.get('status')}, engines PSS {m['pss_mib']:.0f} MiB "
                f"({steps[-1]['growth_pss_mib']:+.1f})",
                file=sys.stderr,
                flush=True,
            )
    return {"installed": sorted(installed), "baseline_engines": base, "steps": steps}


# -- report ---------------------------------------------------------------------------------------------
def row(load: str, role: str, mem: dict[str, Any], note: str = "") -> str:
    b, p, a = (mem[k].get(role, {}) for k in ("before", "peak", "after"))
    return (
        f"| {load} | {role} | {b.get('pss_mib', 0):.0f} | {p.get('pss_mib', 0):.0f} | "
        f"{a.get('pss_mib', 0):.0f} | {a.get('anon_mib', 0):.0f} / {a.get('shmem_mib', 0):.0f} | "
        f"{p.get('rss_mib', 0):.0f} | {note} |"
    )


def report(res: dict[str, Any]) -> None:
    print(
        f"\nMiB; PSS before, peak (during and until 'after') and {res['settle_s']:.0f} s after each load; "
        "of the PSS after, the process's own (anon) and its share of Ray's object store (shmem); RSS peak. "
        f"Load average {res['loadavg_start']} at the start, {res['loadavg_end']} at the end."
    )
    head = "| load | process | PSS before | PSS peak | PSS after | after: anon / shmem | RSS peak |"
    print(head + " what happened |")
    print("|---|---|---|---|---|---|---|---|")
    if "uploads" in res:
        up = res["uploads"]
        note = (
            f"3 × {up['size_mib']:.0f} MiB: HTTP {[u['http'] for u in up['requests']]}, "
            f"{[u.get('status') for u in up['requests']]}, "
            f"answered in {max(u['answered_s'] for u in up['requests']):.0f} s"
        )
        for role in ("api", "proxy", "engines", "tree"):
            print(row("uploads", role, up["memory"], note if role == "api" else ""))
    for name in ("unauthenticated", "unauthenticated_whole"):
        if name in res:
            un = res[name]
            note = (
                f"{un['body_bytes'] / 1e6:.0f} MB body: {un['status_line']} after "
                f"{un['answer_s'] * 1000:.0f} ms, {un['sent_before_answer_mib']} MiB of it sent by then, "
                f"{un['sent_in_all_mib']} MiB in all ({un['send_error'] or 'no send error'})"
            )
            for role in ("api", "proxy"):
                print(row(name, role, un["memory"], note if role == "api" else ""))
    if "tasks" in res:
        at = res["tasks"]
        note = (
            f"{at['submitted']} submitted {at['answers']}, {at['succeeded']} succeeded, {at['results_200']} "
            f"results fetched ({at['results_mib']} MiB); one more: {at['one_more']['answers']}"
        )
        for role in ("api", "proxy", "engines"):
            print(row("async tasks", role, at["memory"], note if role == "api" else ""))
    if "small_max_tasks" in res:
        sm = res["small_max_tasks"]
        note = (
            f"max_tasks {sm['max_tasks']}: {sm['submitted']} submitted → {sm['answers']}, Retry-After "
            f"{sm['retry_after']}"
        )
        print(row("past max_tasks", "api", sm["memory"], note))
    if "ocr_languages" in res:
        oc = res["ocr_languages"]
        print(
            "\nocr_lang: the engine replica after each request (baseline after one OCR request in the "
            f"config's language: {oc['baseline_engines']['pss_mib']:.0f} MiB PSS); "
            f"installed {oc['installed']}"
        )
        print("| n | ocr_lang | Tesseract set | distinct sets | status | engines PSS | growth | RSS |")
        print("|---|---|---|---|---|---|---|---|")
        for s in oc["steps"]:
            print(
                f"| {s['n']} | {s['ocr_lang']} | {s['tesseract']} | {s['distinct_sets']} | {s['status']} | "
                f"{s['engines_pss_mib']:.0f} | {s['growth_pss_mib']:+.1f} | {s['engines_rss_mib']:.0f} |"
            )
    print(f"\nleft behind: {res['leftovers'] or 'nothing'}; JSON: {res['out']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="30 MiB uploads, 200 tasks, 8 languages")
    p.add_argument("--out", default="out/bench_serve_memory.json")
    p.add_argument("--settle", type=float, default=3.0, help="seconds after a load before 'after'")
    p.add_argument("--loads", default=",".join(LOADS), help=f"some of {','.join(LOADS)}")
    p.add_argument("--upload-mib", type=int, help="the uploads' size (default 300, 30 with --quick)")
    p.add_argument("--inflight-mib", type=int, default=1024, help="serve.max_inflight_mib (its default)")
    args = p.parse_args()
    loads = set(args.loads.split(","))
    if loads - set(LOADS):
        raise SystemExit(f"--loads: not one of {LOADS}: {sorted(loads - set(LOADS))}")
    upload_mib = args.upload_mib or (30 if args.quick else 300)
    n_tasks = 200 if args.quick else 2000
    body_bytes = 40_000_000 if args.quick else 400_000_000
    small_max, small_n = (20, 40) if args.quick else (100, 200)
    values = QUICK_LANGS if args.quick else LANGS

    key = secrets.token_hex(16)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-memory-"))
    report_pdf = (REPO / "sample/field-report.pdf").read_bytes()
    scanned = (REPO / "sample/scanned-memo.pdf").read_bytes()
    res: dict[str, Any] = {
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "settle_s": args.settle,
    }
    servers: list[Server] = []
    ok = False
    try:
        main_server = Server(config(work, key, upload_mib, n_tasks, args.inflight_mib), work, "serve")
        servers.append(main_server)
        res["start_s"] = round(main_server.start(), 1)
        sampler = main_server.sampler
        assert sampler is not None
        res["ready"] = sampler.snapshot()
        print(f"ready in {res['start_s']} s on port {main_server.port}", file=sys.stderr, flush=True)

        # The engine set growth first, on a replica that has converted nothing big yet.
        if "ocr" in loads:
            res["ocr_languages"] = ocr_languages(main_server, key, scanned, values)

        if "unauthenticated" in loads:
            for name, whole in (("unauthenticated", False), ("unauthenticated_whole", True)):
                send = lambda w=whole: unauthenticated_body(main_server.port, body_bytes, w)  # noqa: E731
                res[name] = phase(sampler, send, args.settle)
                print(f"{name}: {res[name]['status_line']}", file=sys.stderr, flush=True)

        head, pad, end = padded_pdf(report_pdf, upload_mib * MIB - len(report_pdf) - 256)

        def uploads() -> dict[str, Any]:
            with ThreadPoolExecutor(3) as pool:
                calls = [pool.submit(big_upload, main_server.port, key, head, pad, end) for _ in range(3)]
                return {
                    "size_mib": round((len(head) + pad + len(end)) / MIB, 1),
                    "requests": [c.result() for c in calls],
                }

        if "uploads" in loads:
            res["uploads"] = phase(sampler, uploads, args.settle)
            print(f"uploads: {res['uploads']['requests']}", file=sys.stderr, flush=True)

        def tasks() -> dict[str, Any]:
            out = async_tasks(main_server, key, report_pdf, n_tasks)
            out["one_more"] = past_max_tasks(main_server, key, report_pdf, 1)
            return out

        if "tasks" in loads:
            res["tasks"] = phase(sampler, tasks, args.settle)
            print(f"tasks: {res['tasks']['answers']}, one more {res['tasks']['one_more']}", file=sys.stderr)
        main_server.stop()

        if "tasks" in loads:
            small = Server(config(work, key, 8, small_max), work, "serve-small-max-tasks")
            servers.append(small)
            small.start()
            assert small.sampler is not None
            res["small_max_tasks"] = phase(
                small.sampler, lambda: past_max_tasks(small, key, report_pdf, small_n)
            )
            res["small_max_tasks"]["max_tasks"] = small_max
        ok = True
    finally:
        for s in servers:
            s.stop()
            if s.ray_dir:
                shutil.rmtree(s.ray_dir, ignore_errors=True)
        res["leftovers"] = [x for s in servers for x in s.leftovers]
        res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:  # the servers' logs say why
            print(f"servers' logs kept in {work}", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res["out"] = str(out)
    out.write_text(json.dumps(res, indent=1))
    report(res)


if __name__ == "__main__":
    main()
