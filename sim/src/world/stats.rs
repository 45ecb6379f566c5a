//! What a run did and what it produced: the counters printed in every summary, so a reader can see
//! that the seeds really exercised each fault class (a fault that never fires is a silent gap).

use crate::config::SimConfig;
use crate::history::History;
use serde::Serialize;
use vecraft_core::raft::SnapshotStats;

/// Counters describing what a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunStats {
    /// Events processed.
    pub events: u64,
    /// Leadership transfers requested of a leader.
    pub transfers: u64,
    /// `TimeoutNow` messages sent (a target caught up and was told to take over).
    pub timeout_nows: u64,
    /// Failover samples: virtual ms from a crash of the leader to the next write a client saw
    /// succeed (client time-outs and retries included, as a client experiences it).
    pub failover_ms: Vec<u64>,
    /// Leader crashed -> another node leads with an own-term commit (virtual ms): when writes are
    /// accepted again, before any client notices.
    pub leader_failover_ms: Vec<u64>,
    /// Failover measurements cut short by another crash before the cluster recovered.
    pub failovers_interrupted: u64,
    /// Raft messages sent.
    pub messages: u64,
    /// Messages lost (random loss, degraded links, partitions, flapping links).
    pub dropped: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Messages delayed by more than a second (longer than any election timeout).
    pub long_delays: u64,
    /// Old messages re-delivered from a link's replay ring.
    pub replays: u64,
    /// Partition events (new cuts).
    pub partitions: u64,
    /// Heals.
    pub heals: u64,
    /// One direction of a link made slow and lossy (asymmetric link faults).
    pub degraded_links: u64,
    /// Times a flapping link went down.
    pub flaps: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Correlated crashes of a majority.
    pub power_losses: u64,
    /// Process pauses (a node not stepped for a while as its clock runs on).
    pub pauses: u64,
    /// Wall-clock jumps forwards.
    pub clock_jumps_forward: u64,
    /// Wall-clock jumps backwards.
    pub clock_jumps_backward: u64,
    /// Crashes that tore a write (detected and discarded at restart).
    pub torn_writes: u64,
    /// Durable writes.
    pub disk_writes: u64,
    /// Bits flipped in records already synced.
    pub bit_flips: u64,
    /// Syncs a lying disk acknowledged without making them durable.
    pub lying_syncs: u64,
    /// Crashes at which a lying disk lost acknowledged writes.
    pub lying_losses: u64,
    /// Records written at the wrong offset.
    pub misdirected_writes: u64,
    /// Recoveries that failed with a read error (the node retried later).
    pub read_errors: u64,
    /// Writes that failed on a full disk (the node stopped, as on a crash).
    pub disk_full: u64,
    /// Recoveries that found damage before the end of the log (corruption, not a torn tail).
    pub corruption_detected: u64,
    /// Committed entries missing from a quorum only because an injected storage fault lost them
    /// (allowed and counted; a loss on healthy disks is a violation).
    pub storage_lost_entries: u64,
    /// Replies to a stale-term append (success false, no hint) that reached a leader at the
    /// replier's term: the reply carries a round number of an older term's heartbeat, possibly of
    /// the leader's previous incarnation, which core counts as an acknowledgement of its current
    /// rounds (the precondition of stale-read bug 1 of issue 7).
    pub stale_term_acks: u64,
    /// Votes granted at the voter's own current term within an election timeout of hearing from a
    /// leader, i.e. inside that leader's lease (the precondition of stale-read bug 2 of issue 7).
    pub votes_in_lease: u64,
    /// Client operations invoked.
    pub ops_invoked: u64,
    /// Completed ok.
    pub ops_ok: u64,
    /// Completed without effect (incl. failed CAS).
    pub ops_fail: u64,
    /// Indeterminate (time-outs, lost leadership).
    pub ops_info: u64,
    /// NotLeader redirects.
    pub redirects: u64,
    /// Distinct terms that had a leader.
    pub leader_terms: u64,
    /// Entries committed.
    pub committed: u64,
    /// Virtual time simulated.
    pub virtual_ms: u64,
    /// Time from the end of faults to the first leader with an own-term commit.
    pub recovery_ms: Option<u64>,
    /// Client sessions registered in the committed log (read from the most advanced replica at the
    /// end, so duplicate registrations of a retried register count too).
    pub sessions_registered: u64,
    /// Session commands a client sent again with the same (session, seq): after a time-out, an
    /// indeterminate answer or a redirect.
    pub session_retries: u64,
    /// Retried commands the state machine answered from its session table instead of applying.
    pub session_duplicates: u64,
    /// Late copies of acknowledged commands refused unapplied by the session table.
    pub session_late_copies: u64,
    /// "Session expired" answers clients received (they then registered again).
    pub sessions_expired: u64,
    /// Sessions evicted from the table to stay within its capacity.
    pub sessions_evicted: u64,
    /// Membership changes the nemesis asked a leader for.
    pub conf_proposed: u64,
    /// Of those, refused at once (pending change, no own-term commit, invalid, not leader).
    pub conf_refused: u64,
    /// Distinct configuration entries applied (so committed) somewhere.
    pub conf_committed: u64,
    /// Committed configurations that entered a joint configuration.
    pub joint_entered: u64,
    /// Committed configurations that left a joint configuration.
    pub joint_left: u64,
    /// Nodes that became learners (new nodes added, or voters demoted), over committed changes.
    pub learners_added: u64,
    /// Learners that became voters, over committed changes.
    pub learners_promoted: u64,
    /// Voters removed or demoted, over committed changes.
    pub voters_removed: u64,
    /// Leaders that applied a configuration without themselves (and so handed over).
    pub leaders_removed: u64,
    /// Snapshots taken (and the log compacted behind them).
    pub snapshots_taken: u64,
    /// Snapshot transfers started by leaders.
    pub snapshot_sends: u64,
    /// Transfers that waited for a free slot (`max_snapshot_sends`).
    pub snapshot_sends_deferred: u64,
    /// Snapshot chunks sent.
    pub snapshot_chunks: u64,
    /// Snapshot chunks sent again (lost or reordered chunks, stalls).
    pub snapshot_chunks_resent: u64,
    /// Snapshots installed by followers.
    pub snapshot_installs: u64,
    /// Installs rejected (verification or decoding failed).
    pub snapshot_rejections: u64,
    /// Directed episodes started, by class (see `world::directed`).
    pub directed_late_packet: u64,
    /// See `directed_late_packet`.
    pub directed_lease_vote: u64,
    /// See `directed_late_packet`.
    pub directed_transfer_reads: u64,
    /// See `directed_late_packet`.
    pub directed_figure8: u64,
    /// Packets of a leader's previous incarnation delivered after it led again.
    pub late_packets_replayed: u64,
    /// Replies to those packets held back and delivered late to the new incarnation.
    pub late_replies_held: u64,
    /// Held vote requests delivered to a follower at the candidate's term inside a lease.
    pub lease_vote_races: u64,
    /// Old leaders whose inbound links were cut right after their `TimeoutNow` left.
    pub transfer_read_windows: u64,
    /// Leaders crashed at their first commit after a newer leader was cut off (figure 8).
    pub figure8_crashes: u64,
}

impl RunStats {
    /// Counts the start of a directed episode of `class`.
    pub fn count_directed_episode(&mut self, class: crate::directed_faults::DirectedClass) {
        use crate::directed_faults::DirectedClass::*;
        match class {
            LatePacket => self.directed_late_packet += 1,
            LeaseVote => self.directed_lease_vote += 1,
            TransferReads => self.directed_transfer_reads += 1,
            Figure8 => self.directed_figure8 += 1,
        }
    }

    /// Directed episodes and how far they got, by name (printed with the faults; the tests
    /// assert that each class reaches its decisive moment across the seeds).
    pub fn directed_counts(&self) -> [(&'static str, u64); 9] {
        [
            ("directed-late-packet", self.directed_late_packet),
            ("directed-lease-vote", self.directed_lease_vote),
            ("directed-transfer-reads", self.directed_transfer_reads),
            ("directed-figure8", self.directed_figure8),
            ("late-packets-replayed", self.late_packets_replayed),
            ("late-replies-held", self.late_replies_held),
            ("lease-vote-races", self.lease_vote_races),
            ("transfer-read-windows", self.transfer_read_windows),
            ("figure8-crashes", self.figure8_crashes),
        ]
    }
}

impl RunStats {
    /// How often each fault class fired, by name, in a fixed order (the summary and the test that
    /// every class fires both read this).
    pub fn fault_counts(&self) -> [(&'static str, u64); 20] {
        [
            ("dropped", self.dropped),
            ("duplicated", self.duplicated),
            ("long-delays", self.long_delays),
            ("replays", self.replays),
            ("partitions", self.partitions),
            ("degraded-links", self.degraded_links),
            ("flaps", self.flaps),
            ("crashes", self.crashes),
            ("power-losses", self.power_losses),
            ("pauses", self.pauses),
            ("clock-jumps-forward", self.clock_jumps_forward),
            ("clock-jumps-backward", self.clock_jumps_backward),
            ("torn-writes", self.torn_writes),
            ("bit-flips", self.bit_flips),
            ("lying-syncs", self.lying_syncs),
            ("lying-losses", self.lying_losses),
            ("misdirected-writes", self.misdirected_writes),
            ("read-errors", self.read_errors),
            ("disk-full", self.disk_full),
            ("corruption-detected", self.corruption_detected),
        ]
    }
}

impl RunStats {
    /// Protocol events (preconditions of known bugs, and features the seeds must exercise), by
    /// name (printed next to the faults).
    pub fn precondition_counts(&self) -> [(&'static str, u64); 4] {
        [
            ("stale-term-acks", self.stale_term_acks),
            ("votes-in-lease", self.votes_in_lease),
            ("transfers-requested", self.transfers),
            ("timeout-now-sent", self.timeout_nows),
        ]
    }
}

impl RunStats {
    /// Client-session events, by name (printed with the protocol events).
    pub fn session_counts(&self) -> [(&'static str, u64); 6] {
        [
            ("sessions-registered", self.sessions_registered),
            ("session-retries", self.session_retries),
            ("session-duplicates", self.session_duplicates),
            ("session-late-copies", self.session_late_copies),
            ("sessions-expired", self.sessions_expired),
            ("sessions-evicted", self.sessions_evicted),
        ]
    }

    /// Membership-change events, by name (printed, and asserted to happen in many seeds).
    pub fn membership_counts(&self) -> [(&'static str, u64); 9] {
        [
            ("conf-proposed", self.conf_proposed),
            ("conf-refused", self.conf_refused),
            ("conf-committed", self.conf_committed),
            ("joint-entered", self.joint_entered),
            ("joint-left", self.joint_left),
            ("learners-added", self.learners_added),
            ("learners-promoted", self.learners_promoted),
            ("voters-removed", self.voters_removed),
            ("leaders-removed", self.leaders_removed),
        ]
    }

    /// Adds what one step of a node did with snapshots (counters of the node's incarnation).
    pub fn count_snapshots(&mut self, before: &SnapshotStats, after: &SnapshotStats) {
        self.snapshots_taken += after.taken - before.taken;
        self.snapshot_sends += after.sends_started - before.sends_started;
        self.snapshot_sends_deferred += after.sends_deferred - before.sends_deferred;
        self.snapshot_chunks += after.chunks_sent - before.chunks_sent;
        self.snapshot_chunks_resent += after.chunks_resent - before.chunks_resent;
        self.snapshot_installs += after.installed - before.installed;
        self.snapshot_rejections += after.rejected - before.rejected;
    }

    /// Snapshot events by name (printed with the protocol events; the batch summary counts the
    /// seeds in which each happened).
    pub fn snapshot_counts(&self) -> [(&'static str, u64); 7] {
        [
            ("snapshots-taken", self.snapshots_taken),
            ("snapshot-sends", self.snapshot_sends),
            ("snapshot-sends-deferred", self.snapshot_sends_deferred),
            ("snapshot-chunks", self.snapshot_chunks),
            ("snapshot-chunks-resent", self.snapshot_chunks_resent),
            ("snapshot-installs", self.snapshot_installs),
            ("snapshot-rejections", self.snapshot_rejections),
        ]
    }
}

/// Everything a run produced.
pub struct RunReport {
    /// The world that ran.
    pub config: SimConfig,
    /// What happened.
    pub stats: RunStats,
    /// Safety and liveness violations (empty = all checks held).
    pub violations: Vec<String>,
    /// The client history, for the linearizability checker.
    pub history: History,
    /// blake3 of the processed-event trace.
    pub trace_hash: [u8; 32],
}
