"""Secrets out of every URI that unitok writes (rows, manifests, summaries, logs, error lines).

A URI keeps its provenance (scheme, host, bucket, path) and loses what authenticates: the password in
its userinfo and the signing parameters of a presigned URL (AWS SigV4 and SigV2, GCS, Azure SAS).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "REDACTED"
_SECRET_PARAMS = {
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature", "awsaccesskeyid",
    "x-goog-signature", "x-goog-credential", "sig", "token", "access_token", "api_key", "apikey", "key",
    "password", "secret",
}  # fmt: skip
_URI = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_uri(uri: str) -> str:
    """uri with its userinfo password and secret query parameters replaced by REDACTED."""
    if "://" not in uri:
        return uri  # a plain path carries no credentials
    scheme, rest = uri.split("://", 1)
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    if "@" in head:
        # A secret key may hold "/" (AWS's often do), which ends a standard authority early.
        userinfo = head[: head.rindex("@")]
        user, colon, _ = userinfo.partition(":")
        if colon and "/" not in user:
            uri = f"{scheme}://{user}:{MASK}{rest[len(userinfo) :]}"
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc
    if "@" in netloc and not netloc.split("@", 1)[0].endswith(f":{MASK}"):
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="/:")
    if netloc == parts.netloc and query == parts.query:
        return uri  # unchanged, byte for byte
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URI inside a message (an error line, a log record) redacted."""
    return _URI.sub(lambda m: redact_uri(m.group(0)), text)
