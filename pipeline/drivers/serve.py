"""The Ray Serve driver: the job config's engines behind an HTTP endpoint (actors/serve_app.py), one
upload at a time per replica, converted by the same stage functions as a job (pipeline/convert_file.py).

    unitok serve JOB.yaml --port 8000 --replicas 2
    curl --data-binary @report.pdf 'http://127.0.0.1:8000/convert?filename=report.pdf'
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from unitok.actors.registry import engine_options
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.stages.convert import EnginePool
from unitok.pipeline.stages.convert_file import convert_file

log = logging.getLogger("unitok")


def _convert_upload(path: Path, name: str, engines: EnginePool, cfg_data: dict[str, Any]) -> dict[str, Any]:
    cfg = JobConfig.model_validate(cfg_data)
    run_id = f"serve-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"  # one per request
    return convert_file(path, name, cfg, engines, run_id)


def build_app(cfg: JobConfig, replicas: int = 1, max_upload_mib: int = 512):
    """A Serve application for serve.run: `replicas` ConvertEndpoint replicas, each with a GPU share
    when the engine is Phi-4-multimodal."""
    from unitok.pipeline.drivers.serve_app import ConvertEndpoint

    actor = {"num_cpus": 1, "num_gpus": cfg.engine.phi4.num_gpus if cfg.engine.uses_phi4 else 0}
    return ConvertEndpoint.options(num_replicas=replicas, ray_actor_options=actor).bind(
        partial(_convert_upload, cfg_data=cfg.model_dump()), engine_options(cfg), max_upload_mib << 20
    )


def serve_forever(cfg: JobConfig, host: str, port: int, replicas: int) -> None:
    from ray import serve
    from unitok.pipeline.drivers.ray_data import ensure_ray

    ensure_ray(cfg)
    serve.start(http_options={"host": host, "port": port})
    log.info(
        "serving %s engine on http://%s:%d/convert (%d replica(s))", cfg.engine.name, host, port, replicas
    )
    serve.run(build_app(cfg, replicas), name="unitok", route_prefix="/", blocking=True)
