//! Delta-state CRDTs and the conflict-resolution interface used by leaderless replication.
