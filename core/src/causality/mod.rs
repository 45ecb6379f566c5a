//! Causality tracking for leaderless replication: vector clocks, hybrid logical clocks and dotted
//! version vectors.
