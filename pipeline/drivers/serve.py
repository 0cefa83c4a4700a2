"""The Ray Serve driver: the HTTP API (pipeline/drivers/serve_app.py) over the job config's engines.

    unitok serve JOB.yaml --port 8000
    curl -F files=@report.pdf http://127.0.0.1:8000/v1/convert/file
    serve run configs/serve.yaml            # the same application from a Serve config file

Two deployments: the async FastAPI ingress (`Api`, no CPU reserved: it only reads bodies, checks them and
waits) and the engine replicas (`Engines`: one CPU each, or the Phi-4 GPU share), autoscaled between
serve.min_replicas and serve.max_replicas on the requests waiting for them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from unitok.pipeline.core.config import JobConfig

log = logging.getLogger("unitok")
# The ingress writes one access line per request (method, route, status, time); Serve's own lines for
# both deployments would add two more per request and cost the replicas CPU.
_QUIET = {"enable_access_log": False}


def build_app(cfg: JobConfig, replicas: int | None = None, engine_actor: dict[str, Any] | None = None) -> Any:
    """The Serve application: Api ingress bound to the Engines deployment (`engine_actor` overrides its
    Ray actor options, e.g. a test's CPUs and environment)."""
    from unitok.pipeline.drivers.serve_app import Api, Engines

    s = cfg.serve
    low, high = (replicas, replicas) if replicas else (s.min_replicas, s.max_replicas)
    actor = {"num_cpus": 1, "num_gpus": cfg.engine.phi4.num_gpus if cfg.engine.uses_phi4 else 0}
    # A replica holds up to two batches (one converting, one gathering). It is scaled out as soon as a
    # request waits behind the one converting on each: a queue of files that each take seconds (OCR,
    # a recording) should not build up to a batch before a replica is added.
    scaling = {"min_replicas": low, "max_replicas": high, "target_ongoing_requests": 2}
    engines = Engines.options(
        ray_actor_options=actor | (engine_actor or {}),
        max_ongoing_requests=2 * s.max_batch_size,
        logging_config=_QUIET,
        **({"num_replicas": low} if low == high else {"autoscaling_config": scaling}),
    ).bind(cfg.model_dump())
    ingress = Api.options(ray_actor_options={"num_cpus": 0}, logging_config=_QUIET)
    return ingress.bind(engines, cfg.model_dump())


def build_from_args(args: dict[str, Any]) -> Any:
    """For `serve run` / `serve deploy` (configs/serve.yaml): args {"config": JOB.yaml}."""
    from unitok.pipeline.core.config import load_config

    cfg, _ = load_config(args["config"])
    return build_app(cfg)


def serve_forever(cfg: JobConfig, host: str, port: int, replicas: int | None) -> None:
    """Serve until SIGTERM or Ctrl-C, then drain: Serve lets in-flight requests finish (bounded by its
    graceful shutdown timeout), and one line says it stopped."""
    from ray import serve
    from unitok.pipeline.drivers.ray_data import ensure_ray

    ensure_ray(cfg)
    # After Ray's own handlers (which dump native stacks), before anything waits: a signal while the
    # application deploys also drains.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(cfg, replicas), name="unitok", route_prefix="/", blocking=False)
    log.info("serving the %s engine on http://%s:%d (/v1/convert/file, /docs)", cfg.engine.name, host, port)
    if not (os.environ.get("UNITOK_API_KEY") or cfg.serve.api_key):
        print(f"unitok: no API key is configured (serve.api_key or UNITOK_API_KEY): anyone who reaches "
              f"http://{host}:{port} may convert files", file=sys.stderr)  # fmt: skip
    stop.wait()
    serve.shutdown()
    print("unitok: stopped serving (in-flight requests drained)", file=sys.stderr)
