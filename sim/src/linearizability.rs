//! Linearizability checking of register histories.
