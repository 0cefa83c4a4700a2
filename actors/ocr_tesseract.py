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


# ocr.languages: auto: the language packs tried for each script Tesseract's detection names, where installed.
SCRIPT_LANGUAGES = {
    # English last: Tesseract prefers its first pack's letters, and English has no diacritics, so first it
    # reads "Brücke" as "Brucke" (measured with eng+deu).
    "Latin": ["deu", "fra", "spa", "ita", "por", "nld", "dan", "swe", "nor", "fin", "pol", "ces", "tur",
              "hun", "ron", "cat", "vie", "eng"],
    "Cyrillic": ["rus", "ukr", "bul", "srp"], "Greek": ["ell"], "Arabic": ["ara", "fas"], "Hebrew": ["heb"],
    "Devanagari": ["hin", "mar"], "Han": ["chi_sim", "chi_tra"], "Japanese": ["jpn"], "Hangul": ["kor"],
    "Thai": ["tha"],
}  # fmt: skip


def find_tessdata(explicit: str | None, languages: str) -> str:
    """The tessdata folder holding every requested language (auto: the script detector, osd, and
    English), or a clear error naming what to install."""
    needed = ["osd", "eng"] if languages == "auto" else languages.split("+")
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


# Tesseract's language data names (ISO 639-2/T and its own) → ISO 639-1, as Whisper names languages.
TESSERACT_TO_ISO = {
    "eng": "en",
    "deu": "de",
    "fra": "fr",
    "spa": "es",
    "ita": "it",
    "por": "pt",
    "nld": "nl",
    "dan": "da",
    "swe": "sv",
    "nor": "no",
    "fin": "fi",
    "pol": "pl",
    "ces": "cs",
    "rus": "ru",
    "ukr": "uk",
    "tur": "tr",
    "ell": "el",
    "ara": "ar",
    "heb": "he",
    "hin": "hi",
    "jpn": "ja",
    "kor": "ko",
    "chi_sim": "zh",
    "chi_tra": "zh",
    "vie": "vi",
    "hun": "hu",
    "ron": "ro",
    "cat": "ca",
}


class TesseractEngine:
    name = ENGINE_NAME

    def __init__(self, languages: str = "eng", tessdata_dir: str | None = None, psm: int = 3):
        import tesserocr

        self.tessdata = find_tessdata(tessdata_dir, languages)
        self.version = tesserocr.tesseract_version().split()[1]
        self.auto, self.psm = languages == "auto", psm
        self._apis: dict[str, object] = {}
        if self.auto:
            self._osd = tesserocr.PyTessBaseAPI(path=self.tessdata, lang="osd", psm=tesserocr.PSM.OSD_ONLY)
            self._installed = {p.stem for p in Path(self.tessdata).glob("*.traineddata")} - {"osd"}
            languages = "eng"
        self._use(languages)

    def _use(self, languages: str) -> None:
        """Read with these language packs from now on (one API instance per combination, kept)."""
        import tesserocr

        if languages not in self._apis:
            self._apis[languages] = tesserocr.PyTessBaseAPI(path=self.tessdata, lang=languages, psm=self.psm)
        self._api = self._apis[languages]
        self.model_id = f"tesseract-{self.version}:{'auto:' if self.auto else ''}{languages}"
        # One language pack is the language the text was read in; with several, it is not known.
        self.language = None if "+" in languages else TESSERACT_TO_ISO.get(languages, languages)

    def detect(self, image: Image.Image) -> str:
        """The installed packs of the image's script, by Tesseract's script detection (Latin when it
        finds too little text to tell)."""
        self._osd.SetImage(image)
        try:
            found = self._osd.DetectOrientationScript()
        except RuntimeError:
            found = None
        self._osd.Clear()
        script = (found or {}).get("script_name") or "Latin"
        packs = [x for x in SCRIPT_LANGUAGES.get(script, []) if x in self._installed]
        return "+".join(packs) or "eng"

    def ocr_image(self, image: Image.Image) -> tuple[str, list[str]]:
        if self.auto:
            self._use(self.detect(image))
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
            out.append(EngineOutput("\n\n".join(texts), self.model_id, warnings, language=self.language))
        return out

    def close(self) -> None:
        """Every Tesseract instance ends (auto mode keeps one per language set, and the detector)."""
        for api in [*self._apis.values(), getattr(self, "_osd", None)]:
            if api is not None:
                api.End()
        self._apis.clear()
