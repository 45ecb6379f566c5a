//! Quorum arithmetic: majorities, commit indexes and vote tallies.
