//! Deliberate protocol bugs switched on from the environment, to prove the invariant checks bite.
//!
//! A fuzz target that never fails might be checking nothing. With
//! `VECRAFT_FUZZ_INJECT=vote_twice` (comma-separated names of `InjectedBugs` fields) the Raft
//! targets build their nodes with that bug, and a short run must crash. Unset, every switch is
//! off and the targets test the real protocol.

use std::sync::OnceLock;
use vecraft_core::raft::InjectedBugs;

/// The bugs named in `VECRAFT_FUZZ_INJECT` (read once per process).
pub fn injected_bugs() -> InjectedBugs {
    static BUGS: OnceLock<InjectedBugs> = OnceLock::new();
    *BUGS.get_or_init(|| {
        let mut b = InjectedBugs::default();
        let names = std::env::var("VECRAFT_FUZZ_INJECT").unwrap_or_default();
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let flag = match name {
                "commit_without_quorum" => &mut b.commit_without_quorum,
                "vote_twice" => &mut b.vote_twice,
                "read_without_quorum" => &mut b.read_without_quorum,
                "ack_before_persist" => &mut b.ack_before_persist,
                "stale_round_ack" => &mut b.stale_round_ack,
                "vote_in_lease" => &mut b.vote_in_lease,
                "lease_across_transfer" => &mut b.lease_across_transfer,
                "commit_old_term" => &mut b.commit_old_term,
                "session_ignored" => &mut b.session_ignored,
                "skip_joint" => &mut b.skip_joint,
                "compact_uncommitted" => &mut b.compact_uncommitted,
                "install_stale_snapshot" => &mut b.install_stale_snapshot,
                "wake_renews_lease" => &mut b.wake_renews_lease,
                "sleep_on_overtaken_mark" => &mut b.sleep_on_overtaken_mark,
                "wake_on_stale_copy" => &mut b.wake_on_stale_copy,
                other => panic!("VECRAFT_FUZZ_INJECT: unknown bug {other}"),
            };
            *flag = true;
        }
        b
    })
}
