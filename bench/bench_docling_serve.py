"""`unitok serve` against docling-serve 1.38.2 on the same machine, the same files and the same route:
POST /v1/convert/file (multipart `files`, plus `--fields`), at 1, 4 and 16 concurrent clients, the two
servers alternating round by round in one run. Per round: requests/s, p50 and p95 latency, the server's CPU
time per request; per server: PSS and RSS summed over its whole process tree (Ray's processes for unitok)
when ready, after a warm-up, and after all the rounds' requests (1,000 by default). Both servers are
started here, fresh, on 127.0.0.1 with free ports, and stopped at the end, every process of theirs.

Files: the corpus decks (pptx/) and the Word, spreadsheet and web page the tests build (tests/
test_documents.py, bench/bench_documents.py), formats docling converts without a model.

docling-serve runs from a venv of its own (`make docling-serve-venv`, or by hand:
    uv venv -p 3.11 /tmp/docling-serve-venv
    uv pip install --python /tmp/docling-serve-venv/bin/python docling-serve==1.38.2 torch==2.13.0
with the CPU build of torch 2.13.0 where the index would otherwise give the CUDA one). Without model
weights it still starts and converts these formats, given two things done here (docs/benchmarks.md says
why): a launcher that declares the two torchvision operators whose registration breaks `import
torchvision` when its CUDA build runs on a CPU torch, and, only on docling's requests, the fields
`pipeline=vlm` and `vlm_pipeline_model=granite_vision_ollama` (every request builds the PDF pipeline
first, and the standard one loads the layout model; this one is an API client that nothing here calls).

    python bench/bench_docling_serve.py [--quick] [--fields to_formats=md] [--unitok-rev HEAD]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests")]

from docling_offline import TORCHVISION_PREAMBLE  # noqa: E402
from tree_memory import _children, _pss_kib  # noqa: E402

CLIENTS = (1, 4, 16)
# Fewer requests at one client: a docling-serve request there waits out its 2 s status poll, and more of
# them would add minutes without changing a percentile.
REQUESTS = (100, 300, 600)
QUICK_REQUESTS = (10, 20, 20)
DOCLING_FIELDS = "pipeline=vlm,vlm_pipeline_model=granite_vision_ollama"
CORPUS_DECKS = (
    "fake-power-point.pptx",
    "fake-power-point-table.pptx",
    "sample-presentation.pptx",
    "science-exploration-1p.pptx",
    "group-shapes-nested.pptx",
)

DOCLING_LAUNCHER = (
    TORCHVISION_PREAMBLE
    + """
from docling_serve.__main__ import main
sys.argv = ["docling-serve", *sys.argv[1:]]
main()
"""
)


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    fields: list[tuple[str, str]]
    log: Path
    proc: subprocess.Popen | None = None
    memory: dict[str, dict[str, float]] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rollup_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(pid: int) -> dict[str, float]:
    """PSS and RSS (MiB) summed over the process tree. RSS counts shared pages (the Ray workers' common
    libraries, the object store) once per process, so PSS is the one to compare; RSS is what `ps` shows.
    Both fall when the kernel drops file-backed pages under another program's demand; anonymous memory
    (the heaps) does not without swap, so growth is read from it."""
    pids = _children(pid)
    return {
        "pss_mib": round(sum(_pss_kib(p) for p in pids) / 1024, 1),
        "rss_mib": round(sum(_rollup_kib(p, "Rss:") for p in pids) / 1024, 1),
        "anon_mib": round(sum(_rollup_kib(p, "Anonymous:") for p in pids) / 1024, 1),
        "processes": len(pids),
    }


def tree_cpu_s(pid: int) -> float:
    ticks = 0
    for p in _children(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                # After the command name, which may hold spaces: utime and stime are fields 14 and 15.
                rest = f.read().rsplit(")", 1)[1].split()
            ticks += int(rest[11]) + int(rest[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def parse_fields(text: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--fields: {item!r} is not NAME=VALUE")
        out.append((key, value))
    return out


def build_files(corpus: Path, work: Path) -> list[Path]:
    from bench_documents import build_page
    from test_documents import build_docx, build_xlsx

    decks = [corpus / "pptx" / name for name in CORPUS_DECKS]
    missing = [str(p) for p in decks if not p.is_file()]
    if missing:
        raise SystemExit(f"not in the corpus: {', '.join(missing)} (--corpus)")
    return decks + [
        build_docx(work / "report.docx"),
        build_xlsx(work / "budget.xlsx"),
        build_page(work / "page.html"),
    ]


def unitok_tree(rev: str, work: Path) -> Path:
    """A checkout of REV laid out as the installed package (unitok = api/, unitok.pipeline = pipeline/...),
    to put first on PYTHONPATH: the editable install's finder comes after it."""
    src, pkg = work / "unitok-src", work / "unitok-pkg" / "unitok"
    src.mkdir()
    pkg.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    for item in (src / "api").iterdir():
        (pkg / item.name).symlink_to(item)
    for sub in ("pipeline", "actors", "connectors"):
        (pkg / sub).symlink_to(src / sub)
    return pkg.parent


def start(server: Server, cwd: Path, timeout_s: float = 300) -> None:
    with open(server.log, "wb") as log:
        # A session of its own: every process it starts (Ray's daemons, workers) can be found and ended
        # by its session id, even those that made a process group of their own.
        server.proc = subprocess.Popen(
            server.cmd, env=server.env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(
                f"{server.name} exited ({server.proc.returncode}) before it was ready:\n{tail(server.log)}"
            )
        try:
            if requests.get(f"{server.url}/ready", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{server.name} not ready in {timeout_s:.0f} s:\n{tail(server.log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _session_members(sid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
                if int(rest[3]) == sid and rest[0] != "Z":
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _cmdline_mentions(text: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        out.append(int(entry))
            except OSError:
                pass
    return out


def stop(server: Server, private_dir: str | None = None) -> None:
    """SIGTERM to the server (unitok drains and shuts its Ray down), then SIGKILL to whatever of its session
    is left, and to any process naming its private Ray directory (a Ray daemon that left the session)."""
    proc = server.proc
    if proc is None:
        return
    sid = proc.pid
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(sid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 15
    left = _session_members(sid)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _session_members(sid)
    stray = sorted(set(left) | set(_cmdline_mentions(private_dir) if private_dir else []))
    for pid in stray:
        try:
            server.leftovers.append(
                Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120].decode()
            )
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def one_round(server: Server, files: list[tuple[str, bytes]], clients: int, n: int) -> dict[str, Any]:
    import requests

    local = threading.local()

    def call(i: int) -> tuple[float, str | None, float | None, int]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        name, data = files[i % len(files)]
        t0 = time.perf_counter()
        try:
            r = local.session.post(
                f"{server.url}/v1/convert/file",
                files=[("files", (name, data))],
                data=server.fields,
                timeout=300,
            )
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        except (requests.RequestException, ValueError) as e:
            return time.perf_counter() - t0, f"{name}: {type(e).__name__}: {e}", None, 0
        took = time.perf_counter() - t0
        if r.status_code != 200:
            return took, f"{name}: HTTP {r.status_code} {r.text[:200]}", None, len(r.content)
        # docling-serve's answer, which unitok's server also gives since it took up that contract; before
        # that, unitok's own (document.markdown, no status).
        doc = body.get("document") or {}
        if body.get("status", "success") != "success":
            return took, f"{name}: status {body.get('status')} {body.get('errors')}", None, len(r.content)
        if not (doc.get("md_content") or doc.get("markdown")):
            return took, f"{name}: no Markdown in the answer", None, len(r.content)
        return took, None, body.get("processing_time"), len(r.content)

    cpu0 = tree_cpu_s(server.proc.pid)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(call, range(n)))
    wall = time.perf_counter() - t0
    cpu = tree_cpu_s(server.proc.pid) - cpu0
    lat = [r[0] for r in results]
    errors = [r[1] for r in results if r[1]]
    inner = [r[2] for r in results if r[2] is not None]
    out = {
        "clients": clients,
        "requests": n,
        "wall_s": round(wall, 2),
        "requests_per_s": round(n / wall, 2),
        "p50_ms": round(pct(lat, 0.5) * 1000, 1),
        "p95_ms": round(pct(lat, 0.95) * 1000, 1),
        "server_cpu_ms_per_request": round(cpu / n * 1000, 1),
        "mean_response_kib": round(statistics.mean(r[3] for r in results) / 1024, 1),
        "errors": len(errors),
        "first_errors": errors[:3],
        # A mean far above the p95 is a few requests that stalled: the list shows when and how long.
        "mean_ms": round(statistics.mean(lat) * 1000, 1),
        "latencies_ms": [round(x * 1000, 1) for x in lat],
    }
    if inner:
        out["reported_processing_p50_ms"] = round(statistics.median(inner) * 1000, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="10, 20 and 20 requests (50 in all) to check the script"
    )
    p.add_argument("--requests", default=",".join(map(str, REQUESTS)), help="per client count (1, 4, 16)")
    p.add_argument("--corpus", default=str(REPO.parent / "shared" / "corpus"))
    p.add_argument("--docling-venv", default=os.environ.get("DOCLING_SERVE_VENV", "/tmp/docling-serve-venv"))
    p.add_argument("--fields", default="", help="form fields sent to both, e.g. to_formats=md")
    p.add_argument(
        "--docling-fields",
        default=None,
        help=f"sent to docling-serve only (default {DOCLING_FIELDS}; none with --docling-artifacts)",
    )
    p.add_argument(
        "--docling-artifacts", help="a folder with docling's model weights (its standard pipeline)"
    )
    p.add_argument(
        "--docling-env", action="append", default=[], help="NAME=VALUE for docling-serve, repeatable"
    )
    p.add_argument("--unitok-config", help="job YAML for unitok serve (default: one with chunking off)")
    p.add_argument("--unitok-rev", help="serve this git revision of the repo, not the working tree")
    p.add_argument(
        "--replicas", type=int, default=2, help="unitok engine replicas (docling-serve: 2 workers)"
    )
    p.add_argument("--out", default=str(REPO / "out" / "bench_docling_serve.json"))
    args = p.parse_args()

    counts = QUICK_REQUESTS if args.quick else tuple(int(x) for x in args.requests.split(","))
    if len(counts) != len(CLIENTS):
        raise SystemExit(f"--requests: one count for each of {CLIENTS} clients")
    docling_python = Path(args.docling_venv) / "bin" / "python"
    if not docling_python.exists():
        raise SystemExit(
            f"no docling-serve venv at {args.docling_venv}: `make docling-serve-venv DOCLING_SERVE_VENV=...` "
            "makes one (docling-serve==1.38.2 with torch==2.13.0, CPU build), or see this script's docstring"
        )
    common = parse_fields(args.fields)
    docling_extra = parse_fields(
        args.docling_fields
        if args.docling_fields is not None
        else ("" if args.docling_artifacts else DOCLING_FIELDS)
    )

    work = Path(tempfile.mkdtemp(prefix="bench-ds-"))
    # Ray's session folder under a short private path (its sockets' paths have a length limit): nothing
    # shared with another Ray on the machine, and every process of this one can be found by it.
    ray_dir = Path(tempfile.mkdtemp(prefix="ubds-", dir="/tmp"))
    servers: list[Server] = []
    try:
        files = [(path.name, path.read_bytes()) for path in build_files(Path(args.corpus), work)]
        config = args.unitok_config and str(Path(args.unitok_config).resolve())
        if not config:
            # docling-serve's convert route does not chunk (it has /v1/chunk for that): neither does this.
            config = str(work / "serve.yaml")
            Path(config).write_text(
                json.dumps(
                    {
                        "source": {"uri": str(work)},
                        "output": {"uri": str(work / "out")},
                        "chunking": {"enabled": False},
                    }
                )
            )
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "DOCLING_SERVE_"))}
        unitok_env = base | {"RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(ray_dir)}
        rev = "working tree"
        if args.unitok_rev:
            unitok_env["PYTHONPATH"] = str(unitok_tree(args.unitok_rev, work))
            rev = subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", args.unitok_rev],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        port = free_port()
        unitok_cmd = [
            str(REPO / ".venv" / "bin" / "unitok"),
            "serve",
            config,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        if args.replicas:
            unitok_cmd += ["--replicas", str(args.replicas)]
        servers.append(Server("unitok serve", unitok_cmd, unitok_env, port, common, work / "unitok.log"))

        docling_env = base | {
            "HF_HUB_OFFLINE": "1",
            "DOCLING_SERVE_LOAD_MODELS_AT_BOOT": "false",
            "DOCLING_SERVE_ENABLE_UI": "false",
        }
        if args.docling_artifacts:
            docling_env["DOCLING_SERVE_ARTIFACTS_PATH"] = str(Path(args.docling_artifacts).resolve())
        else:
            # The API VLM options above are refused unless remote services are allowed.
            docling_env["DOCLING_SERVE_ENABLE_REMOTE_SERVICES"] = "true"
        for item in args.docling_env:
            key, _, value = item.partition("=")
            docling_env[key] = value
        port = free_port()
        docling_cmd = [
            str(docling_python),
            "-c",
            DOCLING_LAUNCHER,
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        servers.append(
            Server(
                "docling-serve", docling_cmd, docling_env, port, common + docling_extra, work / "docling.log"
            )
        )

        for s in servers:
            t0 = time.perf_counter()
            start(s, work)
            s.memory["ready"] = tree_memory(s.proc.pid) | {"start_s": round(time.perf_counter() - t0, 1)}
            print(f"{s.name}: ready in {time.perf_counter() - t0:.1f} s on port {s.port}", file=sys.stderr)
        for s in servers:
            # Each file once, then each server's baseline: first-use imports and caches are not growth.
            warm = one_round(s, files, 1, len(files))
            if warm["errors"]:
                raise SystemExit(f"{s.name} failed the warm-up: {warm['first_errors']}\n{tail(s.log)}")
            s.memory["after_warmup"] = tree_memory(s.proc.pid)
        for i, (clients, n) in enumerate(zip(CLIENTS, counts, strict=True)):
            # Alternate which server goes first, so that a drift in the machine's load is shared.
            for s in servers if i % 2 == 0 else servers[::-1]:
                r = one_round(s, files, clients, n)
                s.rounds.append(r)
                line = f"{clients} clients, {n} requests: {r['requests_per_s']} req/s, p50 {r['p50_ms']} ms"
                print(f"{s.name}: {line}, p95 {r['p95_ms']} ms, {r['errors']} errors", file=sys.stderr)
        for s in servers:
            s.memory[f"after_{sum(counts)}"] = tree_memory(s.proc.pid)
    finally:
        for s in servers:
            stop(s, str(ray_dir) if s.name == "unitok serve" else None)
        for s in servers:
            for line in s.leftovers:
                print(f"{s.name}: killed a process left behind: {line}", file=sys.stderr)
        shutil.rmtree(ray_dir, ignore_errors=True)
        # The servers' logs too: a failure has already printed the tail of the one that failed.
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    report = {
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": [round(x, 2) for x in load]},
        "files": [name for name, _ in files],
        "fields": {"both": dict(common), "docling_serve_only": dict(docling_extra)},
        "unitok": {"config": args.unitok_config or "chunking off", "replicas": args.replicas, "rev": rev},
        "docling_env": {k: v for k, v in docling_env.items() if k.startswith(("DOCLING_SERVE_", "HF_"))},
        "servers": {
            s.name: {"memory": s.memory, "rounds": s.rounds, "left_behind": s.leftovers} for s in servers
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"{len(files)} files ({', '.join(n for n, _ in files)}), fields {args.fields or '(files only)'}; "
          f"{os.cpu_count()} CPUs, load {load[0]:.2f}")  # fmt: skip
    print("| clients | server | requests | req/s | p50 ms | p95 ms | server CPU ms/request | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for i, clients in enumerate(CLIENTS):
        for s in servers:
            r = s.rounds[i]
            rate = f"{r['requests_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f}"
            cpu = r["server_cpu_ms_per_request"]
            print(f"| {clients} | {s.name} | {r['requests']} | {rate} | {cpu:.1f} | {r['errors']} |")
    print()
    keys = list(servers[0].memory)
    print(
        "| server | processes | "
        + " | ".join(f"PSS / RSS / anon MiB, {k.replace('_', ' ')}" for k in keys)
        + " |"
    )
    print("|---|---|" + "---|" * len(keys))
    for s in servers:
        cells = " | ".join(
            " / ".join(f"{s.memory[k][m]:.0f}" for m in ("pss_mib", "rss_mib", "anon_mib")) for k in keys
        )
        print(f"| {s.name} | {s.memory[keys[-1]]['processes']} | {cells} |")
    print(f"JSON: {out}")
    if any(r["errors"] for s in servers for r in s.rounds) or any(s.leftovers for s in servers):
        sys.exit(1)


if __name__ == "__main__":
    main()
