#!/usr/bin/env python3
"""faiss IndexHNSWFlat on the same TEXMEX files as vecraft's ann_harness, printing the same RESULT lines.

Setup: pip install faiss-cpu numpy   (a wheel from PyPI; no compiler needed)

Same settings as the harness: M, efConstruction, k and the ef sweep (efSearch); one OpenMP
thread for the build and for queries (`omp_set_num_threads(1)`), so it is a single-thread peer
like hnswlib. QPS and recall come from one batch `search` call per ef (the loop runs in C++);
p50/p99 from a second pass issuing queries one at a time (includes Python call overhead).

Memory per point is the growth of the resident set across the build, divided by the point
count (faiss allocates in C++). The `l2` space is METRIC_L2; `ip` and `cosine` use
METRIC_INNER_PRODUCT (the harness normalises cosine data before writing the files).
"""

import sys
import time

import numpy as np

from peer_common import parse_args_and_load, quantiles, rss_bytes

try:
    import faiss
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("faiss is not installed: pip install faiss-cpu numpy")


def main():
    a, base, queries, truth = parse_args_and_load(__doc__.splitlines()[0])
    n, dim = base.shape
    faiss.omp_set_num_threads(1)
    print(f"faiss {faiss.__version__}: {n} x {dim}, {queries.shape[0]} queries", file=sys.stderr)

    metric = faiss.METRIC_L2 if a.space == "l2" else faiss.METRIC_INNER_PRODUCT
    if a.load:
        # A later round of the harness's --rounds (see hnswlib_peer.py).
        index = faiss.read_index(a.load)
        build_s = build_cpu_s = bytes_per_point = 0.0
    else:
        before = rss_bytes()
        start, cpu_start = time.perf_counter(), time.thread_time()
        index = faiss.IndexHNSWFlat(dim, a.m, metric)
        index.hnsw.efConstruction = a.ef_construct
        index.add(base)
        build_s, build_cpu_s = time.perf_counter() - start, time.thread_time() - cpu_start
        bytes_per_point = (rss_bytes() - before) / n
        print(f"build: {build_s:.1f} s, {bytes_per_point:.0f} bytes/point", file=sys.stderr)
        if a.save:
            faiss.write_index(index, a.save)

    truth_k = truth[:, : a.k]
    for ef in [int(x) for x in a.ef.split(",") if x]:
        index.hnsw.efSearch = max(ef, a.k)
        index.search(queries[: a.warmup], a.k)
        c0, t0 = time.thread_time(), time.perf_counter()
        _, labels = index.search(queries, a.k)
        batch_s, batch_cpu_s = time.perf_counter() - t0, time.thread_time() - c0
        found = sum(len(np.intersect1d(labels[i], truth_k[i])) for i in range(queries.shape[0]))
        recall = found / (queries.shape[0] * a.k)
        qps = queries.shape[0] / batch_s
        cpu_qps = queries.shape[0] / batch_cpu_s
        wall = np.empty(queries.shape[0])
        cpu = np.empty(queries.shape[0])
        for i in range(queries.shape[0]):
            q = queries[i : i + 1]
            c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
            index.search(q, a.k)
            wall[i] = (time.perf_counter_ns() - t0) / 1e3
            cpu[i] = (time.thread_time_ns() - c0) / 1e3
        p50, p99 = quantiles(wall)
        cpu_p50, cpu_p99 = quantiles(cpu)
        print(
            f"RESULT engine=faiss-hnswflat ef={ef} recall={recall:.4f} qps={qps:.1f} p50_us={p50:.1f} "
            f"p99_us={p99:.1f} cpu_qps={cpu_qps:.1f} cpu_p50_us={cpu_p50:.1f} "
            f"cpu_p99_us={cpu_p99:.1f} build_s={build_s:.2f} build_cpu_s={build_cpu_s:.2f} bytes_per_point={bytes_per_point:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
