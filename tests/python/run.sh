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
# Against a cluster of N processes only when asked (VECRAFT_NODES=3): Qdrant's default read
# consistency maps to `eventual`, so a read right after a write may come from a replica that has
# not applied it yet, and the tests that read back immediately fail there (3 of them today).
if [ "${VECRAFT_NODES:-1}" != 1 ]; then
  echo "== engine: node, ${VECRAFT_NODES}-process cluster"
  VECRAFT_ENGINE=node "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/python" "$@"
fi
