"""Chunking speed on a long real document: the Markdown of DA-619p.pdf (619 pages) cut into chunks of at
most 512 tokens (all-MiniLM-L6-v2's tokenizer) by unitok's chunk stage (its own packer plus provenance:
heading paths, pages, offsets, ids), by semantic-text-splitter's MarkdownSplitter (the splitter unitok used
before; cuts only) and by LangChain's MarkdownTextSplitter counting with the same tokenizer, in the same
process. Prints chunks per second, the ratios, the largest chunk each made, and how many of unitok's chunks
semantic-text-splitter cut the same.

    python bench/bench_chunks.py --corpus ../shared/corpus
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpus"))
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import pyarrow.dataset as pads
    from langchain_text_splitters import MarkdownTextSplitter
    from unitok.connectors.output import read_table
    from unitok.pipeline.core.config import ChunkingConfig, parse_config
    from unitok.pipeline.job import run_job
    from unitok.pipeline.stages.chunk import Chunker

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        (src / "DA-619p.pdf").symlink_to(Path(args.corpus) / "pdf" / "DA-619p.pdf")
        out = Path(tmp) / "out"
        source = {"uri": str(src), "follow_symlinks": True}
        run_job(parse_config({"source": source, "output": {"uri": str(out)}, "chunking": {"enabled": False}}))
        (doc,) = read_table(out, "documents").to_pylist()
        segments = read_table(out, "segments").to_pylist()
        del pads
    from semantic_text_splitter import MarkdownSplitter

    chunker = Chunker.from_config(ChunkingConfig(max_tokens=args.max_tokens))
    lc = MarkdownTextSplitter(chunk_size=args.max_tokens, chunk_overlap=0, length_function=chunker.count)
    sts = MarkdownSplitter.from_huggingface_tokenizer(chunker.tokenizer, args.max_tokens, 0)
    results = {}
    spans = {}
    for name, run in (
        ("unitok chunk stage (cuts + provenance)", lambda: chunker.chunks(doc, segments)),
        ("semantic-text-splitter MarkdownSplitter", lambda: sts.chunk_indices(doc["markdown"])),
        ("LangChain MarkdownTextSplitter (same tokenizer)", lambda: lc.split_text(doc["markdown"])),
    ):
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            chunks = run()
            best = min(best, time.perf_counter() - t0)
        texts = [c["text"] if isinstance(c, dict) else c[1] if isinstance(c, tuple) else c for c in chunks]
        results[name] = (len(texts), best, max(chunker.count(t) for t in texts))
        if isinstance(chunks[0], dict):
            spans[name] = {(c["char_start"], c["char_end"]) for c in chunks}
        elif isinstance(chunks[0], tuple):
            spans[name] = {(a, a + len(t)) for a, t in chunks}
    md = doc["markdown"]
    print(f"DA-619p.pdf: {len(md):,} characters of Markdown, {chunker.count(md):,} tokens")
    for name, (n, secs, biggest) in results.items():
        print(
            f"{name:50s} {n:5d} chunks in {secs:6.2f} s = {n / secs:8.1f} chunks/s, largest {biggest} tokens"
        )
    (a, b, c) = results.values()
    print(f"unitok / semantic-text-splitter: {(a[0] / a[1]) / (b[0] / b[1]):.2f}x chunks/s")
    print(f"unitok / LangChain: {(a[0] / a[1]) / (c[0] / c[1]):.2f}x chunks/s")
    ours, theirs = spans.values()
    print(f"chunks cut the same by unitok and semantic-text-splitter: {len(ours & theirs)} of {len(ours)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
