"""An Apache Beam building block: `(path, bytes)` elements in, segment rows out.

    import apache_beam as beam
    import unitok.beam

    with beam.Pipeline() as p:
        rows = (p | beam.Create([("report.pdf", open("report.pdf", "rb").read())])
                  | unitok.beam.Convert(config="job.yaml"))

Each output is a dict with the segments table's columns (provenance included) plus `status`, `stage`,
`error_type` and `error_message` (a failed page or file is a row with status `error`), as `unitok.ray`
gives. Engines load once per worker process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam


class _ConvertFn(beam.DoFn):
    def __init__(self, config: Any):
        self.config = config
        self.converter: Any = None

    def setup(self) -> None:
        from unitok.ray import Converter

        self.converter = Converter(self.config)

    def process(self, element: tuple[str, bytes]) -> Iterator[dict[str, Any]]:
        import pyarrow as pa

        path, data = element
        yield from self.converter(pa.table({"bytes": [data], "path": [path]})).to_pylist()


class Convert(beam.PTransform):
    """PCollection[(path, bytes)] -> PCollection[segment row dicts]."""

    def __init__(self, config: Any = None):
        super().__init__()
        # A config given as a model travels as its dict (picklable to any runner).
        self.config = config.model_dump() if hasattr(config, "model_dump") else config

    def expand(self, pcoll: Any) -> Any:
        return pcoll | "Convert with unitok" >> beam.ParDo(_ConvertFn(self.config))
