"""More languages on the CPU engines: Tesseract's script detection choosing the installed packs
(`ocr.languages: auto`), and the language column of segments and documents. The multilingual Whisper is
tested with the audio (tests/test_audio.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import unitok
from PIL import Image, ImageDraw, ImageFont
from unitok.actors.ocr_tesseract import find_tessdata

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
GERMAN = ["Die Straße wird gesperrt.", "Größere Fahrzeuge fahren über", "die Brücke am Fluss."]


def page(path: Path, lines: list[str]) -> Path:
    img = Image.new("RGB", (1400, 420), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT), 48)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 120 * i), line, fill="black", font=font)
    img.save(path)
    return path


@pytest.fixture(scope="module")
def german_installed():
    if not FONT.is_file():
        pytest.skip("the DejaVu font draws the test page")
    try:
        find_tessdata(None, "osd+eng+deu")
    except Exception:  # noqa: BLE001
        pytest.skip("OCR_LANGS='eng deu' bash infra/install-system-deps.sh installs the German pack")


def test_auto_reads_with_the_installed_packs_of_the_script(tmp_path, german_installed):
    image = page(tmp_path / "schild.png", GERMAN)
    auto = unitok.convert(image, config={"ocr": {"languages": "auto"}})
    (seg,) = auto.segments
    assert seg["model_id"].endswith(":auto:deu+eng")  # Latin script: every installed Latin pack
    assert "Straße" in auto.markdown and "Brücke" in auto.markdown and "Größere" in auto.markdown
    assert seg["language"] is None  # read with two packs: which language is not known
    german = unitok.convert(image, config={"ocr": {"languages": "deu"}})
    assert german.segments[0]["language"] == "de" and german.row["language"] == "de"
    assert "Straße" in german.markdown


def test_documents_without_a_known_language_say_null():
    doc = unitok.convert(Path(__file__).resolve().parent.parent / "sample" / "field-report.pdf")
    assert doc.row["language"] is None and {s["language"] for s in doc.segments} == {None}
