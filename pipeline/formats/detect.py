"""File type from content (magic bytes), not from the name; the extension only breaks ties and warns."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 4096


@dataclass(frozen=True)
class FileType:
    mime_type: str
    modality: str  # pdf, image, presentation, audio, video, unknown
    supported: bool  # converted by this version of the pipeline


PDF = FileType("application/pdf", "pdf", True)
_IMAGES = {
    "png": FileType("image/png", "image", True),
    "jpeg": FileType("image/jpeg", "image", True),
    "tiff": FileType("image/tiff", "image", True),
    "bmp": FileType("image/bmp", "image", True),
    "webp": FileType("image/webp", "image", True),
    "gif": FileType("image/gif", "image", True),
    "heic": FileType("image/heic", "image", True),
}
PPTX = FileType(
    "application/vnd.openxmlformats-officedocument.presentationml.presentation", "presentation", True
)
PPT = FileType("application/vnd.ms-powerpoint", "presentation", True)
OLE = FileType("application/x-ole-storage", "unknown", False)
# An OOXML document (deck, document, workbook) saved with a password: an OLE container around the
# encrypted package. Named as such so the error can say why it is not converted.
ENCRYPTED_OFFICE = FileType("application/x-encrypted-office", "unknown", False)
DOC = FileType("application/msword", "document", True)
XLS = FileType("application/vnd.ms-excel", "spreadsheet", True)
DOCX = FileType("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "document", True)
XLSX = FileType("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "spreadsheet", True)
XLSM = FileType("application/vnd.ms-excel.sheet.macroEnabled.12", "spreadsheet", True)
ODT = FileType("application/vnd.oasis.opendocument.text", "document", True)
ODS = FileType("application/vnd.oasis.opendocument.spreadsheet", "spreadsheet", True)
ODP = FileType("application/vnd.oasis.opendocument.presentation", "presentation", True)
EPUB = FileType("application/epub+zip", "ebook", True)
MSG = FileType("application/vnd.ms-outlook", "email", True)
EML = FileType("message/rfc822", "email", True)
HTML = FileType("text/html", "web", True)
XHTML = FileType("application/xhtml+xml", "web", True)
MARKDOWN = FileType("text/markdown", "text", True)
PLAIN = FileType("text/plain", "text", True)
CSV = FileType("text/csv", "spreadsheet", True)
TSV = FileType("text/tab-separated-values", "spreadsheet", True)
ZIP = FileType("application/zip", "unknown", False)
EMPTY = FileType("application/x-empty", "unknown", False)
TEXT = FileType("text/plain", "unknown", False)  # text of a kind this version does not convert (code, data)
_TEXT_BY_EXTENSION = {".md": MARKDOWN, ".markdown": MARKDOWN, ".txt": PLAIN, ".text": PLAIN, ".csv": CSV,
                      ".tsv": TSV, ".tab": TSV}  # fmt: skip
TEXT_NAMES = ", ".join(sorted(_TEXT_BY_EXTENSION))  # text that only its name tells apart
# ODF names its type in the `mimetype` member (and in its manifest); a template converts as its document.
_ODF = {t.mime_type + tail: t for t in (ODT, ODS, ODP) for tail in ("", "-template")}
# An OOXML package's type is its main part's content type in [Content_Types].xml, wherever the part is and
# whatever the file is called; macro-enabled, template and show variants convert as their document.
_OOXML_PREFIX = "application/vnd.openxmlformats-officedocument."
_OOXML_MAIN = {
    **{f"{_OOXML_PREFIX}wordprocessingml.{k}.main+xml": DOCX for k in ("document", "template")},
    "application/vnd.ms-word.document.macroEnabled.main+xml": DOCX,
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml": DOCX,
    **{f"{_OOXML_PREFIX}spreadsheetml.{k}.main+xml": XLSX for k in ("sheet", "template")},
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml": XLSM,
    "application/vnd.ms-excel.template.macroEnabled.main+xml": XLSM,
    **{
        f"{_OOXML_PREFIX}presentationml.{k}.main+xml": PPTX for k in ("presentation", "slideshow", "template")
    },
    "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml": PPTX,
    "application/vnd.ms-powerpoint.slideshow.macroEnabled.main+xml": PPTX,
    "application/vnd.ms-powerpoint.template.macroEnabled.main+xml": PPTX,
}
_CONTENT_TYPE = re.compile(rb"""ContentType\s*=\s*["']([^"']+)["']""")
_MANIFEST_ENTRY = re.compile(rb"<manifest:file-entry\b[^>]*>")
_MANIFEST_ATTR = re.compile(rb"""manifest:(full-path|media-type)\s*=\s*["']([^"']*)["']""")
_MAIL_HEADER = re.compile(
    rb"^(return-path|received|from|to|subject|date|mime-version|message-id|delivered-to|x-[\w-]+):", re.I
)
UNKNOWN = FileType("application/octet-stream", "unknown", False)
_AV = {
    "wav": FileType("audio/wav", "audio", True),
    "flac": FileType("audio/flac", "audio", True),
    "mp3": FileType("audio/mpeg", "audio", True),
    "ogg": FileType("audio/ogg", "audio", True),
    "m4a": FileType("audio/mp4", "audio", True),
    "mp4": FileType("video/mp4", "video", True),
    "mov": FileType("video/quicktime", "video", True),
    "matroska": FileType("video/x-matroska", "video", True),
    "webm": FileType("video/webm", "video", True),
    "avi": FileType("video/x-msvideo", "video", True),
}

# Extensions we expect for each modality, to warn about mislabeled files.
EXPECTED_EXTENSIONS = {
    "application/pdf": {".pdf"},
    "image/png": {".png"},
    "image/jpeg": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "image/tiff": {".tif", ".tiff"},
    "image/bmp": {".bmp", ".dib"},
    "image/webp": {".webp"},
    "image/gif": {".gif"},
    "image/heic": {".heic", ".heif", ".hif"},
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": {".pptx", ".pptm"},
    "application/vnd.ms-powerpoint": {".ppt", ".pps"},
    DOCX.mime_type: {".docx", ".docm", ".dotx"},
    XLSX.mime_type: {".xlsx", ".xltx"},
    XLSM.mime_type: {".xlsm", ".xltm"},
    ODT.mime_type: {".odt", ".ott"},
    ODS.mime_type: {".ods", ".ots"},
    ODP.mime_type: {".odp", ".otp"},
    EPUB.mime_type: {".epub"},
}


def _member(z: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The first `limit` bytes of a member ("" when it is absent or unreadable)."""
    try:
        with z.open(name) as f:
            return f.read(limit)
    except (KeyError, zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError):
        return b""


def _manifest_type(xml: bytes) -> bytes:
    """The media type an ODF manifest gives the package itself (its entry for "/"), for a package whose
    `mimetype` member is missing."""
    for entry in _MANIFEST_ENTRY.findall(xml):
        attrs = dict(_MANIFEST_ATTR.findall(entry))
        if attrs.get(b"full-path") == b"/":
            return attrs.get(b"media-type", b"")
    return b""


def _ooxml_kind(path: Path) -> FileType:
    """A zip container by what it says it holds: an OOXML package's main content type, an ODF or EPUB
    `mimetype` member (or ODF manifest); the member names when a package lacks them (a damaged deck)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            types = _member(z, "[Content_Types].xml", 1 << 20) if "[Content_Types].xml" in names else b""
            declared = _member(z, "mimetype", 100) if "mimetype" in names else b""
            if not declared and "META-INF/manifest.xml" in names:
                declared = _manifest_type(_member(z, "META-INF/manifest.xml", 1 << 20))
    except (zipfile.BadZipFile, OSError, ValueError):
        # A zip header with a broken directory: let the extension say what it claims to be.
        return PPTX if path.suffix.lower() == ".pptx" else ZIP
    for content_type in _CONTENT_TYPE.findall(types):
        main = _OOXML_MAIN.get(content_type.decode("ascii", errors="replace"))
        if main is not None:
            return main
    mime = declared.decode("ascii", errors="replace").strip()
    if mime == EPUB.mime_type:
        return EPUB
    if mime in _ODF:
        return _ODF[mime]
    # No main content type (a package without [Content_Types].xml): the conventional part names.
    if "ppt/presentation.xml" in names:
        return PPTX
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        return XLSM if b"macroEnabled" in types else XLSX
    return ZIP


def _ole_kind(path: Path) -> FileType:
    """An OLE container by the streams it holds, whatever its name says."""
    import olefile

    try:
        with olefile.OleFileIO(str(path)) as ole:
            streams = {"/".join(s) for s in ole.listdir(streams=True, storages=False)}
    except (OSError, ValueError, IndexError, TypeError):  # a broken directory: the name decides
        return PPT if path.suffix.lower() in (".ppt", ".pps") else OLE
    if "EncryptionInfo" in streams and "EncryptedPackage" in streams:
        return ENCRYPTED_OFFICE
    if "PowerPoint Document" in streams:
        return PPT
    if "WordDocument" in streams:
        return DOC
    if "Workbook" in streams or "Book" in streams:
        return XLS
    if any(s.startswith("__substg1.0_") for s in streams):
        return MSG
    return OLE


def sniff(head: bytes, path: Path | None = None, name: str | None = None) -> FileType:
    """Decide the type from the first bytes (and, for zip containers, the member names). Text is typed
    by its content where it says (HTML, e-mail headers), else by the name's extension (`name`, else the
    path's): Markdown, plain text, CSV and TSV look alike."""
    if not head:
        return EMPTY
    # PDF readers accept the header anywhere in the first 1 KiB.
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _IMAGES["png"]
    if head.startswith(b"\xff\xd8\xff"):
        return _IMAGES["jpeg"]
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _IMAGES["tiff"]
    if head.startswith(b"BM") and len(head) >= 14:
        return _IMAGES["bmp"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _IMAGES["webp"]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _IMAGES["gif"]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis", b"avic"):
            return _IMAGES["heic"]
        if brand in (b"M4A ", b"M4B "):
            return _AV["m4a"]
        if brand == b"qt  ":
            return _AV["mov"]
        return _AV["mp4"]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _AV["wav"]
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return _AV["avi"]
    if head.startswith(b"fLaC"):
        return _AV["flac"]
    if head.startswith(b"OggS"):
        return _AV["ogg"]
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return _AV["mp3"]
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: the DocType element says WebM or Matroska
        return _AV["webm"] if b"\x42\x82\x84webm" in head[:64] else _AV["matroska"]
    if head.startswith(b"PK\x03\x04"):
        return _ooxml_kind(path) if path is not None else ZIP
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _ole_kind(path) if path is not None else OLE
    suffix = Path(name or (path.name if path is not None else "")).suffix.lower()
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # Not UTF-8 (a character cut at the end of the head aside): text in another encoding has no NUL.
        if e.start < len(head) - 4 and b"\x00" in head:
            return UNKNOWN
    return _text_kind(head, suffix)


def _text_kind(head: bytes, suffix: str) -> FileType:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1024].lower()
    if start.startswith((b"<!doctype html", b"<html")) or (start.startswith(b"<?xml") and b"<html" in start):
        return XHTML if b"xhtml" in start[:300] and start.startswith(b"<?xml") else HTML
    if suffix in (".html", ".htm", ".xhtml") and start.startswith(b"<"):
        return HTML
    lines = start.split(b"\n", 3)
    if suffix in (".eml", "") and sum(bool(_MAIL_HEADER.match(ln)) for ln in lines[:3]) >= 2:
        return EML
    if suffix == ".eml" and _MAIL_HEADER.match(lines[0]):
        return EML
    return _TEXT_BY_EXTENSION.get(suffix, TEXT)


def sniff_file(path: Path, name: str | None = None) -> FileType:
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    return sniff(head, path, name)


def extension_warning(ft: FileType, name: str) -> str | None:
    """A warning when the name's extension disagrees with the content."""
    expected = EXPECTED_EXTENSIONS.get(ft.mime_type)
    suffix = Path(name).suffix.lower()
    if expected and suffix and suffix not in expected:
        return f"mislabeled: extension {suffix} but content is {ft.mime_type}; converted as {ft.mime_type}"
    return None
