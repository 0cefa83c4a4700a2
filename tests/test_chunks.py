"""The chunks table: structure-aware, token-bounded chunks of every document, with provenance back to pages,
slides and moments in a recording, stable ids, and incremental updates that touch only changed documents."""

from __future__ import annotations

import shutil

import pytest
from conftest import REPO, corpus
from unitok.connectors.output import changes, read_table
from unitok.pipeline.core.config import ChunkingConfig, parse_config
from unitok.pipeline.job import run_job
from unitok.pipeline.stages.chunk import Chunker

SAMPLE = REPO / "sample"


def doc(markdown: str) -> dict:
    return {"doc_id": "d", "source_uri": "file:///x.md", "source_version": "v", "modality": "pdf",
            "markdown": markdown, "pipeline_version": "p", "run_id": "r"}  # fmt: skip


def test_sections_that_fit_are_one_chunk_each_with_their_heading_path():
    md = ("# Annual Report\n\nA short introduction.\n\n## Q3 Revenue Summary\n\n"
          "Revenue grew twelve percent.\n\n### Key Metrics\n\nMargins held at forty percent.")  # fmt: skip
    chunker = Chunker.from_config(ChunkingConfig(max_tokens=16))
    rows = chunker.chunks(doc(md), [])
    assert [r["text"] for r in rows] == [
        "# Annual Report\n\nA short introduction.",
        "## Q3 Revenue Summary\n\nRevenue grew twelve percent.",
        "### Key Metrics\n\nMargins held at forty percent.",
    ]
    assert [r["heading_path"] for r in rows] == [
        ["Annual Report"], ["Annual Report", "Q3 Revenue Summary"],
        ["Annual Report", "Q3 Revenue Summary", "Key Metrics"],
    ]  # fmt: skip
    assert all(md[r["char_start"] : r["char_end"]] == r["text"] for r in rows)
    assert rows[0]["tokenizer"] == "all-MiniLM-L6-v2" and all(r["n_tokens"] <= 16 for r in rows)


def test_tables_lists_and_code_are_cut_only_between_rows_items_and_blocks():
    rows_md = "\n".join(f"| North {i} | {1000 + i} | {2000 + i} |" for i in range(40))
    items = "\n".join(f"- item {i}: check the filters and record the count" for i in range(20))
    code = "```python\n" + "\n".join(f"total_{i} = compute(region_{i})" for i in range(3)) + "\n```"
    md = (f"# Inventory\n\n## Table\n\n| Region | Q1 | Q2 |\n| --- | --- | --- |\n{rows_md}\n\n"
          f"## Steps\n\n{items}\n\n## Code\n\n{code}\n")  # fmt: skip
    budget = 64
    chunks = Chunker.from_config(ChunkingConfig(max_tokens=budget)).chunks(doc(md), [])
    assert len(chunks) > 5 and all(c["n_tokens"] <= budget for c in chunks)
    lines = set(md.split("\n"))
    for c in chunks:
        body = md[c["char_start"] : c["char_end"]]
        assert all(line in lines for line in body.split("\n")), body  # whole rows, items and lines only
        assert body.count("```") in (0, 2), body  # a code block that fits the budget is never cut
        if body.startswith("| North"):  # a table continued: its header comes first
            assert c["text"].startswith("| Region | Q1 | Q2 |\n| --- | --- | --- |\n| North")
            assert c["heading_path"] == ["Inventory", "Table"]
    joined = "\n".join(md[c["char_start"] : c["char_end"]] for c in chunks)
    assert all(f"| North {i} |" in joined for i in range(40)) and all(
        f"- item {i}:" in joined for i in range(20)
    )


def test_tables_are_found_by_their_header_and_rule_wherever_they_stand():
    from unitok.pipeline.stages.chunk import _tables

    first = "| a | b |\n| --- | --- |\n| 1 | 2 |\n| --- | --- |\n| 3 | 4 |"  # a rule in the body is a row
    md = (f"{first}\ntext | not a row\n| lone | row |\nprose\n\n| c |\r\n|:---:|\r\n| 5 |\r\n"
          "\n| x |\n| -- |\n| d |\n|---|")  # fmt: skip
    second = md.index("| c |")
    last = md.index("| d |")
    assert _tables(md) == [
        (0, len(first), "| a | b |\n| --- | --- |"),
        (second, md.index("| 5 |") + len("| 5 |\r"), "| c |\r\n|:---:|\r"),
        (last, len(md), "| d |\n|---|"),  # "| -- |" is no rule: a rule's dashes are three or more
    ]
    assert _tables("no table\n|---|") == [] and _tables("") == []


def test_prefixing_the_heading_path_stays_within_the_budget():
    md = "# Guide\n\n## Setup\n\n" + " ".join(f"Step {i} installs a part." for i in range(60))
    chunks = Chunker.from_config(ChunkingConfig(max_tokens=48, prefix_headings=True)).chunks(doc(md), [])
    assert all(c["n_tokens"] <= 48 for c in chunks)
    assert all(c["text"].startswith("Guide > Setup\n\n") for c in chunks[1:])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    src = tmp_path_factory.mktemp("chunk-src")
    for name in ("field-report.pdf", "talk.mp4", "signup-sheet.png"):
        shutil.copy(SAMPLE / name, src / name)
    shutil.copy(corpus("pptx/sample-presentation.pptx"), src / "deck.pptx")
    out = tmp_path_factory.mktemp("chunk-out")
    spec = {"mode": "incremental", "source": {"uri": str(src)}, "output": {"uri": str(out)},
            "runtime": {"executor": "local"}, "chunking": {"max_tokens": 48}}  # fmt: skip
    first = run_job(parse_config(spec))
    return src, out, spec, first


def by_file(out) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for r in sorted(read_table(out, "chunks").to_pylist(), key=lambda r: r["chunk_index"]):
        rows.setdefault(r["source_uri"].rsplit("/", 1)[-1], []).append(r)
    return rows


def test_chunks_point_at_their_pages_slides_and_moments(converted):
    _, out, _, first = converted
    chunks = by_file(out)
    assert first.chunks == sum(len(v) for v in chunks.values())
    report = chunks["field-report.pdf"]
    assert report[0]["page_numbers"] == [1] and report[-1]["page_numbers"][-1] == 2
    assert any("Appendix" in c["text"] and c["page_numbers"] == [2] for c in report)
    deck = chunks["deck.pptx"]
    assert [c["page_numbers"] for c in deck if c["text"].startswith("## ")] == [[1], [2], [3], [4]]
    talk = chunks["talk.mp4"]
    assert all(
        c["time_start_s"] is not None and c["time_end_s"] >= c["time_start_s"] for c in talk
    )  # a frame: an instant
    assert talk[0]["time_start_s"] == 0.0 and talk[-1]["time_end_s"] <= 12.5
    docs = {d["doc_id"]: d["markdown"] for d in read_table(out, "documents").to_pylist()}
    for rows in chunks.values():
        for c in rows:
            assert c["n_tokens"] <= 48 and docs[c["doc_id"]][c["char_start"] : c["char_end"]] in c["text"]


def test_chunk_ids_are_stable_and_an_incremental_run_changes_only_its_documents_chunks(converted):
    src, out, spec, _ = converted
    before = {c["chunk_id"] for c in read_table(out, "chunks").to_pylist()}
    again = run_job(parse_config({**spec, "mode": "full"}))  # everything converted again: the same ids
    assert {c["chunk_id"] for c in read_table(out, "chunks").to_pylist()} == before
    shutil.copy(SAMPLE / "scanned-memo.pdf", src / "field-report.pdf")  # one document changes
    third = run_job(parse_config(spec))
    feed = changes(out, "chunks", again.table_versions["chunks"]).to_pylist()
    assert {r["source_uri"].rsplit("/", 1)[-1] for r in feed} == {"field-report.pdf"}
    assert {r["_change_type"] for r in feed} == {"insert", "delete"}
    assert third.converted_objects == 1


def test_a_lancedb_table_follows_the_chunks_table_and_answers_with_the_place(tmp_path):
    import lancedb

    src, out, lance = tmp_path / "in", tmp_path / "out", tmp_path / "lance"
    src.mkdir()
    shutil.copy(SAMPLE / "field-report.pdf", src / "report.pdf")
    shutil.copy(SAMPLE / "talk.mp4", src / "talk.mp4")
    shutil.copy(SAMPLE / "scanned-memo.pdf", src / "memo.pdf")
    spec = {"mode": "incremental", "source": {"uri": str(src)},
            "output": {"uri": str(out), "lancedb": {"uri": str(lance), "table": "chunks"}},
            "runtime": {"executor": "local"}, "chunking": {"max_tokens": 48}}  # fmt: skip
    first = run_job(parse_config(spec))
    assert first.lancedb["loaded"] == first.chunks

    def lance_rows():
        return {
            r["chunk_id"]: r for r in lancedb.connect(str(lance)).open_table("chunks").to_arrow().to_pylist()
        }

    def delta_rows():
        return {r["chunk_id"]: r["text"] for r in read_table(out, "chunks").to_pylist()}

    before = lance_rows()
    assert {k: r["text"] for k, r in before.items()} == delta_rows()
    shutil.copy(SAMPLE / "signup-sheet.png", src / "sheet.png")  # added
    (src / "memo.pdf").unlink()  # deleted
    second = run_job(parse_config(spec))
    after = lance_rows()
    assert {k: r["text"] for k, r in after.items()} == delta_rows()
    assert second.lancedb["deleted"] == sum(
        1 for r in before.values() if r["source_uri"].endswith("memo.pdf")
    )
    untouched = {k for k, r in before.items() if not r["source_uri"].endswith("memo.pdf")}
    assert untouched <= set(after) and all(after[k]["run_id"] == before[k]["run_id"] for k in untouched)
    # A hit answers with where it came from: the page of a PDF, the moment in a recording.
    hits = lancedb.connect(str(lance)).open_table("chunks").search().where("text LIKE '%filters%'").to_list()
    places = {(h["source_uri"].rsplit("/", 1)[-1], tuple(h["page_numbers"]), h["time_start_s"]) for h in hits}
    assert ("report.pdf", (1,), None) in places and any(
        p[0] == "talk.mp4" and p[2] is not None for p in places
    )


def test_embeddings_on_every_driver_are_the_same_unit_vectors_and_lancedb_searches_them(tmp_path, ray_local):
    import lancedb
    import numpy as np
    from encoder_tiny import build_tiny_encoder

    model = build_tiny_encoder(tmp_path / "tiny-encoder")
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SAMPLE / "field-report.pdf", src / "report.pdf")
    shutil.copy(corpus("pptx/sample-presentation.pptx"), src / "deck.pptx")
    tables = {}
    for executor in ("local", "ray"):
        out = tmp_path / f"out-{executor}"
        spec = {"source": {"uri": str(src)},
                "output": {"uri": str(out), "lancedb": {"uri": str(tmp_path / f"lance-{executor}")}},
                "runtime": {"executor": executor}, "chunking": {"max_tokens": 48},
                "embedding": {"enabled": True, "model": str(model), "batch_size": 3}}  # fmt: skip
        assert run_job(parse_config(spec)).executor == executor
        tables[executor] = read_table(out, "chunks").sort_by([("chunk_id", "ascending")])
    local, ray = tables["local"], tables["ray"]
    assert local["embedding"].to_pylist() == ray["embedding"].to_pylist()  # the same bytes
    vectors = np.array(local["embedding"].to_pylist(), dtype=np.float32)
    assert vectors.shape == (local.num_rows, 16) and np.allclose(
        np.linalg.norm(vectors, axis=1), 1, atol=1e-5
    )
    assert set(local["embedding_model"].to_pylist()) == {"tiny-encoder"}
    # Each chunk's nearest neighbour in LanceDB is itself.
    table = lancedb.connect(str(tmp_path / "lance-local")).open_table("chunks")
    row = local.slice(2, 1).to_pylist()[0]
    (hit,) = table.search(row["embedding"], vector_column_name="embedding").limit(1).to_list()
    assert hit["chunk_id"] == row["chunk_id"]


def test_a_table_header_too_wide_to_repeat_keeps_every_chunk_within_the_budget():
    """Seen on a corpus PDF: a header of 175 columns took the whole budget, and chunks went over it."""
    header = "| " + " | ".join(f"col{i}" for i in range(175)) + " |\n|" + " --- |" * 175
    rows = "\n".join("| " + " | ".join(f"v{r}.{i}" for i in range(175)) + " |" for r in range(3))
    md = "# Wide\n\n" + "A paragraph about the figures. " * 40 + f"\n\n{header}\n{rows}\n\nClosing words."
    chunks = Chunker.from_config(ChunkingConfig(max_tokens=128)).chunks(doc(md), [])
    assert all(c["n_tokens"] <= 128 for c in chunks)
    # no crumbs: the paragraph is cut into chunks that fill the budget, not into fragments
    prose = [c for c in chunks if c["text"].startswith("A paragraph")]
    assert prose and all(c["n_tokens"] > 64 for c in prose[:-1])


def test_counts_from_one_encoding_are_the_real_counts_and_a_long_sentence_is_cut_between_words(converted):
    _, out, _, _ = converted
    md = read_table(out, "documents").to_pylist()[0]["markdown"]
    chunker = Chunker.from_config(ChunkingConfig(max_tokens=24, prefix_headings=True))
    long_sentence = "word " * 20 + "and " + " ".join(f"token{i}" for i in range(60)) + " end."
    for text in (md, f"# Title\n\n{long_sentence}\n\n| a | b |\n| --- | --- |\n" + "| 1 | 2 |\n" * 30):
        rows = chunker.chunks(doc(text), [])
        assert [r["n_tokens"] for r in rows] == [chunker.count(r["text"]) for r in rows]
        assert all(r["n_tokens"] <= 24 for r in rows)
        for r in rows:  # never inside a word: both ends at whitespace or at the text's ends
            a, b = r["char_start"], r["char_end"]
            assert (a == 0 or text[a - 1].isspace()) and (b == len(text) or text[b].isspace()), text[a:b]
        assert " ".join(text[r["char_start"] : r["char_end"]] for r in rows).split() == text.split()


def test_overlapping_chunks_share_at_most_the_overlap_and_lose_nothing():
    md = "# Notes\n\n" + " ".join(f"Sentence {i} says one thing." for i in range(80))
    chunker = Chunker.from_config(ChunkingConfig(max_tokens=40, overlap_tokens=10))
    rows = chunker.chunks(doc(md), [])
    assert len(rows) > 5 and all(r["n_tokens"] <= 40 for r in rows)
    shared = []
    for prev, nxt in zip(rows, rows[1:], strict=False):
        assert prev["char_start"] < nxt["char_start"] and prev["char_end"] < nxt["char_end"]
        if nxt["char_start"] < prev["char_end"]:
            shared.append(md[nxt["char_start"] : prev["char_end"]])
    # the prose's chunks overlap (the heading, alone in the first, has nothing to share)
    assert len(shared) == len(rows) - 2 and all(0 < chunker.count(s) <= 10 for s in shared), shared
    assert all(s.endswith(".") and s.startswith("Sentence") for s in shared)  # whole sentences
    assert rows[0]["char_start"] == 0 and rows[-1]["char_end"] == len(md)


def test_a_hash_line_inside_fenced_code_is_no_heading():
    code = "```python\n# set up the counters\ncount = 0\n\n# the loop\nfor x in xs:\n    count += x\n```"
    md = f"# Guide\n\n## Loop\n\nThe loop:\n\n{code}\n\nAfter the loop."
    rows = Chunker.from_config(ChunkingConfig(max_tokens=16)).chunks(doc(md), [])
    assert {tuple(r["heading_path"]) for r in rows} == {("Guide",), ("Guide", "Loop")}
    assert all(r["n_tokens"] <= 16 for r in rows)


def test_a_tokenizer_whose_pieces_cross_spaces_still_keeps_every_chunk_within_the_budget(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    text = (REPO / "README.md").read_text()
    tokenizer.train_from_iterator([text], trainers.BpeTrainer(vocab_size=600, show_progress=False))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    chunker = Chunker.from_config(ChunkingConfig(max_tokens=32, tokenizer=str(tmp_path)))
    rows = chunker.chunks(doc(text), [])
    assert len(rows) > 10 and all(r["n_tokens"] <= 32 for r in rows)  # its offsets count less: packed again
    assert [r["n_tokens"] for r in rows] == [chunker.count(r["text"]) for r in rows]
    # every character kept, in order (a URL longer than a chunk is cut inside)
    assert "".join("".join(text[r["char_start"] : r["char_end"]].split()) for r in rows) == "".join(
        text.split()
    )


def test_a_new_chunker_version_changes_the_chunks_fingerprint_only(monkeypatch):
    from unitok.pipeline.core import fingerprint

    cfg = parse_config({"source": {"uri": "in"}, "output": {"uri": "out"}})
    before = fingerprint.fingerprints(cfg)
    monkeypatch.setattr(fingerprint, "CHUNKER_VERSION", "cuts-next")
    after = fingerprint.fingerprints(cfg)
    assert after["chunks_fingerprint"] != before["chunks_fingerprint"]
    assert after["convert_fingerprint"] == before["convert_fingerprint"]


def test_encoding_each_distinct_word_once_gives_the_offsets_of_encoding_the_whole_text(converted):
    from unitok.pipeline.stages import cuts

    _, out, _, _ = converted
    tokenizer = Chunker.from_config(ChunkingConfig()).tokenizer
    odd = (
        "  \n Café naïve 東京タワー ﬁne \x00ctrl a\u2028b x\x0by \u3000full\u00a0width " + "a" * 150
        + " emoji 😀👍🏽 ‐dash ＡＢＣ ١٢٣ Ελληνικά\t\r\nend  "
    )  # fmt: skip
    ascii_gaps = odd.replace("\u3000", " ").replace("\u00a0", " ")  # split from the UTF-8 bytes
    # Bytes of multi-byte characters that are 0xA0 (à, Hangul) or 0x85, with ASCII gaps around them.
    edges = [" lead", "trail\n", "  ", "é", " \x0bv\x0cf\x1c \x85nel\x85 ", "x \u2009thin", "ﬁ\tﬂ",
             "voilà là\n", "한국어 텍스트 표", "…end\tà…"]  # fmt: skip
    docs = [r["markdown"] for r in read_table(out, "documents").to_pylist()]
    texts = docs + [odd, ascii_gaps, "x", "\x00", *edges]
    for text in texts:
        assert cuts.encode_by_word(tokenizer, text) == cuts.encode_offsets(tokenizer, text), text[:80]
