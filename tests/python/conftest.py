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
# with snapshots and payload field indexes, which the node does not offer yet). run.sh runs the
# suite once per engine.
ENGINE = os.environ.get("VECRAFT_ENGINE", "node")

local_only = pytest.mark.skipif(
    ENGINE != "local", reason="snapshots and payload field indexes are not served by the node yet"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from launch(tmp_path_factory, [])


def launch(tmp_path_factory, extra_args):
    """Runs `vecraft serve` with `extra_args` until the generator is closed."""
    binary = os.environ.get("VECRAFT_BIN", str(REPO / "target" / "debug" / "vecraft"))
    if not Path(binary).exists():
        pytest.fail(f"vecraft binary not found at {binary}; build it or set VECRAFT_BIN")
    data = tmp_path_factory.mktemp("vecraft-data")
    port = free_port()
    log = open(data / "server.log", "w")
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", str(data), "--http-addr", f"127.0.0.1:{port}",
         "--engine", ENGINE, *extra_args],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("vecraft did not become ready: " + (data / "server.log").read_text())
        time.sleep(0.1)
    yield {"url": url, "data": data}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
