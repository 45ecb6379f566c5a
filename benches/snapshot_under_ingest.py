"""A collection snapshot taken while clients keep writing, on a real 3-node cluster: how long it
takes and how many rounds of changes each shard needed before one round fit in one page (the
point-in-time export of `core/src/node/shard_export.rs`). It measures; it does not judge.

    .venv/bin/python benches/snapshot_under_ingest.py [POINTS] [WRITERS]

Uses target/release/vecraft (or $VECRAFT_BIN) and `vecraft cluster up` on ports 16333-16335.
"""

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DIM = 128


def call(url, method, path, body=None, timeout=120):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def points(ids, rng):
    return {"points": [{"id": i, "vector": [rng.random() for _ in range(DIM)]} for i in ids]}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    writers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    binary = os.environ.get("VECRAFT_BIN", str(REPO / "target" / "release" / "vecraft"))
    data = tempfile.mkdtemp(prefix="vecraft-snapbench-")
    log = open(Path(data) / "cluster.log", "w")
    proc = subprocess.Popen(
        [binary, "cluster", "up", "--nodes", "3", "--dir", data, "--http-port", "16333", "--cluster-port", "17333"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    urls = [f"http://127.0.0.1:{16333 + i}" for i in range(3)]
    try:
        for _ in range(600):
            try:
                if all(urllib.request.urlopen(u + "/readyz", timeout=1).status == 200 for u in urls):
                    break
            except Exception:
                time.sleep(0.1)
        call(urls[0], "PUT", "/collections/c", {"vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": 2, "replication_factor": 3})
        rng = random.Random(7)
        for start in range(0, n, 1000):
            call(urls[0], "PUT", "/collections/c/points?wait=true", points(range(start, min(n, start + 1000)), rng))

        stop = threading.Event()
        written = [0] * writers

        def writer(k):
            r = random.Random(k)
            url = urls[k % 3]
            while not stop.is_set():
                ids = [r.randrange(n) for _ in range(100)]  # rewrites of existing points
                call(url, "PUT", "/collections/c/points?wait=true", points(ids, r))
                written[k] += 100

        threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(writers)]
        for t in threads:
            t.start()
        time.sleep(3)
        before, t0 = sum(written), time.monotonic()
        snap = call(urls[1], "POST", "/collections/c/snapshots")
        took = time.monotonic() - t0
        during = sum(written) - before
        stop.set()
        for t in threads:
            t.join()
        print(f"points {n}, {writers} writers: snapshot {snap['result']['name']} of {snap['result']['size']} bytes in {took:.2f} s")
        print(f"writes acknowledged during it: {during} points ({during / took:.0f} points/s)")
        # The node's log line for the read: rounds of changes per shard.
        time.sleep(0.5)
        text = "".join(p.read_text(errors="replace") for p in Path(data).rglob("*.log"))
        for m in re.findall(r"collection read for a snapshot.*", text)[-1:]:
            print(m)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
