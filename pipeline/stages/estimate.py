"""What a run would do, before it runs (`unitok plan`): the objects by type and size, their pages, slides,
images and seconds of audio and video read from headers and page trees (nothing is rendered or decoded),
the pages the run would OCR (its own text-layer checks), the ruled table cells it would read, the files it
hands to LibreOffice, and the wall time (and, for Phi-4, tokens) estimated from per-item rates measured by
bench/bench_rates.py on real documents (pipeline/core/rates.json, which says where and when). The rates
are CPU seconds: with a worker per core, an item's wall time on a busy pool.
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
from unitok.pipeline.formats.detect import DOC, ODP, ODS, ODT, PPT, XLS, sniff_file

RATES = Path(__file__).resolve().parent.parent / "core" / "rates.json"
COUNTS = ("pages", "ocr_pages", "table_cells", "slides", "images", "audio_seconds", "video_seconds",
          "libreoffice_files", "document_bytes")  # fmt: skip
# Converted through LibreOffice first (a soffice start each: the cost is per file).
LIBREOFFICE = {t.mime_type for t in (PPT, ODP, DOC, ODT, XLS, ODS)}
# The parts of a zip document whose size is its text work (styles and themes are not read as text).
_CONTENT_PART = re.compile(r"(word/document|xl/worksheets/[^/]+|xl/sharedStrings)\.xml|.+\.x?html?", re.I)
DEFAULT_ASR = "tiny.en"  # audio.asr_model unset: the packaged tiny.en


def load_rates() -> dict[str, Any]:
    return json.loads(RATES.read_text())


def probe_file(path: Path, cfg: JobConfig, sample_pages: int | None = None) -> dict[str, Any]:
    """One file's type and countable work: {"mime_type", "modality", "pages", "ocr_pages", "table_cells",
    "slides", "images", "audio_seconds", "video_seconds", "libreoffice_files", "document_bytes"} (zeros
    where they do not apply; "error" when the run would fail on it too, as the run would then record an
    error row), and the settings its rates depend on ("ocr_dpi", "asr_model"). sample_pages: a PDF's pages
    estimated from that many pages spread over it, not counted on every page."""
    ft = sniff_file(path)
    out: dict[str, Any] = {"mime_type": ft.mime_type, "modality": ft.modality, **dict.fromkeys(COUNTS, 0)}
    out |= {"ocr_dpi": cfg.pdf.ocr_dpi, "asr_model": cfg.audio.asr_model or DEFAULT_ASR}
    try:
        if not ft.supported:
            out["unsupported"] = True
        elif ft.modality == "pdf":
            out["pages"], out["ocr_pages"], out["table_cells"] = _pdf_pages(path, cfg, sample_pages)
        elif ft.modality == "image":
            out["images"] = _image_frames(path, cfg)
        elif ft.mime_type in LIBREOFFICE:
            out["libreoffice_files"] = 1
            if ft.modality == "presentation":
                out["slides"] = None  # known only once LibreOffice has converted the deck
        elif ft.mime_type.endswith("presentationml.presentation"):
            with zipfile.ZipFile(path) as z:
                out["slides"] = sum(1 for n in z.namelist() if re.fullmatch(r"ppt/slides/slide\d+\.xml", n))
        elif ft.modality in ("audio", "video"):
            from unitok.pipeline.formats.av import probe

            meta = probe(path, cfg.audio.decode_timeout_s)
            seconds = float(meta.get("format", {}).get("duration") or 0)
            out[f"{ft.modality}_seconds"] = round(seconds, 3)
        else:  # Word, spreadsheets, web pages, text, e-books, e-mail: read as markup
            out["document_bytes"] = _content_bytes(path)
    except Exception as e:  # noqa: BLE001 - the plan says it; the run would make it an error row
        out["error"] = f"{type(e).__name__}: {e}"[:300]
    return out


def _image_frames(path: Path, cfg: JobConfig) -> int:
    """Frames the run converts, opened as the run opens them (its HEIC opener registered); an image over
    image.max_pixels is refused, as the run refuses it."""
    from PIL import Image
    from unitok.pipeline.formats.image import ImageOpenError  # registers the HEIC opener, as the run does

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as img:
        w, h = img.size
        if w * h > cfg.image.max_pixels:
            raise ImageOpenError(
                f"image is {w}x{h} = {w * h} pixels, over image.max_pixels={cfg.image.max_pixels}"
            )
        return min(getattr(img, "n_frames", 1), cfg.image.max_frames)


def _content_bytes(path: Path) -> int:
    """The bytes a document's reader parses: a zip package's text parts (uncompressed), else the file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return sum(i.file_size for i in z.infolist() if _CONTENT_PART.fullmatch(i.filename))
    return path.stat().st_size


def _pdf_pages(path: Path, cfg: JobConfig, sample: int | None = None) -> tuple[int, int, int]:
    """(pages, pages the run reads from their pixels, ruled table cells it reads): counted, or scaled from
    `sample` pages spread over the document. The OCR test is the run's own (formats.pdf.page_content) on
    the text layer: too few characters and an image on the page, or a low-quality layer."""
    from unitok.pipeline.formats.pdf import open_pdf

    pdf = open_pdf(path)
    try:
        n = len(pdf)
        if n == 0:
            from unitok.pipeline.formats.pdf import PdfOpenError

            raise PdfOpenError("PDF has no pages")
        limit = min(n, cfg.pdf.max_pages or n)
        looked = range(limit) if not sample or sample >= limit else range(0, limit, -(-limit // sample))
        ocr = cells = 0
        for i in looked:
            page = pdf[i]
            try:
                text = page.get_textpage()
                try:
                    words = text.get_text_range()
                finally:
                    text.close()
                ocr += _needs_ocr(page, words, cfg)
                cells += _ruled_cells(page)
            finally:
                page.close()
        scale = limit / max(len(looked), 1)
        return limit, round(ocr * scale), round(cells * scale)
    finally:
        pdf.close()


def _needs_ocr(page: Any, text: str, cfg: JobConfig) -> bool:
    """formats.pdf.page_content's decision, on the page's text layer read as one string."""
    # The run's own helpers, so that the plan and the run cannot disagree on a page.
    from unitok.pipeline.formats.pdf import _has_images, _has_invisible_text, text_quality

    if len(re.sub(r"\s", "", text)) >= cfg.pdf.min_text_chars:
        quality = text_quality(text)
        if quality >= cfg.pdf.reocr_below_quality:
            return False
        return _has_invisible_text(page) or quality < cfg.pdf.min_text_quality
    return _has_images(page)


def _ruled_cells(page: Any) -> int:
    """The cells of the page's grids of rules, each read from the text layer by the table finder
    (formats.pdf_tables.find_tables): a form of a few hundred cells costs it more than the page's lines."""
    from unitok.pipeline.formats.pdf_tables import _components, _rules, _snap

    horizontal, vertical = _rules(page)
    if len(horizontal) < 3 or len(vertical) < 3:
        return 0
    cells = 0
    for hs, vs in _components(horizontal, vertical):
        rows, cols = len(_snap([y for y, _, _ in hs])), len(_snap([x for x, _, _ in vs]))
        if rows >= 3 and cols >= 3:
            cells += (rows - 1) * (cols - 1)
    return cells


def inventory(probes: list[tuple[ObjectInfo, dict[str, Any]]]) -> dict[str, Any]:
    """Totals over probed objects: objects and bytes by type, the countable work, files that could not
    be probed, and legacy decks whose slides are not counted."""
    by_type: dict[str, dict[str, int]] = {}
    totals: Counter[str] = Counter()
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


def asr_rates(rates: dict[str, Any], model: str) -> dict[str, Any]:
    """Whisper's CPU seconds per second of audio and its load time for audio.asr_model: measured for the
    packaged tiny.en and base; a model folder scaled from base by its model.bin's size (CTranslate2's
    cost follows the weights: base is twice tiny.en's size and measured about twice as slow)."""
    measured = rates.get("asr", {})
    if model in measured:
        return {**measured[model], "model": model}
    base = measured.get("base") or measured.get(DEFAULT_ASR)
    if base is None:  # rates recorded before per-model rates: the default model's
        how = f"{model}: no per-model rates recorded; {DEFAULT_ASR}'s"
        return {"audio_s_per_s": rates["cpu"]["audio_s_per_s"], "first_use_s": 0.0, "model": how}
    weights = Path(model) / "model.bin"
    if weights.is_file() and base.get("model_bytes"):
        scale = weights.stat().st_size / base["model_bytes"]
        how = f"{model}: scaled from base by its model.bin size"
    else:
        scale, how = 1.0, f"{model}: no model.bin to size it by; base's rate"
    return {"audio_s_per_s": base["audio_s_per_s"] * scale, "first_use_s": base["first_use_s"] * scale,
            "model": how}  # fmt: skip


def cpu_rates(rates: dict[str, Any], ocr_dpi: int, asr_model: str) -> dict[str, float]:
    """The per-item rates for these settings: an OCR page's cost scaled by its pixels, (DPI / the DPI it
    was measured at)²; audio at the configured Whisper model's rate, and video's speech likewise (its
    rate was measured with tiny.en: the difference is the model's)."""
    cpu = dict(rates["cpu"])
    cpu["ocr_page_s"] *= (ocr_dpi / rates.get("ocr_dpi", ocr_dpi)) ** 2
    asr = asr_rates(rates, asr_model)
    cpu["video_s_per_s"] += asr["audio_s_per_s"] - cpu["audio_s_per_s"]
    cpu["audio_s_per_s"] = asr["audio_s_per_s"]
    return cpu


def work_s(counts: dict[str, Any], cpu: dict[str, float], objects: int) -> dict[str, float]:
    """CPU-engine seconds by kind of work, for an inventory's totals or one probed object's counts (cpu:
    from cpu_rates, for the job's settings)."""
    ocr = counts.get("ocr_pages") or 0
    return {
        "text_pages": ((counts.get("pages") or 0) - ocr) * cpu["text_page_s"],
        "table_cells": (counts.get("table_cells") or 0) * cpu.get("table_cell_s", 0.0),
        "ocr_pages": ocr * cpu["ocr_page_s"],
        "slides": (counts.get("slides") or 0) * cpu["slide_s"],
        "images": (counts.get("images") or 0) * cpu["image_s"],
        "audio": (counts.get("audio_seconds") or 0) * cpu["audio_s_per_s"],
        "video": (counts.get("video_seconds") or 0) * cpu["video_s_per_s"],
        "libreoffice": (counts.get("libreoffice_files") or 0) * cpu.get("libreoffice_s", 0.0),
        "documents": (counts.get("document_bytes") or 0) / 2**20 * cpu.get("document_mib_s", 0.0),
        "objects": objects * cpu["object_s"],
    }


def first_use_s(rates: dict[str, Any], counts: dict[str, Any], asr: dict[str, Any]) -> float:
    """Engine and model loading, once per kind of work the job has (each worker loads what it meets; the
    workers load at once). Whisper loads for video's speech as for audio."""
    load = rates.get("first_use_s", {})
    kinds = {"text_page_s": (counts.get("pages") or 0) - (counts.get("ocr_pages") or 0),
             "ocr_page_s": counts.get("ocr_pages"), "slide_s": counts.get("slides"),
             "image_s": counts.get("images"), "video_s_per_s": counts.get("video_seconds")}  # fmt: skip
    total = sum(s for k, s in load.items() if kinds.get(k))
    if counts.get("audio_seconds") or counts.get("video_seconds"):
        total += asr.get("first_use_s", load.get("audio_s_per_s", 0.0))
    return total


def spread_over_pool(p: dict[str, Any]) -> bool:
    """Whether the local driver spreads this probed object's pages over its workers (a long PDF)."""
    from unitok.pipeline.stages.per_object import SPREAD_MIN_PAGES

    return p.get("modality") == "pdf" and (p.get("pages") or 0) >= SPREAD_MIN_PAGES


def object_work_s(p: dict[str, Any], rates: dict[str, Any]) -> float:
    """One probed object's CPU-engine seconds, at the rates of the settings it was probed with: one
    worker converts a whole object."""
    cpu = cpu_rates(rates, p.get("ocr_dpi") or rates.get("ocr_dpi", 300), p.get("asr_model") or DEFAULT_ASR)
    return sum(work_s(p, cpu, 1).values())


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
    model = cfg.audio.asr_model or DEFAULT_ASR
    asr = asr_rates(rates, model)
    engine_s = work_s(inv, cpu_rates(rates, cfg.pdf.ocr_dpi, model), inv["objects"])
    first_use = first_use_s(rates, inv, asr)
    out: dict[str, Any] = {
        "engine": cfg.engine.name,
        "executor": executor,
        "workers": workers,
        "start_up_s": rates["start_up_s"].get(executor, rates["start_up_s"]["ray"]),
        "rates": {
            "measured_at": rates["measured_at"],
            "where": rates["where"],
            "by": rates["by"],
            "ocr_dpi": cfg.pdf.ocr_dpi,
            "asr_model": asr["model"],
        },
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
            cpu_only = ("text_pages", "table_cells", "libreoffice", "documents", "objects")
            engine_s = {k: engine_s[k] for k in cpu_only} | {"phi4_gpu": gpu_s}
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
    totals: Counter[str] = Counter()
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
        totals.update({k: p.get(k) or 0 for k in COUNTS})
        if rates["start_up_s"]["local"] + max(work / workers, largest) > stop_s:
            complete = False
            break
    first_use = first_use_s(rates, totals, asr_rates(rates, cfg.audio.asr_model or DEFAULT_ASR))
    run_s = first_use + max(work / max(workers, 1), largest)
    return {
        "work_s": round(work, 2),
        "probed": probed,
        "complete": complete,
        **{name: round(start + run_s, 2) for name, start in rates["start_up_s"].items()},
    }
