"""A damaged PPTX rebuilt from what is still readable, so that a damaged zip entry costs its own part (a
slide, a picture, a page of notes) and not the deck.

Entries are read through the zip's central directory, or, when that is gone (a truncated upload), from
the local headers in the file. An entry that cannot be inflated or fails its CRC is left out, with every
relationship that points at it; a slide left out keeps its number (the slides after it are not
renumbered) and becomes an error row of its own. The parts a deck cannot be read without (content types,
the presentation, their relationships) damaged: the deck is refused, naming them.
"""

from __future__ import annotations

import posixpath
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree as ET  # python-pptx's own parser: keeps every namespace prefix as written

ESSENTIAL = ("[Content_Types].xml", "_rels/.rels", "ppt/presentation.xml", "ppt/_rels/presentation.xml.rels")
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_LOCAL = struct.Struct("<IHHHHHIIIHH")


class UnrepairableDeck(Exception):
    """A part every reader needs is damaged."""


@dataclass
class Repair:
    path: Path  # the rebuilt deck
    damaged: dict[str, str] = field(default_factory=dict)  # entry name -> why it was left out
    slide_numbers: dict[str, int] = field(default_factory=dict)  # slide part name -> its number (1-based)
    lost_slides: dict[int, str] = field(default_factory=dict)  # slide number -> why it is missing


def _entries_from_directory(path: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    good, bad = {}, {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            try:
                good[info.filename] = z.read(info)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError) as e:
                bad[info.filename] = f"{type(e).__name__}: {e}"
    return good, bad


def _entries_from_local_headers(data: bytes, limit: int) -> tuple[dict[str, bytes], dict[str, str]]:
    """Every entry whose local header and data are intact, found by scanning for local headers; at most
    `limit` bytes inflated in all (a zip bomb stays one)."""
    good: dict[str, bytes] = {}
    total = 0
    bad: dict[str, str] = {}
    for match in re.finditer(rb"PK\x03\x04", data):
        at = match.start()
        if at + _LOCAL.size > len(data):
            break
        _, _, flags, method, _, _, crc, csize, _, nlen, xlen = _LOCAL.unpack_from(data, at)
        start = at + _LOCAL.size + nlen + xlen
        name = data[at + _LOCAL.size : at + _LOCAL.size + nlen].decode("utf-8", "replace")
        if not name or name in good:
            continue
        try:
            if method == 0:
                if flags & 0x08:
                    raise ValueError("stored entry with a data descriptor")
                body = data[start : start + csize]
            elif method == 8:
                inflate = zlib.decompressobj(-15)
                compressed = data[start : start + csize] if csize and not flags & 0x08 else data[start:]
                body = inflate.decompress(compressed, limit - total + 1)
                if not inflate.eof:
                    raise ValueError("cut short")
            else:
                raise ValueError(f"compression method {method}")
            if flags & 0x08 and method == 8:  # the CRC follows the data, in its descriptor
                tail = inflate.unused_data
                tail = tail[4:] if tail.startswith(b"PK\x07\x08") else tail
                crc = struct.unpack_from("<I", tail)[0] if len(tail) >= 4 else -1
            if zlib.crc32(body) != crc:
                raise ValueError("CRC mismatch")
            total += len(body)
            if total > limit:
                raise UnrepairableDeck(f"inflates past {limit} bytes (zip bomb?)")
            good[name] = body
        except (zlib.error, ValueError) as e:
            bad[name] = f"{type(e).__name__}: {e}"
    for name in good:
        bad.pop(name, None)
    return good, bad


_PACKAGE_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    b'officeDocument" Target="ppt/presentation.xml"/></Relationships>'
)
_PML = "application/vnd.openxmlformats-officedocument.presentationml."
_OVERRIDES = [  # part name pattern -> content type, for a [Content_Types].xml rebuilt from the entries
    (r"ppt/presentation\.xml", _PML + "presentation.main+xml"),
    (r"ppt/slides/slide\d+\.xml", _PML + "slide+xml"),
    (r"ppt/slideLayouts/slideLayout\d+\.xml", _PML + "slideLayout+xml"),
    (r"ppt/slideMasters/slideMaster\d+\.xml", _PML + "slideMaster+xml"),
    (r"ppt/notesSlides/notesSlide\d+\.xml", _PML + "notesSlide+xml"),
    (r"ppt/notesMasters/notesMaster\d+\.xml", _PML + "notesMaster+xml"),
    (r"ppt/handoutMasters/handoutMaster\d+\.xml", _PML + "handoutMaster+xml"),
    (r"ppt/comments/comment\d+\.xml", _PML + "comments+xml"),
    (r"ppt/commentAuthors\.xml", _PML + "commentAuthors+xml"),
    (r"ppt/presProps\.xml", _PML + "presProps+xml"),
    (r"ppt/viewProps\.xml", _PML + "viewProps+xml"),
    (r"ppt/tableStyles\.xml", _PML + "tableStyles+xml"),
    (r"ppt/theme/theme\d+\.xml", "application/vnd.openxmlformats-officedocument.theme+xml"),
    (r"docProps/core\.xml", "application/vnd.openxmlformats-package.core-properties+xml"),
    (r"docProps/app\.xml", "application/vnd.openxmlformats-officedocument.extended-properties+xml"),
]
_DEFAULTS = {"rels": "application/vnd.openxmlformats-package.relationships+xml", "xml": "application/xml",
             "png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "gif": "image/gif",
             "emf": "image/x-emf", "wmf": "image/x-wmf", "tiff": "image/tiff"}  # fmt: skip


def _content_types(entries: dict[str, bytes]) -> bytes:
    ns = "http://schemas.openxmlformats.org/package/2006/content-types"
    root = ET.Element(f"{{{ns}}}Types", nsmap={None: ns})
    for ext, ctype in _DEFAULTS.items():
        ET.SubElement(root, f"{{{ns}}}Default", Extension=ext, ContentType=ctype)
    for name in sorted(entries):
        ctype = next((t for pattern, t in _OVERRIDES if re.fullmatch(pattern, name)), None)
        if ctype:
            ET.SubElement(root, f"{{{ns}}}Override", PartName="/" + name, ContentType=ctype)
    return ET.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _rels_name(part: str) -> str:
    folder, base = posixpath.split(part)
    return posixpath.join(folder, "_rels", base + ".rels")


def _source_of(rels: str) -> str:
    """The part a .rels file belongs to ('' for the package's own)."""
    folder, base = posixpath.split(rels)
    return posixpath.join(posixpath.dirname(folder), base[: -len(".rels")]) if base != ".rels" else ""


def _target(source: str, target: str) -> str:
    if target.startswith("/"):
        return target[1:]
    return posixpath.normpath(posixpath.join(posixpath.dirname(source), target))


def repair_deck(path: Path, work: Path, limit: int) -> Repair:
    """Rebuild the deck at `path` into `work` from its readable entries. Raises UnrepairableDeck."""
    try:
        entries, damaged = _entries_from_directory(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        entries, damaged = {}, {"(central directory)": "unreadable"}
    if damaged:  # the local headers may still hold what the directory lost or misnames
        found, broken = _entries_from_local_headers(path.read_bytes(), limit)
        entries = {**found, **entries}
        damaged = {n: why for n, why in {**broken, **damaged}.items() if n not in entries}
    for name in [n for n in entries if n.endswith((".xml", ".rels"))]:
        try:  # intact bytes that are not XML (damage the CRC did not catch): left out too
            ET.fromstring(entries[name])
        except ET.XMLSyntaxError as e:
            damaged[name] = f"not XML: {e}"
            del entries[name]
    # The package's two index parts follow from the entries when they are damaged.
    if "_rels/.rels" not in entries and "ppt/presentation.xml" in entries:
        entries["_rels/.rels"] = _PACKAGE_RELS
    if "[Content_Types].xml" not in entries:
        entries["[Content_Types].xml"] = _content_types(entries)
    missing = [name for name in ESSENTIAL if name not in entries]
    if missing:
        raise UnrepairableDeck(f"damaged or missing: {', '.join(missing)}")
    # The slides in their order, by relationship id, before anything is left out.
    pres_rels = ET.fromstring(entries["ppt/_rels/presentation.xml.rels"])
    targets = {r.get("Id"): _target("ppt/presentation.xml", r.get("Target", "")) for r in pres_rels}
    pres = ET.fromstring(entries["ppt/presentation.xml"])
    order = [targets.get(s.get(f"{{{_R}}}id")) for s in pres.iter(f"{{{_P}}}sldId")]
    repair = Repair(path=work / "repaired.pptx", damaged=dict(damaged))
    repair.slide_numbers = {name: n for n, name in enumerate(order, 1) if name}
    # Slides whose XML is damaged go, with their place; other parts go with the relationships to them.
    gone = {name for name in damaged if not name.endswith(".rels") and name not in entries}
    for name in list(entries):
        if name.endswith(".rels") and _source_of(name) in gone:
            del entries[name]
    for name in [n for n in damaged if n.endswith(".rels")]:
        source = _source_of(name)
        if source in repair.slide_numbers:  # a slide without its relationships cannot be read
            gone.add(source)
            entries.pop(source, None)
    for slide, n in repair.slide_numbers.items():
        if slide in gone or slide not in entries:
            repair.lost_slides[n] = damaged.get(slide) or damaged.get(_rels_name(slide)) or "entry missing"
            gone.add(slide)
    for sld_list in pres.iter(f"{{{_P}}}sldIdLst"):
        for sld in list(sld_list):
            if targets.get(sld.get(f"{{{_R}}}id")) in gone:
                sld_list.remove(sld)
    if any(targets.get(r) in gone for r in targets):
        entries["ppt/presentation.xml"] = ET.tostring(
            pres, xml_declaration=True, encoding="UTF-8", standalone=True
        )
    for name in [n for n in entries if n.endswith(".rels")]:
        rels = ET.fromstring(entries[name])
        source = _source_of(name)
        dropped = False
        for rel in list(rels):
            if rel.get("TargetMode") != "External" and _target(source, rel.get("Target", "")) in gone:
                rels.remove(rel)
                dropped = True
        if dropped:
            entries[name] = ET.tostring(rels, xml_declaration=True, encoding="UTF-8", standalone=True)
    types = ET.fromstring(entries["[Content_Types].xml"])
    for override in list(types):
        if override.get("PartName", "").lstrip("/") in gone:
            types.remove(override)
    entries["[Content_Types].xml"] = ET.tostring(
        types, xml_declaration=True, encoding="UTF-8", standalone=True
    )
    for name in gone:
        entries.pop(name, None)
    with zipfile.ZipFile(repair.path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", entries.pop("[Content_Types].xml"))
        for name, body in entries.items():
            z.writestr(name, body)
    return repair
