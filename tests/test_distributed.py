"""A Ray cluster of several machines, as a production user runs one: a head node with 0 CPUs where the
driver runs (as in a KubeRay RayJob), and two worker nodes, each in its own mount namespace with a private
/tmp, so it sees nothing of the driver's /tmp, as any separate machine. Every node is on the loopback
range, each with a temp dir of its own; SeaweedFS on 127.0.0.1 is the bucket for source and output."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BUCKET, REPO, every_modality, put
from unitok.connectors.output import delta_storage_options, read_table

from infra.local_s3 import free_port

VOLATILE = {"run_id", "processed_at", "elapsed_ms", "at"}  # differ between any two runs
RAY = str(Path(sys.executable).parent / "ray")
# Ray replaces a node address of 127.0.0.1 with the machine's outward address; another loopback address
# it keeps, so every node registers, and is reached, on the loopback range.
NODE_IP = "127.0.0.2"
WORKER_IPS = ("127.0.0.3", "127.0.0.4")


def _kept() -> list[str]:
    """The folders under /tmp the worker node needs (the checkout, the virtualenv, the interpreter's
    prefix), outermost only."""
    needed = {
        Path(p).resolve() for p in (REPO, sys.prefix, sys.base_prefix, Path(sys.executable).resolve().parent)
    }
    tmp = Path("/tmp").resolve()
    under = sorted(p for p in needed if tmp in p.parents)
    return [str(p) for p in under if not any(q in p.parents for q in under)]


def _short_temp() -> Path:
    """A Ray temp dir right under /tmp: Ray's socket paths (temp dir, session folder, socket name) must fit
    in 107 bytes, and a pytest temp path (longer under a worker of pytest-xdist) did not."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))


def _start_head(temp: Path) -> tuple[str, dict[str, str]]:
    """A head node with 0 CPUs (as a KubeRay head where only the driver runs), its temp dir `temp`: its
    address, and the environment to reach it with."""
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([RAY, "start", "--head", "--num-cpus=0", f"--node-ip-address={NODE_IP}", f"--port={port}",
                    f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    return f"{NODE_IP}:{port}", env


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    probe = (f"import ray; ray.init(address='{address}', logging_level='ERROR'); "
             "print(sum(1 for n in ray.nodes() if n['Alive']))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    return int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else 0


def _stop_head(temp_dir: Path) -> None:
    """Stop the head's processes only (`ray stop` would stop every Ray on the machine, the suite's too):
    each of them names its session folder, which lives under this test's temp dir. Killed, not asked:
    a test cluster has nothing to save, and on SIGTERM one of them outlived a 30 s wait."""
    deadline = time.monotonic() + 30
    while _running(str(temp_dir)) and time.monotonic() < deadline:
        subprocess.run(["pkill", "-KILL", "-f", str(temp_dir)], check=False)
        time.sleep(0.2)


def _running(pattern: str) -> bool:
    """Whether a process that names `pattern` still runs. Zombies do not count: Ray's daemons are
    re-parented to a PID 1 that may never reap them, and waiting on those took the 30 s deadline."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    for pid in found:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            return True
    return False


@pytest.fixture(scope="module")
def two_nodes(s3):
    """(Ray address, environment for the driver) of a running two-node cluster."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a second node with a private /tmp needs root and unshare")
    temp = _short_temp()
    address, env = _start_head(temp)
    # The worker node: its own mount namespace, a fresh tmpfs on /tmp, its Ray temp dir inside it. What it
    # runs (the checkout, the virtualenv, the interpreter) is kept where it lies under /tmp (a clone
    # there): bound to a private tmpfs on /mnt first, moved back onto the new /tmp after.
    kept = _kept()
    keep = "".join(f" && mkdir -p /mnt/k{i} && mount --bind {p} /mnt/k{i}" for i, p in enumerate(kept))
    back = "".join(f" && mkdir -p {p} && mount --move /mnt/k{i} {p}" for i, p in enumerate(kept))
    binds = f"mount -t tmpfs tmpfs /mnt{keep} && " if kept else ""
    workers = []
    try:
        for ip in WORKER_IPS:
            worker_cmd = (f"{binds}mount -t tmpfs tmpfs /tmp{back} && exec {RAY} start --address={address} "
                          f"--node-ip-address={ip} --num-cpus=2 --temp-dir=/tmp/ray-node --block "
                          "--disable-usage-stats")  # fmt: skip
            workers.append(subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", worker_cmd],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            ))  # fmt: skip
        deadline = time.monotonic() + 120
        while _alive_nodes(address, env) < 1 + len(WORKER_IPS):
            if any(w.poll() is not None for w in workers) or time.monotonic() > deadline:
                pytest.fail("the worker nodes never joined the head")
        yield address, {**env, "RAY_ADDRESS": address}
    finally:
        # A test cluster has nothing to save: the worker nodes' processes are killed, not asked to stop
        # (`ray start --block` took its 30 s grace period on SIGTERM). Their tmpfs go with the last ones.
        # The head is stopped whatever happened to the workers (one that never started has no group).
        try:
            for worker in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
            subprocess.run(["pkill", "-KILL", "-f", "/tmp/ray-node"], check=False)
        finally:
            _stop_head(temp)
            shutil.rmtree(temp, ignore_errors=True)


def unitok(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unitok.pipeline.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip


def rows(out: str, name: str, opts: dict[str, str] | None = None) -> list[dict]:
    table = read_table(out, name, opts)
    table = table.drop_columns([c for c in table.column_names if c in VOLATILE])
    return sorted((r for r in table.to_pylist()), key=lambda r: json.dumps(r, sort_keys=True, default=str))


def test_two_nodes_s3_in_and_out_land_every_document_as_the_local_driver_does(two_nodes, s3, tmp_path):
    address, env = two_nodes
    client, endpoint, _ = s3
    src = tmp_path / "src"
    src.mkdir()
    every_modality(src)
    shutil.copy(REPO / "sample" / "not-really-a.pdf", src)  # a broken file: an error row, the job goes on
    for f in sorted(src.iterdir()):
        put(client, f"cluster/in/{f.name}", f)
    out = f"s3://{BUCKET}/cluster/out"
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({
        "source": {"uri": f"s3://{BUCKET}/cluster/in/", "s3": {"endpoint_url": endpoint}},
        "output": {"uri": out, "s3": {"endpoint_url": endpoint}},
        "chunking": {"enabled": True},
    }))  # fmt: skip
    r = unitok(env, "run", str(job))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "executor           ray" in r.stdout

    # The same objects through the local driver, into a folder: the same bytes in every table.
    local = tmp_path / "local"
    r2 = unitok({k: v for k, v in env.items() if k != "RAY_ADDRESS"}, "run", str(job), "--executor", "local",
                "--output", str(local))  # fmt: skip
    assert r2.returncode == 0, r2.stderr[-3000:]
    opts = delta_storage_options({"endpoint_url": endpoint})
    docs = rows(out, "documents", opts)
    assert len(docs) == 6 and all(d["markdown"].strip() for d in docs)
    for name in ("documents", "segments", "chunks", "errors", "objects"):
        assert rows(out, name, opts) == rows(str(local), name), name
    (error,) = rows(out, "errors", opts)
    assert error["source_uri"].endswith("not-really-a.pdf")

    # Nothing lost for good: the next run finds every object converted, and the tables unchanged.
    again = unitok(env, "run", str(job))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "mode               incremental: 1 converted, 6 unchanged" in again.stdout  # the failed one
    assert rows(out, "documents", opts) == docs


def test_a_long_scan_spreads_over_both_worker_nodes_and_gives_the_local_drivers_rows(two_nodes, s3, tmp_path):
    """The staged plan: one 120-page scan's pages are converted on both machines, not on the one that
    happened to take the object."""
    from test_staged_plan import scans

    _, env = two_nodes
    client, endpoint, _ = s3
    (path,) = scans(tmp_path / "src", 1, pages=120, stem="long-scan", lines=6)
    put(client, "cluster-long/in/long-scan.pdf", path)
    out = f"s3://{BUCKET}/cluster-long/out"
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({
        "source": {"uri": f"s3://{BUCKET}/cluster-long/in/", "s3": {"endpoint_url": endpoint}},
        "output": {"uri": out, "s3": {"endpoint_url": endpoint}},
        "pdf": {"ocr_dpi": 100},  # where the pages go is the point, not how well they read
        # Four engine actors need both worker nodes (two CPUs each, 0.8 an actor). From the default one,
        # the pool grows only while calls queue, so whether a second node ever got pages depended on how
        # fast the first read them.
        "runtime": {"min_workers": 4},
    }))  # fmt: skip
    r = unitok(env, "run", str(job), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["segments"] == 120 and summary["engines"]["tesseract"]["segments"] == 120
    assert len(summary["nodes"]) == 2 and all(n > 0 for n in summary["nodes"].values()), summary["nodes"]
    local = tmp_path / "local"
    r2 = unitok({k: v for k, v in env.items() if k != "RAY_ADDRESS"}, "run", str(job), "--executor", "local",
                "--output", str(local))  # fmt: skip
    assert r2.returncode == 0, r2.stderr[-3000:]
    opts = delta_storage_options({"endpoint_url": endpoint})
    for name in ("documents", "segments", "errors"):
        assert rows(out, name, opts) == rows(str(local), name), name


def test_a_folder_output_the_worker_node_cannot_see_is_refused_before_converting(two_nodes, s3, tmp_path):
    _, env = two_nodes
    client, endpoint, _ = s3
    put(client, "cluster-folder/in/memo.pdf", REPO / "sample" / "field-report.pdf")
    out = tmp_path / "out"  # under this machine's /tmp: the worker node has its own
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({
        "source": {"uri": f"s3://{BUCKET}/cluster-folder/in/", "s3": {"endpoint_url": endpoint}},
        "output": {"uri": str(out)},
    }))  # fmt: skip
    r = unitok(env, "run", str(job))
    assert r.returncode == 2, r.stderr[-3000:]
    (line,) = r.stderr.strip().splitlines()[-1:]
    assert "does not share with this machine" in line and "use an s3:// output" in line, r.stderr[-3000:]
    assert not (out / "documents").exists() and not (out / "objects").exists()  # nothing converted

    # A folder source the worker node cannot see is refused the same way.
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "sample" / "field-report.pdf", src)
    s3_out = {"uri": f"s3://{BUCKET}/cluster-folder/out", "s3": {"endpoint_url": endpoint}}
    job.write_text(json.dumps({"source": {"uri": str(src)}, "output": s3_out}))
    r = unitok(env, "run", str(job))
    assert r.returncode == 2 and "cannot see" in r.stderr.strip().splitlines()[-1], r.stderr[-3000:]


def test_a_run_on_a_cluster_where_no_node_can_host_a_worker_stops_with_one_line(tmp_path):
    """The worker nodes gone and none coming (a head with 0 CPUs alone): a bounded wait, then exit 2 (nothing
    was committed) with the line that says why, never a wait forever."""
    temp = _short_temp()
    address, env = _start_head(temp)
    try:
        src = tmp_path / "src"
        src.mkdir()
        shutil.copy(REPO / "sample" / "field-report.pdf", src)
        job = tmp_path / "job.yaml"
        job.write_text(json.dumps({"source": {"uri": str(src)}, "output": {"uri": str(tmp_path / "out")},
                                   "runtime": {"executor": "ray", "node_wait_s": 1}}))  # fmt: skip
        r = unitok({**env, "RAY_ADDRESS": address}, "run", str(job))
    finally:
        _stop_head(temp)
        shutil.rmtree(temp, ignore_errors=True)
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1] == (
        "unitok: no node of the Ray cluster can host a worker (1 CPU) and none came for 1 s "
        "(runtime.node_wait_s): the run stops"
    )
