"""A document's chunks, and their embeddings when on: what a job's workers, the Python API and the Ray and
Beam building blocks all call, so the same document gives the same chunks (and vectors) everywhere."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from unitok.actors.contract import EngineSetupError
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.schemas import CHUNKS_SCHEMA, rows_to_table
from unitok.pipeline.core.testhooks import fault

CHUNK_SEGMENT_COLUMNS = ["doc_id", "segment_index", "markdown", "page_number", "time_start_s", "time_end_s",
                         "spans"]  # fmt: skip


class DocumentChunks:
    """The chunker and the embedder of one config, each loaded on first use and kept."""

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg
        self._chunker: Any = None
        self._embedder: Any = None

    def load(self) -> DocumentChunks:
        """Load the tokenizer (and the embedding model) now rather than on the first document."""
        from unitok.pipeline.stages.chunk import Chunker

        if self._chunker is None:
            self._chunker = Chunker.from_config(self.cfg.chunking)
        if self.cfg.embedding.enabled:
            _ = self.embedder
        return self

    def chunks(self, doc: dict[str, Any], segments: pa.Table) -> pa.Table:
        """The chunks table's rows of one document (segments: its segment rows, in order)."""
        self.load()
        rows = self._chunker.chunks(doc, segments.select(CHUNK_SEGMENT_COLUMNS).to_pylist())
        if doc.get("summary"):  # each chunk carries what the whole recording is about
            for row in rows:
                row["summary"] = doc["summary"]
        table = rows_to_table(rows, CHUNKS_SCHEMA)
        if self.cfg.embedding.enabled and table.num_rows:
            table = self.embed(table)
        return table

    def of_documents(self, docs: pa.Table, segments: pa.Table) -> pa.Table:
        """The chunks of an object's documents (an e-mail's attachments are documents of their own), each
        from its own segments."""
        return pa.concat_tables(
            [
                self.chunks(doc, segments.filter(pc.equal(segments["doc_id"], doc["doc_id"])))
                for doc in docs.to_pylist()
            ]
        )

    def of_documents_or_failure(
        self, docs: pa.Table, segments: pa.Table, uri: str
    ) -> tuple[pa.Table | None, tuple[str, Exception] | None]:
        """of_documents, with a failure of this object's chunking or embedding handed back as (stage,
        exception) rather than raised: the document stands, and the object is retried by the next run.
        An embedder that cannot load still raises: every object would fail."""
        try:
            fault("object.chunk", uri)
            return self.of_documents(docs, segments), None
        except EngineSetupError:
            raise
        except Exception as e:  # noqa: BLE001 - the caller's error row
            return None, (getattr(e, "unitok_stage", "chunk"), e)

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from unitok.actors.embedder import TextEmbedder
            from unitok.pipeline.stages.embed import embedder_options

            self._embedder = TextEmbedder(**embedder_options(self.cfg.embedding))
        return self._embedder

    def embed(self, table: pa.Table) -> pa.Table:
        """The document's chunks in chunk order, cut into embedding.batch_size batches: the same batches
        for the same document on every driver."""
        from unitok.pipeline.stages.embed import batches_of, with_embeddings

        table = table.sort_by("chunk_index")
        try:
            fault("object.embed", table["source_uri"][0].as_py() if table.num_rows else "")
            vectors = [self.embedder(texts) for texts in batches_of(table, self.cfg.embedding.batch_size)]
        except EngineSetupError:
            raise
        except Exception as e:
            e.unitok_stage = "embed"  # the error row names the stage, the exception keeps its own type
            raise
        return with_embeddings(table, vectors, self.embedder.model_id)
