"""What a run would do, before it runs (`unitok plan`): the objects by type and size, their pages, slides,
images and seconds of audio and video read from headers and page trees (nothing is rendered or decoded),
the pages likely to need OCR (a text-layer check), and the wall time (and, for Phi-4, tokens) estimated
from per-item rates measured by bench/bench_rates.py (pipeline/core/rates.json, which says where and when).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from unitok.connectors.objects import ObjectInfo
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.formats.detect import sniff_file

RATES = Path(__file__).resolve().parent.parent / "core" / "rates.json"
COUNTS = ("pages", "ocr_pages", "slides", "images", "audio_seconds", "video_seconds")


def load_rates() -> dict[str, Any]:
    return json.loads(RATES.read_text())


def probe_file(path: Path, cfg: JobConfig, sample_pages: int | None = None) -> dict[str, Any]:
    """One file's type and countable work: {"mime_type", "modality", "pages", "ocr_pages", "slides",
    "images", "audio_seconds", "video_seconds"} (zeros where they do not apply; "error" when its header
    cannot be read, as the run would then record an error row). sample_pages: a PDF's pages needing OCR
    estimated from that many pages spread over it, not counted on every page."""
    ft = sniff_file(path)
    out: dict[str, Any] = {"mime_type": ft.mime_type, "modality": ft.modality, **dict.fromkeys(COUNTS, 0)}
    try:
        if ft.modality == "pdf":
            out["pages"], out["ocr_pages"] = _pdf_pages(path, cfg, sample_pages)
        elif ft.modality == "image":
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = None
            with Image.open(path) as img:
                out["images"] = min(getattr(img, "n_frames", 1), cfg.image.max_frames)
        elif ft.mime_type.endswith("presentationml.presentation"):
            with zipfile.ZipFile(path) as z:
                out["slides"] = sum(1 for n in z.namelist() if re.fullmatch(r"ppt/slides/slide\d+\.xml", n))
        elif ft.modality == "presentation":
            out["slides"] = None  # a legacy .ppt: known only once LibreOffice has converted it
        elif ft.modality in ("audio", "video"):
            from unitok.pipeline.formats.av import probe

            meta = probe(path, cfg.audio.decode_timeout_s)
            seconds = float(meta.get("format", {}).get("duration") or 0)
            out[f"{ft.modality}_seconds"] = round(seconds, 3)
        elif not ft.supported:
            out["unsupported"] = True
    except Exception as e:  # noqa: BLE001 - the plan says it; the run would make it an error row
        out["error"] = f"{type(e).__name__}: {e}"[:300]
    return out


def _pdf_pages(path: Path, cfg: JobConfig, sample: int | None = None) -> tuple[int, int]:
    """(pages, pages whose text layer has fewer than pdf.min_text_chars non-space characters: counted, or
    scaled from `sample` pages spread over the document)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        n = len(pdf)
        limit = min(n, cfg.pdf.max_pages or n)
        looked = range(limit) if not sample or sample >= limit else range(0, limit, -(-limit // sample))
        ocr = 0
        for i in looked:
            page = pdf[i]
            try:
                text = page.get_textpage()
                try:
                    chars = len(re.sub(r"\s", "", text.get_text_range()))
                finally:
                    text.close()
            finally:
                page.close()
            ocr += chars < cfg.pdf.min_text_chars
        return limit, round(ocr * limit / max(len(looked), 1))
    finally:
        pdf.close()


def inventory(probes: list[tuple[ObjectInfo, dict[str, Any]]]) -> dict[str, Any]:
    """Totals over probed objects: objects and bytes by type, the countable work, files that could not
    be probed, and legacy decks whose slides are not counted."""
    by_type: dict[str, dict[str, int]] = {}
    totals = Counter()
    problems = []
    for obj, p in probes:
        t = by_type.setdefault(p["mime_type"], {"objects": 0, "bytes": 0})
        t["objects"] += 1
        t["bytes"] += obj.size
        for k in COUNTS:
            totals[k] += p.get(k) or 0
        if p.get("slides") is None:
            totals["uncounted_decks"] += 1
        if "error" in p or p.get("unsupported"):
            problems.append({"uri": obj.uri, "why": p.get("error") or f"unsupported type {p['mime_type']}"})
    return {
        "objects": len(probes),
        "bytes": sum(o.size for o, _ in probes),
        "by_type": dict(sorted(by_type.items())),
        **{k: round(totals[k], 3) if k.endswith("seconds") else int(totals[k]) for k in COUNTS},
        "uncounted_decks": int(totals["uncounted_decks"]),
        "problems": problems[:50],
        "problem_count": len(problems),
    }


def work_s(
    counts: dict[str, Any], cpu: dict[str, float], objects: int, legacy_decks: int
) -> dict[str, float]:
    """CPU-engine seconds by kind of work, for an inventory's totals or one probed object's counts."""
    ocr = counts.get("ocr_pages") or 0
    return {
        "text_pages": ((counts.get("pages") or 0) - ocr) * cpu["text_page_s"],
        "ocr_pages": ocr * cpu["ocr_page_s"],
        "slides": (counts.get("slides") or 0) * cpu["slide_s"],
        "images": (counts.get("images") or 0) * cpu["image_s"],
        "audio": (counts.get("audio_seconds") or 0) * cpu["audio_s_per_s"],
        "video": (counts.get("video_seconds") or 0) * cpu["video_s_per_s"],
        "objects": objects * cpu["object_s"],
        "legacy_decks": legacy_decks * cpu.get("legacy_deck_s", 0.0),
    }


def spread_over_pool(p: dict[str, Any]) -> bool:
    """Whether the local driver spreads this probed object's pages over its workers (a long PDF)."""
    from unitok.pipeline.stages.per_object import SPREAD_MIN_PAGES

    return p.get("modality") == "pdf" and (p.get("pages") or 0) >= SPREAD_MIN_PAGES


def object_work_s(p: dict[str, Any], rates: dict[str, Any]) -> float:
    """One probed object's CPU-engine seconds: one worker converts a whole object."""
    return sum(work_s(p, rates["cpu"], 1, int(p.get("slides", 0) is None)).values())


def estimate(
    inv: dict[str, Any],
    cfg: JobConfig,
    workers: int,
    executor: str,
    rates: dict[str, Any],
    largest_s: float = 0.0,
) -> dict:
    """Wall time on `workers` workers from the measured per-item rates (never less than the largest
    object's own work, largest_s: an object is converted by one worker); for Phi-4 engines, the tokens
    in and the most out, and GPU-hours when a GPU rate is recorded."""
    cpu = rates["cpu"]
    text_pages = inv["pages"] - inv["ocr_pages"]
    engine_s = work_s(inv, cpu, inv["objects"], inv["uncounted_decks"])
    # Each worker loads the engines of the kinds it meets once: counted once (the workers load at once).
    kinds = {"text_page_s": text_pages, "ocr_page_s": inv["ocr_pages"], "slide_s": inv["slides"],
             "image_s": inv["images"], "audio_s_per_s": inv["audio_seconds"],
             "video_s_per_s": inv["video_seconds"]}  # fmt: skip
    first_use = sum(s for k, s in rates.get("first_use_s", {}).items() if kinds.get(k))
    out: dict[str, Any] = {
        "engine": cfg.engine.name,
        "executor": executor,
        "workers": workers,
        "start_up_s": rates["start_up_s"].get(executor, rates["start_up_s"]["ray"]),
        "rates": {"measured_at": rates["measured_at"], "where": rates["where"], "by": rates["by"]},
    }
    if cfg.engine.uses_phi4:
        from unitok.actors.phi4 import AUDIO_TOKENS_PER_SECOND, IMAGE_TOKENS_PER_CROP

        phi = cfg.engine.phi4
        model_pages = inv["pages"] if phi.always_model else inv["ocr_pages"]
        images = model_pages + inv["images"] + inv["slides"]  # slides with pictures or charts go as images
        per_image = (phi.max_crops + 1) * IMAGE_TOKENS_PER_CROP
        audio_items = int(-(-inv["audio_seconds"] // cfg.audio.max_window_s)) if inv["audio_seconds"] else 0
        tokens_in = images * per_image + int(inv["audio_seconds"] * AUDIO_TOKENS_PER_SECOND)
        out["tokens"] = {"in_at_most": tokens_in, "out_at_most": (images + audio_items) * phi.max_new_tokens}
        gpu = rates.get("phi4_gpu")
        if gpu:  # model items on one GPU replica; text-layer pages and keyframe timing stay on CPUs
            gpu_s = images * gpu["image_s"] + inv["audio_seconds"] * gpu["audio_s_per_s"]
            out["gpu_hours"] = round(gpu_s / 3600, 3)
            engine_s = {k: engine_s[k] for k in ("text_pages", "objects")} | {"phi4_gpu": gpu_s}
        else:
            out["gpu_hours"] = None
            out["gpu_hours_why"] = "no GPU rate recorded yet: bench/bench_phi4.py on a GPU measures one"
    total = sum(engine_s.values())
    out["work_s"] = {k: round(v, 1) for k, v in engine_s.items()}
    out["first_use_s"] = round(first_use, 2)
    spread = total / max(workers, 1)
    out["largest_object_s"] = round(largest_s, 1)
    out["wall_s"] = round(out["start_up_s"] + first_use + max(spread, largest_s), 1)
    return out


# A PDF's pages needing OCR are estimated from this many of its pages when a run chooses its driver.
CHOICE_SAMPLE_PAGES = 8


def driver_wall_s(
    cfg: JobConfig,
    objects: list[tuple[Any, str]],
    store: Any,
    workers: int,
    rates: dict[str, Any],
    stop_s: float,
    probes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The job's wall time on each driver on this machine: its measured start-up, the engines' first
    use and the objects' work (probed from headers and page trees, per-item rates) spread over the
    workers, never less than the largest object. objects: (listed ObjectInfo, action); only conversions
    are probed, unless their probes are given (in order). Probing stops once the local estimate passes
    stop_s ("complete" is then False)."""
    cpu = rates["cpu"]
    work = largest = 0.0
    kinds: set[str] = set()
    probed = 0
    complete = True
    for info, action in objects:
        if action != "convert":
            work += cpu["object_s"]
            continue
        if probes is not None:
            p = probes[probed]
        else:
            with store.fetch(info) as (path, _):
                p = probe_file(path, cfg, CHOICE_SAMPLE_PAGES)
        probed += 1
        s = object_work_s(p, rates)
        work, largest = work + s, max(largest, 0.0 if spread_over_pool(p) else s)
        kinds |= {k for k in COUNTS if p.get(k)}
        if rates["start_up_s"]["local"] + max(work / workers, largest) > stop_s:
            complete = False
            break
    first_use_of = {"pages": "text_page_s", "ocr_pages": "ocr_page_s", "slides": "slide_s",
                    "images": "image_s", "audio_seconds": "audio_s_per_s",
                    "video_seconds": "video_s_per_s"}  # fmt: skip
    first_use = sum(rates.get("first_use_s", {}).get(first_use_of[k], 0.0) for k in kinds)
    run_s = first_use + max(work / max(workers, 1), largest)
    return {
        "work_s": round(work, 2),
        "probed": probed,
        "complete": complete,
        **{name: round(start + run_s, 2) for name, start in rates["start_up_s"].items()},
    }
