"""Starts a real `vecraft serve` for the qdrant-client tests.

The binary comes from $VECRAFT_BIN (default: target/debug/vecraft in the repository). Each test
module gets a fresh server on a free loopback port with a temporary data directory.
"""

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What holds the data: "node" (the replicated node, vecraft's default) or "local" (one engine
# with collection snapshots, which the node does not offer yet; payload field indexes are served
# by both, replicated through every shard's log on the node). run.sh runs the suite once per
# engine.
ENGINE = os.environ.get("VECRAFT_ENGINE", "node")

# Where a node keeps its collection snapshots: the replicated node in `collection-snapshots`
# (its `snapshots` directory holds the shard snapshots of Raft compaction), the local engine in
# `snapshots`.
SNAPSHOT_DIR = "collection-snapshots" if ENGINE == "node" else "snapshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from launch(tmp_path_factory, [])


# A server started elsewhere (say the docker-compose cluster of `deploy/`): its URL, and its
# data directory as the server sees it (snapshot files are recovered by that path). The suite
# then starts nothing, and tests that need their own server with other flags skip.
EXTERNAL_URL = os.environ.get("VECRAFT_URL")
EXTERNAL_DATA = os.environ.get("VECRAFT_SERVER_DATA_DIR", "/data")


def launch(tmp_path_factory, extra_args):
    """Runs `vecraft serve` with `extra_args` until the generator is closed: one process, or
    with VECRAFT_NODES=N (engine node only) a cluster of N processes on loopback whose first
    node the client talks to (requests are routed inside the cluster). With VECRAFT_URL, the
    server there instead (only without `extra_args`)."""
    if EXTERNAL_URL:
        if extra_args:
            pytest.skip(f"needs its own server ({' '.join(extra_args)}); VECRAFT_URL names one already running")
        yield {"url": EXTERNAL_URL, "data": Path(EXTERNAL_DATA), "external": True}
        return
    binary = os.environ.get("VECRAFT_BIN", str(REPO / "target" / "debug" / "vecraft"))
    if not Path(binary).exists():
        pytest.fail(f"vecraft binary not found at {binary}; build it or set VECRAFT_BIN")
    nodes = int(os.environ.get("VECRAFT_NODES", "1")) if ENGINE == "node" else 1
    root = tmp_path_factory.mktemp("vecraft-data")
    http = [free_port() for _ in range(nodes)]
    cluster = [free_port() for _ in range(nodes)]
    procs, logs = [], []
    for i in range(nodes):
        data = root if nodes == 1 else root / f"node-{i + 1}"
        data.mkdir(exist_ok=True)
        args = [binary, "serve", "--data-dir", str(data), "--http-addr", f"127.0.0.1:{http[i]}",
                "--engine", ENGINE, *extra_args]
        env = dict(os.environ)
        if nodes > 1:
            peers = ",".join(f"{j + 1}=127.0.0.1:{cluster[j]}" for j in range(nodes) if j != i)
            args += ["--node-id", str(i + 1), "--cluster-addr", f"127.0.0.1:{cluster[i]}", "--peers", peers]
            env["VECRAFT_CLUSTER_SECRET"] = "python-tests"
        log = open(data / "server.log", "w")
        logs.append((data, log))
        procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env))
    deadline = time.time() + 60
    for i in range(nodes):
        url = f"http://127.0.0.1:{http[i]}"
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if procs[i].poll() is not None or time.time() > deadline:
                for p in procs:
                    p.kill()
                pytest.fail("vecraft did not become ready: " + (logs[i][0] / "server.log").read_text())
            time.sleep(0.1)
    yield {"url": f"http://127.0.0.1:{http[0]}", "data": root}
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    for _, log in logs:
        log.close()
