//! The node world's nemesis: crashes (a share aimed at shard leaders), partitions (an isolated
//! node or two halves) and process pauses, each a Poisson-like process whose rate comes from the
//! seed; all stop at the liveness phase.

use super::host::{Ev, World, nanos};
use rand::RngExt;
use vecraft_core::raft::Role;

impl World {
    pub(super) fn nemesis_crash(&mut self) {
        if !self.faults_on {
            return;
        }
        let n = self.machines.len();
        let down = n - self.up().len();
        // Keep a majority up so the run keeps making progress; targeted crashes hit leaders.
        if down < (n - 1) / 2 || (down == 0 && n >= 3) {
            let victim = if self.rng.random_bool(self.cfg.crash_leader_share) {
                let leaders: Vec<usize> = self
                    .up()
                    .into_iter()
                    .filter(|m| {
                        self.machines[*m].proc.as_ref().is_some_and(|p| p.node.groups().any(|(g, r)| g != 0 && r.role() == Role::Leader))
                    })
                    .collect();
                if leaders.is_empty() { None } else { Some(leaders[self.rng.random_range(0..leaders.len())]) }
            } else {
                let up = self.up();
                (!up.is_empty()).then(|| up[self.rng.random_range(0..up.len())])
            };
            if let Some(v) = victim {
                self.crash(v);
                let back = self.rng.random_range(200_000_000..=2_000_000_000);
                self.at(self.now + back, Ev::Restart { node: v });
            }
        }
        if let Some(every) = self.cfg.crash_every {
            let next = self.rng.random_range(nanos(every) / 2..=nanos(every) * 3 / 2);
            self.at(self.now + next, Ev::Crash);
        }
    }

    /// A crash aimed at machine `v` (still in incarnation `inc`), under the same rule as
    /// [`Self::nemesis_crash`]: a majority stays up.
    pub(super) fn nemesis_crash_node(&mut self, v: usize, inc: u64) {
        let n = self.machines.len();
        let down = n - self.up().len();
        if !self.faults_on || self.machines[v].inc != inc || self.machines[v].proc.is_none() {
            return;
        }
        if down < (n - 1) / 2 || (down == 0 && n >= 3) {
            self.crash(v);
            *self.faults.entry("crashes-after-snapshot").or_insert(0) += 1;
            let back = self.crash_rng.random_range(200_000_000..=2_000_000_000);
            self.at(self.now + back, Ev::Restart { node: v });
        }
    }

    pub(super) fn nemesis_partition(&mut self) {
        if !self.faults_on {
            return;
        }
        let n = self.machines.len();
        self.net.heal();
        if self.rng.random_bool(0.6) {
            *self.faults.entry("partitions").or_insert(0) += 1;
            let isolated = self.rng.random_range(0..n);
            let halves = self.rng.random_bool(0.5);
            for a in 0..n {
                for b in 0..n {
                    let side = |x: usize| if halves { x % 2 == isolated % 2 } else { x == isolated };
                    if a != b && side(a) != side(b) {
                        self.net.cut(a, b);
                    }
                }
            }
        }
        if let Some(every) = self.cfg.partition_every {
            let next = self.rng.random_range(nanos(every) / 2..=nanos(every) * 3 / 2);
            self.at(self.now + next, Ev::Partition);
        }
    }

    pub(super) fn nemesis_pause(&mut self) {
        if !self.faults_on {
            return;
        }
        let up = self.up();
        if !up.is_empty() {
            let m = up[self.rng.random_range(0..up.len())];
            let d = self.rng.random_range(100_000_000..=3_000_000_000);
            self.machines[m].paused_until = self.now + d;
            *self.faults.entry("pauses").or_insert(0) += 1;
        }
        if let Some(every) = self.cfg.pause_every {
            let next = self.rng.random_range(nanos(every) / 2..=nanos(every) * 3 / 2);
            self.at(self.now + next, Ev::Pause);
        }
    }

    /// Bit rot on the faulty disk: a bit of an acknowledged record (not the last) flips; the
    /// next recovery meets it.
    pub(super) fn nemesis_bit_flip(&mut self) {
        if !self.faults_on {
            return;
        }
        if let Some(m) = self.cfg.storage.faulty_disk
            && self.machines[m].disk.flip_bit_before_last(&mut self.rng)
        {
            *self.faults.entry("bit-flips").or_insert(0) += 1;
        }
        if let Some(every) = self.cfg.storage.bit_flip_every {
            let next = self.rng.random_range(nanos(every) / 2..=nanos(every) * 3 / 2);
            self.at(self.now + next, Ev::BitFlip);
        }
    }

    /// The machine an event concerns, if it is paused now (the event then waits for the resume).
    pub(super) fn paused_target(&self, ev: &Ev) -> Option<u64> {
        let node = match ev {
            Ev::Tick { node, .. } | Ev::DiskDone { node, .. } | Ev::ApplyDone { node, .. } | Ev::ReadDone { node, .. } => *node,
            Ev::Deliver { to, .. } => *to,
            _ => return None,
        };
        let until = self.machines[node].paused_until;
        (until > self.now).then_some(until)
    }
}
