"""Whether a job joins a Ray cluster: read by the job (executor choice, preflight) and the Ray drivers,
without importing Ray."""

from __future__ import annotations

import os

from unitok.pipeline.core.config import JobConfig


def cluster_address(cfg: JobConfig) -> str | None:
    return cfg.runtime.ray_address or os.environ.get("RAY_ADDRESS") or None


def joins_cluster(cfg: JobConfig) -> bool:
    return cfg.runtime.executor != "local" and cluster_address(cfg) is not None


class ClusterLostError(RuntimeError):
    """No node of the Ray cluster can host a worker, and none came within runtime.node_wait_s."""
