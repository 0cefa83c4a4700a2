"""S3 and S3-compatible object stores (SeaweedFS, MinIO, Ceph, R2, ...) as a source.

Credentials come only from the standard AWS chain (environment, shared profile, instance or workload
role), never from the job config. Listing is paginated and records each object's ETag; reads stream the
object to a temporary file (ranged, multipart) so a multi-GB video never sits in one worker's memory.
Throttling (SlowDown, 503) and dropped connections are retried with backoff, a bounded number of times.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from unitok.connectors.objects import ObjectInfo, key_selected
from unitok.pipeline.core.redact import redact_uri


class SourceError(RuntimeError):
    """The store cannot be listed or read at all: one clear line, no traceback wall."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"{uri}: no bucket name")
    return bucket, prefix


def _explain(exc: BaseException, uri: str, endpoint: str | None) -> SourceError:
    import botocore.exceptions as bex

    where = redact_uri(uri) + (f" at {redact_uri(endpoint)}" if endpoint else "")
    if isinstance(exc, bex.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket",):
            return SourceError(f"{where}: bucket does not exist")
        if code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403", "InvalidToken"):
            return SourceError(
                f"{where}: access denied ({code}); check the AWS credentials in the environment"
            )
        return SourceError(f"{where}: {code or 'error'}: {exc.response.get('Error', {}).get('Message', exc)}")
    if isinstance(exc, bex.NoCredentialsError):
        return SourceError(
            f"{where}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
        )
    if isinstance(exc, bex.EndpointConnectionError | bex.ConnectTimeoutError | bex.ConnectionClosedError):
        return SourceError(f"{where}: cannot reach the endpoint ({type(exc).__name__})")
    return SourceError(f"{where}: {type(exc).__name__}: {exc}")


def make_client(
    endpoint_url: str | None = None,
    region: str | None = None,
    max_attempts: int = 8,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 60.0,
):
    """A boto3 S3 client; "adaptive" retries back off on throttling (SlowDown, 503) and dropped links."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": max_attempts, "mode": "adaptive"},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
    )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Store:
    def __init__(self, uri: str, endpoint_url: str | None = None, **client_options: Any):
        self.uri = uri
        self.bucket, self.prefix = split_s3_uri(uri)
        self.endpoint_url = endpoint_url
        self.client = make_client(endpoint_url, **client_options)
        self.max_attempts = int(client_options.get("max_attempts", 8))

    def _base(self) -> str:
        if not self.prefix or self.prefix.endswith("/"):
            return self.prefix
        return self.prefix + "/"

    def versioned(self) -> bool:
        """Whether the bucket keeps versions (then each object's VersionId is recorded and read)."""
        try:
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except Exception:  # noqa: BLE001 - no permission to ask: list without version ids
            return False
        return status in ("Enabled", "Suspended")

    def _listed(self) -> Iterator[tuple[dict[str, Any], str | None]]:
        """(object, version id) of the latest version of each key under the prefix."""
        if self.versioned():
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                # A key whose latest entry is a delete marker is absent from "Versions"' latest ones.
                for obj in page.get("Versions", []):
                    if obj.get("IsLatest"):
                        yield obj, obj.get("VersionId")
            return
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            for obj in page.get("Contents", []):
                yield obj, None

    def list_objects(self, include: list[str], exclude: list[str]) -> Iterator[ObjectInfo]:
        base = self._base()
        try:
            for obj, version_id in self._listed():
                key = obj["Key"]
                if key.endswith("/"):
                    continue  # folder markers
                rel = key[len(base) :] if key.startswith(base) else key.rsplit("/", 1)[-1]
                if not key_selected(rel, include, exclude):
                    continue
                version = "etag:" + obj["ETag"].strip('"')
                if version_id and version_id != "null":
                    version = f"version:{version_id} {version}"
                yield ObjectInfo(
                    uri=f"s3://{self.bucket}/{key}",
                    key=rel,
                    size=int(obj["Size"]),
                    modified_at=obj["LastModified"].timestamp(),
                    version=version,
                )
        except Exception as e:  # noqa: BLE001 - turned into one readable line
            raise _explain(e, self.uri, self.endpoint_url) from None

    @contextmanager
    def fetch(self, obj: ObjectInfo) -> Iterator[tuple[Path, ObjectInfo]]:
        """The object's bytes in a temporary file, and obj with the version of those bytes: the version
        the GET returned, which differs from the listed one when the key was overwritten after listing
        (unversioned buckets; a versioned bucket's listed version is read exactly). Streamed to disk in
        1 MiB blocks, never whole in memory; a read that breaks resumes where it stopped, from the same
        version (If-Match on its ETag)."""
        key = obj.uri[len(f"s3://{self.bucket}/") :]
        fd, name = tempfile.mkstemp(prefix="unitok-", suffix=Path(key).suffix)
        os.close(fd)
        try:
            try:
                version = self._download(key, obj, name)
            except Exception as e:  # noqa: BLE001
                raise _explain(e, obj.uri, self.endpoint_url) from None
            size = os.path.getsize(name)
            yield Path(name), replace(obj, version=version, size=size)
        finally:
            os.unlink(name)

    def _download(self, key: str, obj: ObjectInfo, name: str) -> str:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if (obj.version or "").startswith("version:"):
            args["VersionId"] = obj.version.split()[0][len("version:") :]
        attempts = self.max_attempts
        etag = version_id = None
        with open(name, "wb") as f:
            for attempt in range(attempts):
                ranged = {"Range": f"bytes={f.tell()}-", "IfMatch": etag} if etag else {}
                try:
                    response = self.client.get_object(**args, **ranged)
                    etag, version_id = response["ETag"], response.get("VersionId")
                    for block in response["Body"].iter_chunks(1 << 20):
                        f.write(block)
                    break
                except Exception as e:  # noqa: BLE001 - a dropped body: resume, a bounded number of times
                    import botocore.exceptions as bex

                    broken = isinstance(e, bex.ReadTimeoutError | bex.ResponseStreamingError)
                    if etag is None or not broken or attempt == attempts - 1:
                        raise
        version = "etag:" + str(etag).strip('"')
        if version_id and version_id != "null":
            version = f"version:{version_id} {version}"
        return version
