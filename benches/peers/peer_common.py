"""Shared by the ANN peers: TEXMEX reading, resident-set size, nearest-rank quantiles."""

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
