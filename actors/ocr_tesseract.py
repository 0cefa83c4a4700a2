"""tesseract engine: Tesseract OCR through tesserocr, one API instance per replica.
Debian's Tesseract spawns OpenMP threads that multiply CPU time on small machines: the worker environment
contract (unitok.pipeline.core.workerenv) pins them, since parallelism belongs to the replicas.
"""

from __future__ import annotations

import glob
import io
import os
from pathlib import Path

from PIL import Image
from unitok.actors.contract import EngineOutput, EngineSetupError
from unitok.pipeline.core.records import Segment

ENGINE_NAME = "tesseract"
_TESSDATA_CANDIDATES = [
    "/usr/share/tesseract-ocr/*/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
]


def find_tessdata(explicit: str | None, languages: str) -> str:
    """The tessdata folder holding every requested language, or a clear error naming what to install."""
    needed = languages.split("+")
    candidates = [explicit] if explicit else []
    if not explicit:
        if os.environ.get("TESSDATA_PREFIX"):
            candidates.append(os.environ["TESSDATA_PREFIX"])
        for pattern in _TESSDATA_CANDIDATES:
            candidates.extend(sorted(glob.glob(pattern), reverse=True))
    for folder in candidates:
        if all(Path(folder, f"{lang}.traineddata").is_file() for lang in needed):
            return str(folder)
    where = explicit or ", ".join(candidates) or "the standard locations"
    pkgs = " ".join(f"tesseract-ocr-{lang.lower()}" for lang in needed)
    raise EngineSetupError(
        f"ocr.languages: no tessdata with {', '.join(f'{x}.traineddata' for x in needed)} in {where} "
        f"(install with: apt-get install {pkgs}, or set ocr.tessdata_dir)"
    )


def _paragraphs(api) -> list[str]:
    import tesserocr

    paras: list[str] = []
    api.Recognize()
    it = api.GetIterator()
    if it is None:
        return paras
    level = tesserocr.RIL.PARA
    for item in tesserocr.iterate_level(it, level):
        try:
            text = item.GetUTF8Text(level)
        except RuntimeError:  # "No text returned": a block with nothing readable (a blank or flat image)
            continue
        if text and text.strip():
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            joined = ""
            for ln in lines:
                if joined.endswith("-") and ln[:1].islower():
                    joined = joined[:-1] + ln
                else:
                    joined = f"{joined} {ln}" if joined else ln
            paras.append(joined)
    return paras


class TesseractEngine:
    name = ENGINE_NAME

    def __init__(self, languages: str = "eng", tessdata_dir: str | None = None, psm: int = 3):
        import tesserocr

        self.tessdata = find_tessdata(tessdata_dir, languages)
        self._api = tesserocr.PyTessBaseAPI(path=self.tessdata, lang=languages, psm=psm)
        self.model_id = f"tesseract-{tesserocr.tesseract_version().split()[1]}:{languages}"

    def ocr_image(self, image: Image.Image) -> tuple[str, list[str]]:
        self._api.SetImage(image)
        paras = _paragraphs(self._api)
        confidence = self._api.MeanTextConf()
        warnings = []
        if not paras:
            warnings.append("no text found by OCR")
        elif confidence < 50:
            warnings.append(f"low OCR confidence ({confidence}%)")
        self._api.Clear()
        return "\n\n".join(paras), warnings

    def __call__(self, segments: list[Segment]) -> list[EngineOutput]:
        out = []
        for s in segments:
            blobs = s.images()
            if not blobs:
                raise ValueError("segment has no image to OCR")
            texts, warnings = [], []
            for blob in blobs:  # a page or image has one; a video_frames segment may have several
                with Image.open(io.BytesIO(blob)) as img:
                    text, warns = self.ocr_image(img)
                if text and text not in texts:
                    texts.append(text)
                warnings += [w for w in warns if w not in warnings]
            if texts or s.segment_kind == "video_frames":  # most video frames show no text: not a warning
                warnings = [w for w in warnings if w != "no text found by OCR"]
            out.append(EngineOutput("\n\n".join(texts), self.model_id, warnings))
        return out

    def close(self) -> None:
        self._api.End()
