//! Raft consensus for one replication group, as a pure state machine.
