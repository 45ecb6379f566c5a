#!/usr/bin/env python3
"""hnswlib on the same TEXMEX files as vecraft's ann_harness, printing the same RESULT lines.

Setup: pip install hnswlib numpy   (hnswlib compiles from source, ~30 s)

Same settings as the harness: M, ef_construction, k and the ef sweep; one thread for the
build and for queries. QPS (wall clock `qps` and thread CPU time `cpu_qps`) and recall come from
one single-threaded batch call (the queries loop in C++, so Python's per-call overhead does not
count against hnswlib); p50/p99 latency (wall and CPU) come from a second pass issuing queries
one at a time, and so include a few microseconds of Python call overhead per query.

Memory per point is the growth of the process's resident set across the build (hnswlib
allocates in C++, out of reach of Python's allocator statistics), divided by the point count.
"""

import sys
import time

import numpy as np

from peer_common import parse_args_and_load, quantiles, rss_bytes

try:
    import hnswlib
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("hnswlib is not installed: pip install hnswlib numpy")


def main():
    a, base, queries, truth = parse_args_and_load(__doc__.splitlines()[0])
    n, dim = base.shape
    print(f"hnswlib {getattr(hnswlib, '__version__', '?')}: {n} x {dim}, {queries.shape[0]} queries",
          file=sys.stderr)

    if a.load:
        # A later round of the harness's --rounds: the index this peer built and saved in
        # round 0; build figures were reported then.
        index = hnswlib.Index(space=a.space, dim=dim)
        index.load_index(a.load, max_elements=n)
        index.set_num_threads(1)
        build_s = build_cpu_s = bytes_per_point = 0.0
    else:
        before = rss_bytes()
        start, cpu_start = time.perf_counter(), time.thread_time()
        index = hnswlib.Index(space=a.space, dim=dim)
        index.init_index(max_elements=n, ef_construction=a.ef_construct, M=a.m)
        index.set_num_threads(1)
        index.add_items(base, np.arange(n), num_threads=1)
        build_s, build_cpu_s = time.perf_counter() - start, time.thread_time() - cpu_start
        bytes_per_point = (rss_bytes() - before) / n
        print(f"build: {build_s:.1f} s, {bytes_per_point:.0f} bytes/point", file=sys.stderr)
        if a.save:
            index.save_index(a.save)

    truth_k = truth[:, : a.k]
    for ef in [int(x) for x in a.ef.split(",") if x]:
        index.set_ef(max(ef, a.k))
        for q in queries[: a.warmup]:
            index.knn_query(q, k=a.k, num_threads=1)
        c0, t0 = time.thread_time(), time.perf_counter()
        labels, _ = index.knn_query(queries, k=a.k, num_threads=1)
        batch_s, batch_cpu_s = time.perf_counter() - t0, time.thread_time() - c0
        found = sum(len(np.intersect1d(labels[i], truth_k[i])) for i in range(queries.shape[0]))
        recall = found / (queries.shape[0] * a.k)
        qps = queries.shape[0] / batch_s
        cpu_qps = queries.shape[0] / batch_cpu_s
        wall = np.empty(queries.shape[0])
        cpu = np.empty(queries.shape[0])
        for i, q in enumerate(queries):
            c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
            index.knn_query(q, k=a.k, num_threads=1)
            wall[i] = (time.perf_counter_ns() - t0) / 1e3
            cpu[i] = (time.thread_time_ns() - c0) / 1e3
        p50, p99 = quantiles(wall)
        cpu_p50, cpu_p99 = quantiles(cpu)
        print(
            f"RESULT engine=hnswlib ef={ef} recall={recall:.4f} qps={qps:.1f} p50_us={p50:.1f} "
            f"p99_us={p99:.1f} cpu_qps={cpu_qps:.1f} cpu_p50_us={cpu_p50:.1f} "
            f"cpu_p99_us={cpu_p99:.1f} build_s={build_s:.2f} build_cpu_s={build_cpu_s:.2f} bytes_per_point={bytes_per_point:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
