#!/usr/bin/env bash
# Builds every fuzz target (no sanitizer: works on stable Rust) and runs each for
# ${VECRAFT_FUZZ_SECONDS:-15} seconds from its committed seeds (fuzz/seeds/<target>) plus the
# local working corpus (fuzz/corpus/<target>, git-ignored). Any crash, leak, timeout or failed
# invariant makes the script exit non-zero and leaves the input in fuzz/artifacts/<target>/.
#
#   .ci/fuzz.sh                          # CI: 15 s per target
#   VECRAFT_FUZZ_SECONDS=600 .ci/fuzz.sh # a longer hunt
#   VECRAFT_FUZZ_TARGETS="raft_cluster wal_recover" .ci/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${VECRAFT_FUZZ_SECONDS:-15}

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# `cargo fuzz build` without `-s none` needs nightly; with it, the targets build on stable.
# A build interrupted on this machine once left target/.rustc_info.json stale and every later
# build failed; one retry without the cache file recovers from that.
if ! cargo fuzz build -s none; then
    rm -f target/.rustc_info.json
    cargo fuzz build -s none
fi

bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"
targets=${VECRAFT_FUZZ_TARGETS:-$(cargo fuzz list)}
failed=()
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    dirs=("corpus/$t")
    [ -d "seeds/$t" ] && dirs+=("seeds/$t")
    log="artifacts/$t/last-run.log"
    # -timeout: an input running for 10 s is a hang, reported like a crash.
    if "$bin/$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "${dirs[@]}" >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        last=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
        echo "fuzz $t: ok, $execs execs in ${seconds}s, $last"
    else
        echo "fuzz $t: FAILED (log: fuzz/$log)"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -5 || true
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}"
    exit 1
fi
