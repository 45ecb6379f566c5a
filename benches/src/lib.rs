//! Shared code for vecraft's benchmarks and the benchmark harness.
