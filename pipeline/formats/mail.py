"""E-mail (EML, and Outlook's MSG) → the message's headers and body as one segment, then each attachment
converted by its own format's splitter (a PDF's pages, a deck's slides, a nested message...) as a document
of its own: its own doc_id, its message's as its parent_doc_id, and `attachment: <name>` in its segments'
heading path. At most documents.max_attachments attachments per message, nested messages included, and
five levels deep: a hostile message costs a bounded amount. An attachment that cannot be converted is an
error row of its own; the message goes on.
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


class _Budget:
    def __init__(self, n: int):
        self.left = n


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
    items: list[tuple[str, bytes]], base: Segment, cfg: JobConfig, split_child: SplitChild, start: int,
    depth: int, budget: _Budget, prefix: list[str],
) -> Iterator[Segment]:  # fmt: skip
    index = start
    for n, (name, data) in enumerate(items):
        label = prefix + [f"attachment: {name}"]
        if budget.left <= 0:
            base.warnings.append(f"over documents.max_attachments={cfg.documents.max_attachments}: "
                                 f"{len(items) - n} attachment(s) left out")  # fmt: skip
            return
        budget.left -= 1
        with tempfile.TemporaryDirectory(prefix="unitok-attachment-") as tmp:
            path = Path(tmp) / (_UNSAFE.sub("_", name)[:100] or "attachment")
            path.write_bytes(data)
            child = base.part(index, "attachment", CONTENT_TEXT)
            child.warnings = []
            # A document of its own: its id from the message's and its place in it (two attachments
            # may share a name), its message as its parent.
            child.doc_id = make_doc_id(base.doc_id, f"attachment {n}")
            child.parent_doc_id = base.doc_id
            try:
                for seg in split_child(path, child, cfg, depth=depth + 1, budget=budget, prefix=label):
                    seg.segment_index = index
                    seg.heading_path = label + [h for h in seg.heading_path if h not in label]
                    index += 1
                    yield seg
            except Exception as e:  # noqa: BLE001 - the attachment's error row; the message goes on
                from unitok.pipeline.formats.split import explained

                err = child.as_error("split", e, index, explained(e))
                err.heading_path = label
                err.error_message = f"attachment {name!r}: {err.error_message}"
                index += 1
                yield err


def split_eml(
    path: Path, base: Segment, cfg: JobConfig, split_child: SplitChild, depth: int = 0,
    budget: _Budget | None = None, prefix: list[str] | None = None,
) -> Iterator[Segment]:  # fmt: skip
    budget = budget or _Budget(cfg.documents.max_attachments)
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    if not any(msg.get(h) for h in _HEADERS):
        raise DocumentOpenError("not an e-mail message: no From, To, Date or Subject header")
    headers = [(h, str(msg.get(h, "") or "")) for h in _HEADERS]
    body_part = msg.get_body(preferencelist=("plain", "html"))
    body = ""
    if body_part is not None:
        try:
            content = body_part.get_content()
        except (LookupError, UnicodeError, ValueError) as e:
            base.warnings.append(f"body unreadable ({e}): left out")
            content = ""
        body = html_markdown(content) if body_part.get_content_subtype() == "html" else str(content)
    seg = _message_segment(base, 0, headers, body, "python-email")
    seg.heading_path = list(prefix or [])
    yield seg
    items = []
    for part in msg.iter_attachments():
        name = part.get_filename() or (
            "message.eml" if part.get_content_type() == "message/rfc822" else "attachment"
        )
        if part.get_content_type() == "message/rfc822":
            inner = part.get_content()
            data = inner.as_bytes() if hasattr(inner, "as_bytes") else bytes(inner)
        else:
            data = part.get_payload(decode=True) or b""
        items.append((name, data))
    yield from _attachments(items, base, cfg, split_child, 1, depth, budget, list(prefix or []))


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
            body = html_markdown(ole.openstream("__substg1.0_10130102").read())
        seg = _message_segment(base, 0, headers, body or "", "olefile-msg")
        seg.heading_path = list(prefix or [])
        yield seg
        items = []
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
                items.append((name, ole.openstream(root + "__substg1.0_37010102").read()))
            else:
                base.warnings.append(f"attachment {name!r}: an embedded Outlook item, not converted")
    yield from _attachments(items, base, cfg, split_child, 1, depth, budget, list(prefix or []))
