"""Slides/s on the corpus decks: unitok's PPTX splitter + slide_text engine against markitdown's PPTX
converter, in the same process and run, each deck converted --repeat times (start-up excluded for both:
this measures the conversion itself).

    python bench/bench_pptx.py --corpus ../shared/corpus
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    from markitdown import MarkItDown
    from unitok.actors.slide_text import SlideTextEngine
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.core.records import Segment
    from unitok.pipeline.formats.pptx import split_pptx

    decks = sorted((args.corpus / "pptx").glob("*.pptx"))
    cfg = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}})
    engine, peer = SlideTextEngine(), MarkItDown()
    print(f"{'deck':<32}{'slides':>7} {'unitok slides/s':>16} {'markitdown slides/s':>20} {'speed ×':>8}")
    total = {"slides": 0, "u": 0.0, "p": 0.0}
    for deck in decks:
        base = Segment("d", deck.as_uri(), "v", 1, MIME, "presentation", -1, "object", "none")
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            segs = list(split_pptx(deck, base, cfg))
            engine(segs)
        u = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            peer.convert(str(deck))
        p = time.perf_counter() - t0
        n = len(segs) * args.repeat
        total["slides"] += n
        total["u"] += u
        total["p"] += p
        print(f"{deck.name:<32}{len(segs):>7} {n / u:>16.1f} {n / p:>20.1f} {p / u:>8.2f}")
    n = total["slides"]
    print(f"{'all decks':<32}{n // args.repeat:>7} {n / total['u']:>16.1f} {n / total['p']:>20.1f} "
          f"{total['p'] / total['u']:>8.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
