from __future__ import annotations

import pyarrow as pa
import pytest
from unitok.pipeline.core.config import ConfigError, load_config, parse_config


def test_minimal_config_gets_defaults():
    cfg = parse_config({"source": {"uri": "/data"}, "output": {"uri": "/out"}})
    assert cfg.engine.name == "cpu"
    assert cfg.pdf.ocr_dpi == 300
    assert cfg.source.include == ["**"]


def test_unknown_key_and_bad_values_name_each_field():
    with pytest.raises(ConfigError) as e:
        parse_config(
            {
                "source": {"uri": "/data", "includ": ["*.pdf"]},
                "output": {"uri": "/out"},
                "pdf": {"ocr_dpi": 10},
                "ocr": {"languages": "eng; rm -rf"},
            }
        )
    msg = str(e.value)
    assert "source.includ: unknown key" in msg
    assert "pdf.ocr_dpi: Input should be greater than or equal to 72" in msg
    assert "ocr.languages: must be Tesseract codes" in msg


def test_missing_required_sections():
    with pytest.raises(ConfigError) as e:
        parse_config({"source": {"uri": "/data"}})
    assert "output: Field required" in str(e.value)


def test_unsupported_scheme_fails_before_work():
    with pytest.raises(ConfigError, match=r"source.uri: .*gs:// is not supported"):
        parse_config({"source": {"uri": "gs://bucket/x"}, "output": {"uri": "/out"}})


def test_env_references_expand_and_missing_ones_fail(monkeypatch):
    monkeypatch.setenv("UNITOK_TEST_SRC", "/mnt/inbox")
    monkeypatch.delenv("UNITOK_TEST_MISSING", raising=False)
    cfg = parse_config(
        {"source": {"uri": "${UNITOK_TEST_SRC}"}, "output": {"uri": "${UNITOK_TEST_OUT:-/default}"}}
    )
    assert cfg.source.uri == "/mnt/inbox"
    assert cfg.output.uri == "/default"
    with pytest.raises(ConfigError, match=r"output.uri: environment variable UNITOK_TEST_MISSING is not set"):
        parse_config({"source": {"uri": "/x"}, "output": {"uri": "${UNITOK_TEST_MISSING}"}})


def test_overrides_replace_config_values(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text("source: {uri: /a}\noutput: {uri: /b}\n")
    cfg, raw = load_config(p, {"source.uri": "/c", "output.uri": "/d"})
    assert (cfg.source.uri, cfg.output.uri) == ("/c", "/d")
    assert raw["source"]["uri"] == "/a"  # the raw document stays as written


def test_yaml_syntax_error_names_the_line(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text("source:\n  uri: [unclosed\noutput: {uri: /b}\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(p)


def test_worker_bounds_are_checked():
    with pytest.raises(ConfigError, match=r"runtime: max_workers \(1\) is below min_workers \(2\)"):
        parse_config(
            {
                "source": {"uri": "/a"},
                "output": {"uri": "/b"},
                "runtime": {"min_workers": 2, "max_workers": 1},
            }
        )


def test_shipped_configs_validate():
    from pathlib import Path

    from unitok.pipeline.cli import _serve_config_jobs

    repo = Path(__file__).resolve().parent.parent
    for p in sorted(repo.joinpath("configs").glob("*.yaml")):
        jobs = _serve_config_jobs(str(p))
        if jobs is not None:  # a Ray Serve config: validate checks the job configs it serves
            assert p.name == "serve.yaml" and all((repo / job).is_file() for job in jobs), jobs
            continue
        cfg, _ = load_config(p)
        if cfg.runtime.executor == "beam":  # its runner and options are checked against Beam too
            from unitok.pipeline.drivers.beam import check_beam

            check_beam(cfg)


def test_auto_executor_uses_ray_for_large_jobs_and_clusters(monkeypatch):
    from unitok.pipeline.job import choose_executor

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = parse_config({"source": {"uri": "/a"}, "output": {"uri": "/b"}})

    def listing(*sizes):
        return pa.table({"size": pa.array(sizes, pa.int64())})

    small = listing(1000, 1000, 1000)
    assert choose_executor(cfg, small)[0] == "local"
    assert choose_executor(cfg, listing(*[1000] * 9))[0] == "ray"
    assert choose_executor(cfg, listing(300 << 20))[0] == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert choose_executor(cfg, small) == ("ray", "a Ray cluster address is set")
    forced = parse_config(
        {"source": {"uri": "/a"}, "output": {"uri": "/b"}, "runtime": {"executor": "local"}}
    )
    assert choose_executor(forced, small)[0] == "local"


def test_auto_runs_a_small_local_job_locally_from_its_estimated_work(tmp_path, monkeypatch):
    """Fifteen small files went to Ray by their count (19.9 s there against 5.5 s locally); the choice is
    now the estimated wall time: each driver's measured start-up plus the probed work."""
    import shutil

    from conftest import REPO
    from unitok.connectors.store import open_store
    from unitok.pipeline.job import choose_executor
    from unitok.pipeline.stages.plan import listing_table

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for i in range(15):
        name = ("field-report.pdf", "scanned-memo.pdf", "signup-sheet.png")[i % 3]
        shutil.copy(REPO / "sample" / name, tmp_path / f"{i}-{name}")
    objects = list(open_store(str(tmp_path)).list_objects(["**"], []))
    listing = listing_table(objects)
    cfg = parse_config({"source": {"uri": str(tmp_path)}, "output": {"uri": "/b"}})
    executor, why = choose_executor(cfg, listing)
    assert executor == "local", why
    assert "15 objects, about" in why and "locally" in why and "on Ray" in why, why
    # A bound below the local driver's own start-up: any job is over it, whatever the measured rates.
    tight = parse_config({"source": {"uri": str(tmp_path)}, "output": {"uri": "/b"},
                          "runtime": {"local_max_s": 0.001}})  # fmt: skip
    executor, why = choose_executor(tight, listing)
    assert executor == "ray" and "over local_max_s=0.001" in why, why


def test_video_settings_that_cannot_work_fail_with_their_fields():
    base = {"source": {"uri": "/data"}, "output": {"uri": "/out"}}
    with pytest.raises(ConfigError, match=r"video: max_spacing_s must be at least min_spacing_s"):
        parse_config({**base, "video": {"min_spacing_s": 40, "max_spacing_s": 30}})
    with pytest.raises(ConfigError, match=r"video.scene_threshold: Input should be less than 1"):
        parse_config({**base, "video": {"scene_threshold": 3}})
    with pytest.raises(
        ConfigError, match=r"frames_per_segment \(12\) is above engine.vllm.max_images_per_prompt"
    ):
        parse_config({**base, "engine": {"name": "vllm"}, "video": {"frames_per_segment": 12}})
    assert parse_config({**base, "video": {"max_spacing_s": None}}).video.max_spacing_s is None


def test_every_package_folder_installs_under_unitok():
    """pyproject lists the unitok.* packages by hand (the folders map onto the namespace): a new folder
    that is not listed would be missing from a wheel."""
    import tomllib

    from conftest import REPO

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        "unitok." + ".".join(init.parent.relative_to(REPO).parts)
        for top in ("pipeline", "actors", "connectors")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert (REPO / "api" / "__init__.py").is_file()  # the unitok package itself: the Python API
    assert listed == found | {"unitok"}
