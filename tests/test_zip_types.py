# ruff: noqa: E501 - a case per line reads as a table
"""Office files typed by what their zip holds, whatever their name: workbooks (XLSX, XLSM, ODS), documents
(DOCX, ODT) and decks (PPTX, ODP) made here with known words, renamed to no extension and to a wrong one,
convert to their own text through the Python API."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import unitok
from unitok.pipeline.formats.detect import sniff_file

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM = "application/vnd.ms-excel.sheet.macroEnabled.12"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODT = "application/vnd.oasis.opendocument.text"
ODP = "application/vnd.oasis.opendocument.presentation"


def _rewrite(path: Path, change: dict[str, bytes | None]) -> None:
    """The zip at path with members replaced (bytes) or left out (None), `mimetype` kept first and stored."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    for name, data in change.items():
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data, zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED)


def make_xlsx(path: Path) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "Ledger"
    wb.active.append(["Pump", "Hours"])
    wb.active.append(["Kestrel intake", 1234])
    wb.save(path)
    return path


def make_xlsm(path: Path) -> Path:
    """A macro-enabled workbook: an XLSX whose main part says so in [Content_Types].xml, as Excel writes it."""
    make_xlsx(path)
    with zipfile.ZipFile(path) as z:
        types = z.read("[Content_Types].xml").decode()
    main = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
    assert main in types
    _rewrite(
        path,
        {
            "[Content_Types].xml": types.replace(
                main, "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
            ).encode()
        },
    )
    return path


def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Harbour survey", level=1)
    d.add_paragraph("The tide gauge at Pier Nine reads high.")
    d.save(path)
    return path


def make_pptx(path: Path) -> Path:
    from pptx import Presentation

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "Turbine inspection"
    slide.placeholders[1].text = "Blade seven shows erosion"
    prs.save(path)
    return path


def libreoffice(src: Path, fmt: str, out: Path) -> Path:
    subprocess.run(["soffice", f"-env:UserInstallation={(out / 'lo-profile').as_uri()}", "--headless",
                    "--convert-to", fmt, "--outdir", str(out), str(src)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return out / f"{src.stem}.{fmt}"


def check_under_any_name(src: Path, folder: Path, mime: str, words: list[str], wrong: str) -> None:
    """src copied without an extension and under a wrong one: each converts to its words, typed as mime;
    the wrong name gets a `mislabeled` warning, the bare name none."""
    bare, mislabeled = folder / f"{src.stem}-noext", folder / f"{src.stem}-wrong{wrong}"
    shutil.copy(src, bare)
    shutil.copy(src, mislabeled)
    for path in (bare, mislabeled):
        doc = unitok.convert(path)
        assert doc.errors == [], (path.name, doc.errors)
        assert doc.row["mime_type"] == mime, path.name
        for word in words:
            assert word in doc.markdown, (path.name, doc.markdown)
        warned = [w for w in doc.row["warnings"] if "mislabeled" in w]
        if path is bare:
            assert warned == []
        else:
            assert warned and f"extension {wrong}" in warned[0], doc.row["warnings"]


@pytest.mark.parametrize(
    ("make", "name", "mime", "words", "wrong"),
    [
        (
            make_xlsx,
            "a.xlsx",
            XLSX,
            ["| Pump | Hours |", "| Kestrel intake | 1234 |", "sheet: Ledger"],
            ".pdf",
        ),
        (make_xlsm, "a.xlsm", XLSM, ["| Kestrel intake | 1234 |"], ".docx"),
        (make_docx, "a.docx", DOCX, ["# Harbour survey", "The tide gauge at Pier Nine reads high."], ".xlsx"),
        (make_pptx, "a.pptx", PPTX, ["## Turbine inspection", "Blade seven shows erosion"], ".pdf"),
    ],
    ids=["xlsx", "xlsm", "docx", "pptx"],
)
def test_ooxml_without_its_extension_converts_by_its_content_types(tmp_path, make, name, mime, words, wrong):
    made = tmp_path / "made"
    made.mkdir()
    check_under_any_name(make(made / name), tmp_path, mime, words, wrong)


@pytest.mark.skipif(not shutil.which("soffice"), reason="LibreOffice writes and converts ODF")
@pytest.mark.parametrize(
    ("make", "name", "fmt", "mime", "words", "wrong"),
    [
        (make_xlsx, "a.xlsx", "ods", ODS, ["| Kestrel intake | 1234 |"], ".xlsx"),
        (
            make_docx,
            "a.docx",
            "odt",
            ODT,
            ["Harbour survey", "The tide gauge at Pier Nine reads high."],
            ".pdf",
        ),
        (make_pptx, "a.pptx", "odp", ODP, ["Turbine inspection", "Blade seven shows erosion"], ".pptx"),
    ],
    ids=["ods", "odt", "odp"],
)
def test_odf_without_its_extension_converts_by_its_mimetype_member(
    tmp_path, make, name, fmt, mime, words, wrong
):
    made = tmp_path / "made"
    made.mkdir()
    src = libreoffice(make(made / name), fmt, made)
    assert zipfile.ZipFile(src).read("mimetype").decode() == mime  # as LibreOffice writes it
    check_under_any_name(src, tmp_path, mime, words, wrong)


def test_zip_types_from_what_the_package_declares(tmp_path):
    # A workbook whose parts are not where Excel puts them: its main content type still says workbook.
    moved = make_xlsx(tmp_path / "moved.xlsx")
    with zipfile.ZipFile(moved) as z:
        members = {n: z.read(n) for n in z.namelist()}
    renamed = {re.sub(r"^xl/workbook\.xml$", "book/main.xml", n): d for n, d in members.items()}
    renamed["[Content_Types].xml"] = members["[Content_Types].xml"].replace(
        b"/xl/workbook.xml", b"/book/main.xml"
    )
    renamed["_rels/.rels"] = members["_rels/.rels"].replace(b"xl/workbook.xml", b"book/main.xml")
    bare = tmp_path / "moved"
    with zipfile.ZipFile(bare, "w") as z:
        for name, data in renamed.items():
            z.writestr(name, data)
    assert "xl/workbook.xml" not in zipfile.ZipFile(bare).namelist()
    assert sniff_file(bare).mime_type == XLSX
    # An ODF package without its `mimetype` member: the manifest's entry for "/" names the type.
    ods = tmp_path / "sheet"
    with zipfile.ZipFile(ods, "w") as z:
        z.writestr("content.xml", "<office:document-content/>")
        z.writestr(
            "META-INF/manifest.xml",
            '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
            '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
            f'<manifest:file-entry manifest:media-type="{ODP}" manifest:full-path="/"/></manifest:manifest>',
        )
    assert sniff_file(ods).mime_type == ODP
    # A plain zip stays a zip, whatever it is called.
    plain = tmp_path / "archive.xlsx"
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("readme.txt", "hello")
    assert sniff_file(plain).mime_type == "application/zip"
