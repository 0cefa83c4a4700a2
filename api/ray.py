"""A Ray Data building block: convert files read by your own pipeline.

    import ray
    import unitok.ray

    ds = ray.data.read_binary_files("s3://bucket/docs/", include_paths=True)
    rows = ds.map_batches(unitok.ray.Converter, fn_constructor_kwargs={"config": "job.yaml"},
                          batch_format="pyarrow", batch_size=8, concurrency=2)

Each output row is a segment with the segments table's columns (provenance included) plus `status`,
`stage`, `error_type` and `error_message`: a failed page or file is a row with status `error`, never lost.
Chunks and documents are the Python API's (`unitok.convert`); a whole job is `unitok run`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa


def source_uri(path: str) -> str:
    """A read_binary_files path as a URI: absolute local paths as file:// URIs; a scheme kept as given."""
    if "://" in path:
        return path
    return Path(path).as_uri() if path.startswith("/") else path


class Converter:
    """A callable class for `map_batches` over `read_binary_files(..., include_paths=True)` rows
    (columns `bytes` and `path`): the engines load once per actor."""

    def __init__(self, config: Any = None):
        from unitok import _runtime

        self.rt = _runtime(config)

    def __call__(self, batch: Any) -> pa.Table:
        from unitok.pipeline.core.schemas import RESULT_SCHEMA, rows_to_table
        from unitok.pipeline.stages.convert_file import convert_file

        table = batch if isinstance(batch, pa.Table) else pa.table(batch)
        rows: list[dict[str, Any]] = []
        for data, path in zip(table["bytes"].to_pylist(), table["path"].to_pylist(), strict=True):
            with tempfile.TemporaryDirectory(prefix="unitok-ray-") as tmp:
                local = Path(tmp) / Path(path).name
                local.write_bytes(data)
                out = convert_file(local, local.name, self.rt.cfg, self.rt.engines, "ray-udf",
                                   uri=source_uri(path), plain=False)  # fmt: skip
            rows += [{**r, "status": "ok"} for r in out["segments"]]
            rows += [{**e, "error_message": e["message"], "status": "error"} for e in out["errors"]]
        return rows_to_table(rows, RESULT_SCHEMA)
