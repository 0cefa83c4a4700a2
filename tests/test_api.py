"""The Python API (`unitok.convert`, `convert_many`, `embed_query`) and the Ray and Beam building blocks:
the same rows as a job for the same file, on every modality, from a path, bytes or a file object."""

from __future__ import annotations

import io

import pytest
import unitok
from conftest import REPO, every_modality
from unitok.connectors.output import read_table
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.job import run_job

CHUNKING = {"chunking": {"max_tokens": 96}}


def key_rows(rows, columns):
    return sorted(tuple(r[c] for c in columns) for r in rows)


@pytest.fixture(scope="module")
def corpus_job(tmp_path_factory):
    src = every_modality(tmp_path_factory.mktemp("every"))
    out = tmp_path_factory.mktemp("out")
    spec = {"source": {"uri": str(src)}, "output": {"uri": str(out)}, "runtime": {"executor": "local"},
            **CHUNKING}  # fmt: skip
    run_job(parse_config(spec))
    return src, {name: read_table(str(out), name).to_pylist() for name in ("documents", "segments", "chunks")}


def test_convert_gives_a_jobs_rows_for_every_modality(corpus_job):
    src, tables = corpus_job
    assert unitok.__version__ and unitok.PIPELINE_VERSION.endswith(unitok.__version__)
    files = sorted(p for p in src.iterdir() if p.is_file())
    docs = list(unitok.convert_many(files, config=CHUNKING))
    assert {d.row["modality"] for d in docs} == {"pdf", "image", "presentation", "audio", "video"}
    for path, doc in zip(files, docs, strict=True):
        uri = path.resolve().as_uri()
        assert doc.ok and doc.source_uri == uri
        (job_doc,) = [d for d in tables["documents"] if d["source_uri"] == uri]
        assert (doc.markdown, doc.row["doc_id"]) == (job_doc["markdown"], job_doc["doc_id"])
        cols = ["doc_id", "segment_index", "markdown", "page_number", "time_start_s", "engine"]
        assert key_rows(doc.segments, cols) == key_rows(
            [s for s in tables["segments"] if s["source_uri"] == uri], cols
        )
        cols = ["chunk_id", "chunk_index", "text", "n_tokens", "page_numbers"]
        assert doc.chunks and key_rows(doc.chunks, cols) == key_rows(
            [c for c in tables["chunks"] if c["source_uri"] == uri], cols
        )
        assert doc.to_dict()["document"]["processed_at"].startswith("20")  # JSON-ready


def test_bytes_and_file_objects_convert_like_the_path(corpus_job):
    src, _ = corpus_job
    for name in sorted(p.name for p in src.iterdir() if p.is_file()):  # every modality
        by_path = unitok.convert(src / name)
        data = (src / name).read_bytes()
        from_bytes = unitok.convert(data, name=name)
        from_file = unitok.convert(io.BytesIO(data), name=name)
        with open(src / name, "rb") as f:
            from_open = unitok.convert(f)
        assert from_bytes.markdown == from_file.markdown == from_open.markdown == by_path.markdown
        assert from_bytes.source_uri == f"upload://{name}" and from_open.source_uri == f"upload://{name}"
    broken = unitok.convert(b"%PDF-1.7 not really", name="broken.pdf")
    assert not broken.ok and broken.markdown is None and broken.errors[0]["stage"] == "split"


def test_embed_query_finds_its_chunk(tmp_path):
    from encoder_tiny import build_tiny_encoder

    model = build_tiny_encoder(tmp_path / "tiny-encoder")
    config = {"chunking": {"max_tokens": 16}, "embedding": {"enabled": True, "model": str(model)}}
    doc = unitok.convert(REPO / "sample" / "field-report.pdf", config=config)
    assert len(doc.chunks) > 2
    target = doc.chunks[2]  # its own text's vector is the nearest
    query = unitok.embed_query(target["text"], config=config)
    scores = [sum(a * b for a, b in zip(query, c["embedding"], strict=True)) for c in doc.chunks]
    assert max(range(len(scores)), key=scores.__getitem__) == 2
    assert abs(sum(q * q for q in query) - 1) < 1e-4


def test_ray_converter_over_read_binary_files(corpus_job, ray_local):
    import unitok.ray

    src, tables = corpus_job
    small = [src / "field-report.pdf", src / "signup-sheet.png"]
    ds = ray_local.data.read_binary_files([str(p) for p in small], include_paths=True)
    rows = ds.map_batches(
        unitok.ray.Converter, batch_format="pyarrow", batch_size=1, concurrency=1
    ).take_all()
    cols = ["source_uri", "segment_index", "markdown"]
    expected = [s for s in tables["segments"] if s["source_uri"] in {p.resolve().as_uri() for p in small}]
    assert key_rows(rows, cols) == key_rows(expected, cols) and {r["status"] for r in rows} == {"ok"}


def test_beam_convert_ptransform(corpus_job):
    beam = pytest.importorskip("apache_beam")
    import unitok.beam
    from apache_beam.testing.util import assert_that

    src, tables = corpus_job
    uri = (src / "field-report.pdf").resolve().as_uri()
    expected = key_rows(
        [s for s in tables["segments"] if s["source_uri"] == uri], ["segment_index", "markdown"]
    )

    def check(rows):
        assert key_rows(rows, ["segment_index", "markdown"]) == expected
        assert {r["source_uri"] for r in rows} == {uri}

    with beam.Pipeline() as p:
        rows = (
            p
            | beam.Create([(str(src / "field-report.pdf"), (src / "field-report.pdf").read_bytes())])
            | unitok.beam.Convert()
        )
        assert_that(rows, check)
