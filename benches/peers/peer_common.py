"""Shared by the ANN peers: command line, TEXMEX reading, resident-set size, nearest-rank quantiles."""

import argparse
import sys

import numpy as np


def read_vecs(path, dtype):
    """Reads .fvecs (dtype float32) or .ivecs (int32), validating the record structure."""
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        sys.exit(f"{path}: file holds no records")
    dim = int(raw[0])
    if dim <= 0 or dim > 65536:
        sys.exit(f"{path}: invalid dimension {dim} in the first record")
    if raw.size % (dim + 1) != 0:
        sys.exit(f"{path}: size is not a whole number of {dim}-d records (truncated or mixed)")
    rows = raw.reshape(-1, dim + 1)
    if not np.all(rows[:, 0] == dim):
        bad = int(np.argmax(rows[:, 0] != dim))
        sys.exit(f"{path}: record {bad} has dimension {rows[bad, 0]}, expected {dim}")
    return np.ascontiguousarray(rows[:, 1:]).view(dtype)


def rss_bytes():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import resource

    return pages * resource.getpagesize()


def quantiles(values):
    """Nearest-rank p50 and p99, as the harness computes them."""
    s = np.sort(values)
    rank = lambda q: s[max(int(np.ceil(q * len(s))), 1) - 1]
    return rank(0.50), rank(0.99)


def parse_args_and_load(description):
    """The harness's peer command line, and the base/queries/truth files it names, validated."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--base", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--space", default="l2", choices=["l2", "ip", "cosine"])
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construct", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--ef", default="16,32,64,128,256")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--save", help="after the build, save the index here (for later --load runs)")
    p.add_argument("--load", help="skip the build: load the index saved here and sweep")
    a = p.parse_args()
    if a.save and a.load:
        sys.exit("--save and --load exclude each other")
    base = read_vecs(a.base, np.float32)
    queries = read_vecs(a.queries, np.float32)
    truth = read_vecs(a.truth, np.int32)
    if base.shape[1] != queries.shape[1]:
        sys.exit(f"base dimension {base.shape[1]} != query dimension {queries.shape[1]}")
    if truth.shape[0] < queries.shape[0] or truth.shape[1] < a.k:
        sys.exit(f"truth has shape {truth.shape}, need at least {queries.shape[0]} x {a.k}")
    return a, base, queries, truth
