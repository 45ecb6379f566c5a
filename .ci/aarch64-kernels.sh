#!/usr/bin/env bash
# Cross-tests the aarch64 NEON distance kernels (f32 and quantized codes) under qemu user-mode
# emulation against the scalar kernels. Not part of `.ci/run`: it needs apt packages and an
# extra rustup target. qemu checks correctness only; its timings say nothing about NEON speed.
#
#   .ci/aarch64-kernels.sh                      # kernel tests (qemu's default CPU has dotprod)
#   QEMU_CPU=cortex-a53 .ci/aarch64-kernels.sh  # a CPU without dotprod: the baseline path
#   .ci/aarch64-kernels.sh ''                   # the whole vecraft-core lib suite (slow)
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null \
    || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
    apt-get update -qq
    apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"

# Default filter: the f32 kernels (`vector::distance`) and the code kernels
# (`quantization::kernels`). Both debug and release: only release checks the common-prefix
# behaviour for unequal lengths, only debug checks overflow and the length `debug_assert!`s.
if [ "$#" -eq 0 ]; then
    set -- vector::distance quantization::kernels
fi
cargo test -p vecraft-core --target "$target" --lib -- "$@"
cargo test -p vecraft-core --target "$target" --lib --release -- "$@"
