"""Phi-4-multimodal engine throughput on a GPU: pages/s, audio real-time factor and peak GPU memory per
replica at several batch token budgets, with a fixed number of generated tokens per item.

The FULL-SIZE architecture is built from Phi4MultimodalConfig() with random weights (no download), so the
figures are the real model's compute and memory, not its quality. `--tiny` runs the same measurement on
the tests' tiny model on CPU, to check the script itself.

    python bench/bench_phi4.py                   # on a CUDA machine
    python bench/bench_phi4.py --tiny --device cpu --pages 2 --new-tokens 4 --budgets 4096
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def page_images(corpus: Path, n: int, dpi: int) -> list[bytes]:
    import pypdfium2 as pdfium

    out: list[bytes] = []
    pdf = pdfium.PdfDocument(corpus / "pdf" / "DA-619p.pdf")
    for i in range(n):
        buf = io.BytesIO()
        pdf[5 + i].render(scale=dpi / 72).to_pil().save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def build(tiny: bool, device: str):
    import torch
    from phi4_tiny import build_tiny_phi4
    from transformers import Phi4MultimodalConfig, Phi4MultimodalForCausalLM, Phi4MultimodalProcessor

    small = build_tiny_phi4(Path(tempfile.mkdtemp()))  # tokenizer + processor (+ tiny weights)
    processor = Phi4MultimodalProcessor.from_pretrained(small)
    if tiny:
        return Phi4MultimodalForCausalLM.from_pretrained(small), processor
    tok = processor.tokenizer
    config = Phi4MultimodalConfig()  # the real 5.6B architecture
    config.vision_config.image_token_id = tok.image_token_id
    config.audio_config.audio_token_id = tok.audio_token_id
    config.bos_token_id = config.pad_token_id = tok.pad_token_id
    config.eos_token_id = [tok.eos_token_id]
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = Phi4MultimodalForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    return model, processor


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--pages", type=int, default=32)
    ap.add_argument("--audio-windows", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=512)
    ap.add_argument("--budgets", default="16384,65536,131072")
    ap.add_argument("--max-crops", type=int, default=4)
    args = ap.parse_args()

    import torch
    from unitok.actors.phi4 import Phi4Engine
    from unitok.pipeline.core.records import ROUTE_PHI4, Segment

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or pass --tiny --device cpu", file=sys.stderr)
        return 2
    model, processor = build(args.tiny, args.device)
    pages = [
        Segment("d", "bench", "v", 1, "image/png", "pdf", i, "page", ROUTE_PHI4, image_png=b)
        for i, b in enumerate(page_images(args.corpus, args.pages, 150))
    ]
    rng = np.random.default_rng(0)
    clip = (0.05 * rng.standard_normal(30 * 16000)).astype(np.float32).tobytes()
    audio = [
        Segment("d", "bench", "v", 1, "audio/wav", "audio", i, "audio_window", ROUTE_PHI4, audio_f32=clip)
        for i in range(args.audio_windows)
    ]
    print(f"model: {'tiny' if args.tiny else 'full-size Phi-4-multimodal, random weights'} on {args.device}; "
          f"{args.new_tokens} new tokens per item; max_crops {args.max_crops}")  # fmt: skip
    print(f"{'budget':>8} {'pages':>6} {'pages/s':>8} {'audio s':>8} {'RTF':>7} {'peak GiB':>9}")
    for budget in (int(b) for b in args.budgets.split(",")):
        engine = Phi4Engine(
            "bench", device=args.device, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
            token_budget=budget, max_crops=args.max_crops, loaded=(model, processor),
        )  # fmt: skip
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        engine(pages)
        page_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine(audio)
        audio_s = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else float("nan")
        rtf = audio_s / (30 * len(audio)) if audio else float("nan")
        rate = len(pages) / page_s
        print(f"{budget:>8} {len(pages):>6} {rate:>8.2f} {audio_s:>8.1f} {rtf:>7.3f} {peak:>9.1f}")
    print("vLLM comparison: needs the remote-code checkpoint on disk (not buildable offline); see README.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
