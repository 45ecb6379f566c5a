"""Rough end-to-end figures through the real qdrant-client (REST): upsert throughput, query
latency and recall@10 against exact search, on one `vecraft serve` node.

    VECRAFT_BIN=target/release/vecraft .venv/bin/python tests/python/bench_client.py [N] [DIM]

Not a pytest module (no `test_` prefix): it measures, it does not judge.
"""

import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from qdrant_client import QdrantClient, models

sys.path.insert(0, str(Path(__file__).parent))
from conftest import REPO, free_port  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    dim = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    batch, queries = 500, 200
    binary = __import__("os").environ.get("VECRAFT_BIN", str(REPO / "target" / "release" / "vecraft"))
    data = tempfile.mkdtemp(prefix="vecraft-bench-")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", data, "--http-addr", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        client = QdrantClient(url=url, prefer_grpc=False, timeout=120)
        client.create_collection("bench", vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE))
        rng = random.Random(7)
        centers = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(50)]

        def point():
            c = rng.choice(centers)
            return [x + rng.gauss(0, 0.3) for x in c]

        vectors = [point() for _ in range(n)]
        start = time.perf_counter()
        for lo in range(0, n, batch):
            ids = list(range(lo, min(lo + batch, n)))
            client.upsert(
                "bench",
                points=models.Batch(ids=ids, vectors=[vectors[i] for i in ids], payloads=[{"g": i % 10} for i in ids]),
                wait=True,
            )
        upsert_s = time.perf_counter() - start
        qs = [point() for _ in range(queries)]
        latencies, recalls = [], []
        for q in qs:
            t = time.perf_counter()
            approx = client.query_points("bench", query=q, limit=10).points
            latencies.append(time.perf_counter() - t)
            exact = client.query_points("bench", query=q, limit=10, search_params=models.SearchParams(exact=True)).points
            truth = {p.id for p in exact}
            recalls.append(len(truth & {p.id for p in approx}) / len(truth))
        latencies.sort()
        print(f"qdrant-client {__import__('importlib.metadata').metadata.version('qdrant-client')}, {n} points x {dim}-d, batches of {batch}")
        print(f"upsert: {upsert_s:.1f} s, {n / upsert_s:,.0f} points/s")
        print(
            f"query (limit 10, default ef): p50 {statistics.median(latencies) * 1e3:.2f} ms, "
            f"p99 {latencies[int(0.99 * len(latencies)) - 1] * 1e3:.2f} ms, recall@10 {statistics.mean(recalls):.3f}"
        )
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
