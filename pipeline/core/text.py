"""Text that is always valid Unicode. Engines and parsers hand over Python strings that may hold
surrogates: pdfium counts a character outside the Basic Multilingual Plane as two UTF-16 code units, and
file names or headers decoded with surrogateescape carry lone ones. UTF-8 (Parquet, JSON, Arrow) cannot
encode them, and one such string would fail its whole object's write."""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


def _encodes(text: str) -> bool:
    """Whether UTF-8 can encode the text (it holds no surrogate): the common case, checked cheaply."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_unicode(text: str) -> tuple[str, int]:
    """(text with each surrogate pair joined into its character and each lone surrogate replaced by
    U+FFFD, how many were replaced). The common case, text that encodes, is returned as it is."""
    if _encodes(text):
        return text, 0
    # UTF-16 with surrogatepass writes each code unit as it stands; decoding it again pairs the units that
    # form a character and marks the lone ones.
    fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return fixed, fixed.count(REPLACEMENT) - text.count(REPLACEMENT)


def join_surrogates(text: str) -> str:
    """Surrogate pairs joined into their characters; lone surrogates left for valid_unicode to replace and
    count where the text becomes a row. For text read one UTF-16 code unit at a time (pdfium)."""
    if _encodes(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def replaced_warning(n: int) -> str:
    chars = "1 character that is" if n == 1 else f"{n} characters that are"
    return f"{chars} not valid Unicode (lone surrogates) replaced with U+FFFD"


def valid_value(value: Any) -> tuple[Any, int]:
    """valid_unicode over a row's value: strings, and the strings inside lists and dicts."""
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, list):
        out, total = [], 0
        for v in value:
            fixed, n = valid_value(v)
            out.append(fixed)
            total += n
        return out, total
    if isinstance(value, dict):
        items, total = {}, 0
        for k, v in value.items():
            fixed, n = valid_value(v)
            items[k] = fixed
            total += n
        return items, total
    return value, 0
