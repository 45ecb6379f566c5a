#!/usr/bin/env bash
# Runs the real Python qdrant-client against `vecraft serve`.
# Creates .venv at the repository root if needed, installs qdrant-client and pytest, builds the
# binary unless VECRAFT_BIN points at one, and runs pytest. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${VECRAFT_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "qdrant-client>=1.10" pytest
if [ -z "${VECRAFT_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet -p vecraft-runtime --bin vecraft)
  export VECRAFT_BIN="$root/target/debug/vecraft"
fi
"$venv/bin/python" -c 'import importlib.metadata as m; print("qdrant-client", m.version("qdrant-client"))'
# Once per engine: the replicated node (the default server) and the local engine (which still
# serves snapshots and payload field indexes; those tests skip on the node).
for engine in ${VECRAFT_ENGINES:-node local}; do
  echo "== engine: $engine"
  VECRAFT_ENGINE="$engine" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/python" "$@"
done
# And against a real cluster of N processes (VECRAFT_NODES, default 3; 1 skips it): the client
# talks to node 1, which forwards writes to the shard leaders and reads to the replicas on the
# other nodes; reads without a `consistency` parameter are `strong`, so what the client wrote
# with wait=true is read back whichever replica serves it.
if [ "${VECRAFT_NODES:-3}" != 1 ]; then
  echo "== engine: node, ${VECRAFT_NODES:-3}-process cluster"
  VECRAFT_NODES="${VECRAFT_NODES:-3}" VECRAFT_ENGINE=node "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/python" "$@"
fi
