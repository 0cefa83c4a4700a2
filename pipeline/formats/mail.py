"""E-mail (EML, and Outlook's MSG) → the message's headers and body as one segment, then each attachment
converted by its own format's splitter (a PDF's pages, a deck's slides, a nested message...) as a document
of its own: its own doc_id, its message's as its parent_doc_id, and `attachment: <name>` in its segments'
heading path. At most documents.max_attachments attachments per listed message, nested messages included
(a message's own attachments are counted when it is opened, before those of the messages inside it), and
five levels deep: a hostile message costs a bounded amount, and the message's warnings say what was left
out. An attachment that cannot be converted is an error row of its own; the message goes on. Parts nested
past what Python's email package can parse (hundreds of levels) are the message's error, said as such.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import struct
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import CONTENT_TEXT, Segment, make_doc_id
from unitok.pipeline.formats.documents import DocumentOpenError, html_markdown

MAX_DEPTH = 5
_HEADERS = ("From", "To", "Cc", "Date", "Subject")
_UNSAFE = re.compile(r"[^\w.\- ]+")

# (path, base, cfg) → an attachment's segments: split.py hands in its dispatch (this module is below it).
SplitChild = Callable[[Path, Segment, JobConfig], Iterator[Segment]]
_Item = tuple[str, bytes | Exception]  # an attachment's name, and its bytes or why they cannot be read


class _Budget:
    """The attachments a listed message may still convert, shared by the messages nested in it."""

    def __init__(self, n: int):
        self.limit = self.left = n

    def claim(self, names: list[str], warnings: list[str]) -> int:
        """How many of a message's attachments (the first ones) it converts; those past the budget are
        said in its warnings."""
        kept = min(len(names), max(self.left, 0))
        self.left -= kept
        dropped = names[kept:]
        if dropped:
            shown = ", ".join(repr(n) for n in dropped[:3]) + (", …" if len(dropped) > 3 else "")
            warnings.append(
                f"{len(names)} attachments, {kept} converted, and {len(dropped)} more attachments not "
                f"converted (over documents.max_attachments={self.limit}, nested messages included): {shown}"
            )
        return kept


def _too_deep(e: RecursionError) -> DocumentOpenError:
    return DocumentOpenError(
        f"MIME parts nested too deeply to read (past Python's recursion limit; messages nested more than "
        f"{MAX_DEPTH} deep are not opened anyway)"
    )


def _message_segment(
    base: Segment, index: int, headers: list[tuple[str, str]], body: str, parser: str
) -> Segment:
    lines = [f"**{k}:** {v}" for k, v in headers if v]
    markdown = "  \n".join(lines) + ("\n\n" + body.strip() if body.strip() else "")
    seg = base.part(index, "message", CONTENT_TEXT)
    seg.structure_json = json.dumps({"markdown": markdown, "parser": parser})
    seg.warnings = list(base.warnings)
    return seg


def _attachments(
    items: list[_Item], base: Segment, cfg: JobConfig, split_child: SplitChild, start: int,
    depth: int, budget: _Budget, prefix: list[str],
) -> Iterator[Segment]:  # fmt: skip
    index = start
    for n, (name, data) in enumerate(items):
        label = prefix + [f"attachment: {name}"]
        with tempfile.TemporaryDirectory(prefix="unitok-attachment-") as tmp:
            path = Path(tmp) / (_UNSAFE.sub("_", name)[:100] or "attachment")
            path.write_bytes(data if isinstance(data, bytes) else b"")
            child = base.part(index, "attachment", CONTENT_TEXT)
            child.warnings = []
            # A document of its own: its id from the message's and its place in it (two attachments
            # may share a name), its message as its parent.
            child.doc_id = make_doc_id(base.doc_id, f"attachment {n}")
            child.parent_doc_id = base.doc_id
            try:
                if isinstance(data, Exception):
                    raise data
                for seg in split_child(path, child, cfg, depth=depth + 1, budget=budget, prefix=label):
                    seg.segment_index = index
                    seg.heading_path = label + [h for h in seg.heading_path if h not in label]
                    index += 1
                    yield seg
            except Exception as e:  # noqa: BLE001 - the attachment's error row; the message goes on
                from unitok.pipeline.formats.split import explained

                if isinstance(e, RecursionError):
                    e = _too_deep(e)
                err = child.as_error("split", e, index, explained(e))
                err.heading_path = label
                err.error_message = f"attachment {name!r}: {err.error_message}"
                index += 1
                yield err


def _header(msg: email.message.EmailMessage, raw: dict[str, str], name: str) -> str:
    """A header's text. One sent as raw 8-bit bytes (no RFC 2047 encoding) is held by the parser as
    surrogate escapes, which its own decoding replaces byte by byte: read here as UTF-8, else as
    Windows-1252, as mail clients read them."""
    value = raw.get(name.lower())
    if value is None or not any("\udc80" <= c <= "\udcff" for c in value):
        return str(msg.get(name, "") or "")
    data = re.sub(r"\r?\n[ \t]+", " ", value).strip().encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _body_text(part: email.message.EmailMessage) -> str:
    """The text of a body part. One that declares no charset (or US-ASCII) but holds 8-bit bytes is read as
    UTF-8, else Windows-1252, not with each such byte replaced (what the parser does)."""
    declared = (part.get_content_charset() or "us-ascii").lower()
    if declared in ("us-ascii", "ascii"):
        raw = part.get_payload(decode=True) or b""
        if not raw.isascii():
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw.decode("cp1252", "replace")
    return str(part.get_content())


def split_eml(
    path: Path, base: Segment, cfg: JobConfig, split_child: SplitChild, depth: int = 0,
    budget: _Budget | None = None, prefix: list[str] | None = None,
) -> Iterator[Segment]:  # fmt: skip
    budget = budget or _Budget(cfg.documents.max_attachments)
    try:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if not any(msg.get(h) for h in _HEADERS):
            raise DocumentOpenError("not an e-mail message: no From, To, Date or Subject header")
        raw = {k.lower(): v for k, v in reversed(list(msg.raw_items()))}  # the first of each name
        headers = [(h, _header(msg, raw, h)) for h in _HEADERS]
        body_part = msg.get_body(preferencelist=("plain", "html"))
    except RecursionError as e:
        raise _too_deep(e) from None
    body = ""
    if body_part is not None:
        try:
            content = _body_text(body_part)
        except (LookupError, UnicodeError, ValueError) as e:
            base.warnings.append(f"body unreadable ({e}): left out")
            content = ""
        if body_part.get_content_subtype() == "html":
            body = html_markdown(content, base.warnings)
        else:
            body = str(content)
    # The attachments this message converts are known before its segment is made, so its warnings say
    # which were left out.
    attached = list(msg.iter_attachments())
    kept = budget.claim([_name(part) for part in attached], base.warnings)
    items: list[_Item] = [(_name(part), _payload(part, depth)) for part in attached[:kept]]
    seg = _message_segment(base, 0, headers, body, "python-email")
    seg.heading_path = list(prefix or [])
    yield seg
    yield from _attachments(items, base, cfg, split_child, 1, depth, budget, list(prefix or []))


def _name(part: Any) -> str:
    nested = part.get_content_type() == "message/rfc822"
    return part.get_filename() or ("message.eml" if nested else "attachment")


def _payload(part: Any, depth: int) -> bytes | DocumentOpenError:
    """An attachment's bytes; a nested message's made again from its parsed parts, without the levels
    below the depth at which messages are no longer opened (serializing hundreds of levels would pass
    Python's recursion limit, for parts that are never read)."""
    if part.get_content_type() != "message/rfc822":
        return part.get_payload(decode=True) or b""
    inner = part.get_content()
    if not hasattr(inner, "as_bytes"):
        return bytes(inner)
    _prune(inner, MAX_DEPTH - depth - 1)
    try:
        return inner.as_bytes()
    except RecursionError as e:
        return _too_deep(e)  # the attachment's error row, raised where it is converted


def _prune(msg: Any, levels: int) -> None:
    """Cut the messages nested in msg more than `levels` deep to their headers (walked without recursion).
    They stay attachments, so the depth guard still names them."""
    stack = [(msg, 0)]
    while stack:
        part, level = stack.pop()
        payload = part.get_payload()
        if not isinstance(payload, list):
            continue
        for child in payload:
            if part.get_content_type() != "message/rfc822":
                stack.append((child, level))
            elif level >= levels:
                stub = email.message.EmailMessage(policy=email.policy.default)
                for header in _HEADERS:
                    if child.get(header) is not None:
                        stub[header] = str(child.get(header))
                part.set_payload([stub])
            else:
                stack.append((child, level + 1))


# -- MSG (an OLE container of MAPI properties) ----------------------------------------------------------


def _prop(ole: Any, storage: str, tag: str) -> str | None:
    """A string property: its Unicode stream (001F) or its 8-bit one (001E)."""
    for kind, codec in (("001F", "utf-16-le"), ("001E", "cp1252")):
        name = f"{storage}__substg1.0_{tag}{kind}"
        if ole.exists(name):
            return ole.openstream(name).read().decode(codec, errors="replace").rstrip("\x00")
    return None


def _sent_at(ole: Any) -> str | None:
    """PR_CLIENT_SUBMIT_TIME (0x0039, a FILETIME) from the top-level property stream."""
    if not ole.exists("__properties_version1.0"):
        return None
    data = ole.openstream("__properties_version1.0").read()
    for off in range(32, len(data) - 15, 16):
        tag, _, value = struct.unpack_from("<IIQ", data, off)
        if tag == 0x00390040 and value:
            return (datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=value // 10)).isoformat()
    return None


def split_msg(
    path: Path, base: Segment, cfg: JobConfig, split_child: SplitChild, depth: int = 0,
    budget: _Budget | None = None, prefix: list[str] | None = None,
) -> Iterator[Segment]:  # fmt: skip
    import olefile

    budget = budget or _Budget(cfg.documents.max_attachments)
    try:
        ole = olefile.OleFileIO(str(path))
    except (OSError, ValueError) as e:
        raise DocumentOpenError(f"not a readable Outlook message ({e})") from None
    with ole:
        sender = _prop(ole, "", "0C1A") or ""
        address = _prop(ole, "", "0C1F") or _prop(ole, "", "5D01")
        headers = [("From", f"{sender} <{address}>" if sender and address else sender or address or ""),
                   ("To", _prop(ole, "", "0E04") or ""), ("Cc", _prop(ole, "", "0E03") or ""),
                   ("Date", _sent_at(ole) or ""), ("Subject", _prop(ole, "", "0037") or "")]  # fmt: skip
        body = _prop(ole, "", "1000")
        if body is None and ole.exists("__substg1.0_10130102"):
            body = html_markdown(ole.openstream("__substg1.0_10130102").read(), base.warnings)
        stored: list[tuple[str, str]] = []
        storages = sorted(
            {
                e[0]
                for e in ole.listdir(streams=True, storages=True)
                if e[0].startswith("__attach_version1.0_")
            }
        )
        for storage in storages:
            root = storage + "/"
            name = _prop(ole, root, "3707") or _prop(ole, root, "3704") or storage.rsplit("#", 1)[-1]
            if ole.exists(root + "__substg1.0_37010102"):
                stored.append((name, root + "__substg1.0_37010102"))
            else:
                base.warnings.append(f"attachment {name!r}: an embedded Outlook item, not converted")
        # As for EML: what is left out is known, and said, before the message's segment is made.
        kept = budget.claim([name for name, _ in stored], base.warnings)
        items: list[_Item] = [(name, ole.openstream(stream).read()) for name, stream in stored[:kept]]
    seg = _message_segment(base, 0, headers, body or "", "olefile-msg")
    seg.heading_path = list(prefix or [])
    yield seg
    yield from _attachments(items, base, cfg, split_child, 1, depth, budget, list(prefix or []))
