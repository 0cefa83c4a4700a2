"""Listing and incremental-rerun cost on a bucket of many small objects, against SeaweedFS on loopback.

Prints the listing time, the full run, a rerun with nothing changed (target: under 10% of the full run),
and a rerun after 1% of the objects changed: its time and the bytes it wrote into the output's Delta tables
against the full run's (target: under 5%). Objects are tiny text PDFs so the figures are the pipeline's
per-object overhead, not conversion.

    python bench/bench_s3.py --objects 10000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def _files(root: Path) -> dict[str, int]:
    """Every file under the output (data files and the Delta log), with its size."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _tree_bytes(root: Path) -> int:
    return sum(_files(root).values())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--executor", default="auto")
    args = ap.parse_args()
    import boto3
    from unitok.connectors.store import open_store
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.job import run_job

    from infra.local_s3 import local_s3

    work = Path(tempfile.mkdtemp(prefix="unitok-bench-s3-"))
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1")
    try:
        with local_s3(work, "bench", "bench-secret", "bench") as (endpoint, _):
            client = boto3.client("s3", endpoint_url=endpoint)
            body = (REPO / "sample" / "field-report.pdf").read_bytes()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: client.put_object(Bucket="bench", Key=f"in/{i:06d}.pdf", Body=body),
                          range(args.objects)))  # fmt: skip
            upload_s = time.perf_counter() - t0
            cfg = parse_config(
                {
                    "source": {"uri": "s3://bench/in/", "s3": {"endpoint_url": endpoint}},
                    "output": {"uri": str(work / "out")},
                    "runtime": {"executor": args.executor},
                }
            )
            t0 = time.perf_counter()
            n = sum(
                1 for _ in open_store(cfg.source.uri, cfg.source.s3.model_dump()).list_objects(["**"], [])
            )
            list_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            full = run_job(cfg)
            full_s = time.perf_counter() - t0
            full_bytes = _tree_bytes(work / "out")
            t0 = time.perf_counter()
            rerun = run_job(cfg)
            rerun_s = time.perf_counter() - t0
            changed = max(1, args.objects // 100)
            from bench_soak import text_pdf

            for i in range(changed):  # 1%, spread over the corpus
                key = f"in/{i * (args.objects // changed):06d}.pdf"
                client.put_object(Bucket="bench", Key=key, Body=text_pdf(f"Changed object {i}"))
            before = _files(work / "out")
            t0 = time.perf_counter()
            incr = run_job(cfg)
            incr_s = time.perf_counter() - t0
            after = _files(work / "out")
            incr_bytes = sum(size for path, size in after.items() if before.get(path) != size)
            untouched = sum(1 for path, size in before.items() if after.get(path) == size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"objects {n} (uploaded in {upload_s:.1f} s)")
    print(f"listing             {list_s:8.2f} s  ({n / list_s:,.0f} objects/s)")
    print(
        f"full run            {full_s:8.2f} s  ({full.converted_objects} converted, executor {full.executor})"
    )
    counts = f"{rerun.converted_objects} converted, {rerun.carried_objects} carried"
    print(f"rerun, no changes   {rerun_s:8.2f} s  ({counts})")
    print(f"rerun / full        {rerun_s / full_s:8.1%}  (target: under 10%)")
    print(f"rerun, 1% changed   {incr_s:8.2f} s  ({incr.converted_objects} converted, "
          f"{incr.carried_objects} carried; {incr_s / full_s:.1%} of the full run's time)")  # fmt: skip
    print(f"bytes written       full {full_bytes / 2**20:8.2f} MiB, 1% changed {incr_bytes / 2**20:6.2f} MiB "
          f"= {incr_bytes / full_bytes:.2%} of the full run's (target: under 5%); "
          f"{untouched} of {len(before)} files untouched")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
