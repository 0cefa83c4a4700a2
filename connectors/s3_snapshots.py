"""S3 snapshots for connectors/output.py: object stores have no atomic rename, so a run is published as
an immutable snapshot plus one manifest PUT, the commit.

  s3://bucket/prefix/snapshots/<run_id>/{segments,documents,errors,objects,deletions}/*.parquet
  s3://bucket/prefix/_runs/<run_id>.json     every committed run's manifest
  s3://bucket/prefix/_manifest.json          the committed run (written last; a single PUT is atomic)

Readers follow _manifest.json's file lists (or the snapshots/<run_id>/ folder it names). A run killed
before its manifest PUT leaves an orphan snapshot folder that no manifest names; the next commit prunes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unitok.connectors.output import MANIFEST
from unitok.connectors.s3 import _explain, make_client, split_s3_uri


class S3Snapshots:
    def __init__(self, uri: str, endpoint_url: str | None = None, **client_options: Any):
        self.uri = uri
        self.endpoint_url = endpoint_url
        self.bucket, prefix = split_s3_uri(uri)
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = make_client(endpoint_url, **client_options)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - one readable line
            raise _explain(e, self.uri, self.endpoint_url) from None

    def read_manifest(self) -> dict[str, Any] | None:
        import botocore.exceptions as bex

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + MANIFEST)["Body"].read()
        except bex.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise _explain(e, self.uri, self.endpoint_url) from None
        except Exception as e:  # noqa: BLE001
            raise _explain(e, self.uri, self.endpoint_url) from None
        return json.loads(body)

    def download_snapshot(self, manifest: dict[str, Any], local_dir: Path) -> None:
        """The committed snapshot's files into local_dir/<dataset>/, for planning and carry-forward."""
        for name, keys in manifest.get("files", {}).items():
            (local_dir / name).mkdir(parents=True, exist_ok=True)
            for key in keys:
                self._call(
                    self.client.download_file,
                    self.bucket,
                    self.prefix + key,
                    str(local_dir / name / Path(key).name),
                )

    def publish(
        self, local_dir: Path, run_id: str, datasets: list[str], manifest: dict[str, Any]
    ) -> dict[str, Any]:
        """Upload the run's snapshot, then commit with the manifest PUT, then prune old snapshots."""
        files: dict[str, list[str]] = {}
        for name in datasets:
            files[name] = []
            for path in sorted((local_dir / name).glob("*.parquet")):
                key = f"snapshots/{run_id}/{name}/{path.name}"
                self._call(self.client.upload_file, str(path), self.bucket, self.prefix + key)
                files[name].append(key)
        manifest = {**manifest, "files": files, "status": "committed", "snapshot": f"snapshots/{run_id}/"}
        body = json.dumps(manifest, indent=2, default=str).encode()
        self._call(
            self.client.put_object, Bucket=self.bucket, Key=f"{self.prefix}_runs/{run_id}.json", Body=body
        )
        self._call(self.client.put_object, Bucket=self.bucket, Key=self.prefix + MANIFEST, Body=body)
        return manifest

    def prune(self, keep_run_ids: set[str]) -> int:
        """Delete snapshot folders of runs other than keep_run_ids (older runs and killed runs' orphans)."""
        paginator = self.client.get_paginator("list_objects_v2")
        doomed = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + "snapshots/"):
            for obj in page.get("Contents", []):
                run = obj["Key"][len(self.prefix + "snapshots/") :].split("/", 1)[0]
                if run not in keep_run_ids:
                    doomed.append({"Key": obj["Key"]})
        for i in range(0, len(doomed), 1000):
            self._call(
                self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": doomed[i : i + 1000]}
            )
        return len(doomed)
