"""The HTTP API's overhead: requests/s and p50/p95 latency for one-page PDFs at 1, 4, 16 and 32 clients
against Ray Serve (the CPU engines, `--replicas` engine replicas), and the same conversions by calling
`unitok.convert` directly in as many worker processes, in the same run. Overhead = 1 - Serve's
requests/s over the direct calls' (target: under 20 % at 16 clients).

    python bench/bench_serve.py [--replicas 2] [--requests 96] [--pdf sample/scanned-memo.pdf]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def one_page_pdf() -> bytes:
    from handmade import hand_pdf, text_at

    return hand_pdf(
        "".join(text_at(72, 700 - 16 * i, f"Line {i} of a one-page field note.") for i in range(30))
    )


def _direct(data: bytes) -> float:
    import unitok

    t0 = time.perf_counter()
    unitok.convert(data, name="note.pdf")
    return time.perf_counter() - t0


def _warm(data: bytes) -> None:
    import unitok

    unitok.convert(data, name="note.pdf")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--requests", type=int, default=96)
    p.add_argument("--pdf", help="convert this one-page PDF (default: a hand-written text page)")
    args = p.parse_args()
    import ray
    import requests
    from ray import serve
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.drivers.serve import build_app

    from infra.local_s3 import free_port

    data = Path(args.pdf).read_bytes() if args.pdf else one_page_pdf()
    with ProcessPoolExecutor(args.replicas) as pool:
        list(pool.map(_warm, [data] * (args.replicas * 2)))
        t0 = time.perf_counter()
        direct_lat = list(pool.map(_direct, [data] * args.requests))
        direct_rps = args.requests / (time.perf_counter() - t0)
    ray.init(num_cpus=args.replicas, include_dashboard=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    cfg = parse_config(
        {"source": {"uri": "/unused"}, "output": {"uri": "/unused"}, "chunking": {"enabled": True}}
    )
    serve.run(build_app(cfg, replicas=args.replicas), name="unitok", route_prefix="/")
    url = f"http://127.0.0.1:{port}/v1/convert/file"
    while requests.get(f"http://127.0.0.1:{port}/ready", timeout=30).status_code != 200:
        time.sleep(0.2)
    session = requests.Session()

    def call(_: int) -> float:
        t = time.perf_counter()
        r = session.post(url, files=[("files", ("note.pdf", data))], timeout=300)
        assert r.status_code == 200, r.text
        return time.perf_counter() - t

    for _ in range(4):
        call(0)
    print(f"direct unitok.convert, {args.replicas} processes: {direct_rps:.1f} requests/s, "
          f"p50 {statistics.median(direct_lat) * 1000:.0f} ms")  # fmt: skip
    print("| clients | Serve requests/s | p50 ms | p95 ms | direct requests/s | overhead |")
    print("|---|---|---|---|---|---|")
    for clients in (1, 4, 16, 32):
        with ThreadPoolExecutor(clients) as threads:
            t0 = time.perf_counter()
            lat = list(threads.map(call, range(args.requests)))
            rps = args.requests / (time.perf_counter() - t0)
        print(f"| {clients} | {rps:.1f} | {pct(lat, 0.5) * 1000:.0f} | {pct(lat, 0.95) * 1000:.0f} | "
              f"{direct_rps:.1f} | {1 - rps / direct_rps:.0%} |", flush=True)  # fmt: skip
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
