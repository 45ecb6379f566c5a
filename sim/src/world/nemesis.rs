//! The nemesis: the fault schedule of the fault phase. Each fault class is a Poisson process whose
//! rate comes from the seed (swarm testing: a class is on or off per seed, with its own
//! intensity); at the liveness phase every fault stops and every node is brought back.

use super::{Event, World, nanos};
use crate::config::PartitionMode;
use rand::RngExt;
use std::time::Duration;

impl World {
    /// Arms the first event of every fault class that is on.
    pub(super) fn schedule_nemesis(&mut self) {
        self.schedule_every(self.cfg.partition_every, Event::Partition);
        self.schedule_every(self.cfg.crash_every, Event::Crash);
        self.schedule_every(self.cfg.degrade_every, Event::Degrade);
        self.schedule_every(self.cfg.flap_every, Event::Flap);
        self.schedule_every(self.cfg.pause_every, Event::Pause);
        self.schedule_every(self.cfg.clock_jump_every, Event::ClockJump);
        if self.cfg.faulty_disks > 0 {
            self.schedule_every(self.cfg.bit_flip_every, Event::BitFlip);
        }
        self.schedule_every(self.cfg.transfer_every, Event::Transfer);
        self.schedule_membership();
    }

    /// Asks the current leader to hand leadership to another node (possibly one that is down or
    /// cut off: the transfer must then be abandoned cleanly).
    pub(super) fn nemesis_transfer(&mut self) {
        if !self.faults_on {
            return;
        }
        if let Some(l) = self.leader_index()
            && self.nodes.len() > 1
        {
            let mut target = self.rng.random_range(0..self.nodes.len() - 1);
            if target >= l {
                target += 1;
            }
            let to = self.nodes[target].id;
            self.stats.transfers += 1;
            self.deliver(l, vecraft_core::raft::RaftInput::TransferLeadership { to });
        }
        self.schedule_every(self.cfg.transfer_every, Event::Transfer);
    }


    pub(super) fn nemesis_partition(&mut self) {
        if !self.faults_on {
            return;
        }
        let n = self.nodes.len();
        if self.net.partitioned() && self.rng.random_bool(0.5) {
            self.net.heal();
            self.stats.heals += 1;
        } else if n > 1 {
            self.net.heal();
            let mode = match self.cfg.partitions {
                PartitionMode::Mixed => {
                    [PartitionMode::Halves, PartitionMode::IsolateLeader, PartitionMode::OneWay][self.rng.random_range(0..3)]
                }
                m => m,
            };
            match mode {
                PartitionMode::None | PartitionMode::Mixed => {}
                PartitionMode::Halves => {
                    let side: Vec<bool> = (0..n).map(|_| self.rng.random_bool(0.5)).collect();
                    for a in 0..n {
                        for b in 0..n {
                            if side[a] != side[b] {
                                self.net.cut(a, b);
                            }
                        }
                    }
                }
                PartitionMode::IsolateLeader => {
                    let victim = self.leader_index().unwrap_or_else(|| self.rng.random_range(0..n));
                    for b in 0..n {
                        if b != victim {
                            self.net.cut(victim, b);
                            self.net.cut(b, victim);
                        }
                    }
                }
                PartitionMode::OneWay => {
                    for _ in 0..self.rng.random_range(1..=n) {
                        let a = self.rng.random_range(0..n);
                        let b = self.rng.random_range(0..n);
                        if a != b {
                            self.net.cut(a, b);
                        }
                    }
                }
            }
            self.stats.partitions += 1;
        }
        self.schedule_every(self.cfg.partition_every, Event::Partition);
    }

    /// An asymmetric link fault: one direction of a random link becomes slow and lossy, or a
    /// degraded direction recovers.
    pub(super) fn nemesis_degrade(&mut self) {
        if !self.faults_on {
            return;
        }
        let n = self.nodes.len();
        if !(self.rng.random_bool(0.4) && self.net.restore_one(&mut self.rng)) && n > 1 {
            let a = self.rng.random_range(0..n);
            let b = (a + self.rng.random_range(1..n)) % n;
            self.net.degrade(&mut self.rng, a, b);
            self.stats.degraded_links += 1;
        }
        self.schedule_every(self.cfg.degrade_every, Event::Degrade);
    }

    /// Starts a flapping episode: a random link goes down and up several times in quick succession
    /// (a bad cable, an overloaded switch port), each change only tens of milliseconds apart.
    pub(super) fn nemesis_flap(&mut self) {
        if !self.faults_on {
            return;
        }
        let n = self.nodes.len();
        if n > 1 {
            let a = self.rng.random_range(0..n);
            let b = (a + self.rng.random_range(1..n)) % n;
            let toggles = 2 * self.rng.random_range(2..8u32);
            self.flap_toggle(a, b, toggles);
        }
        self.schedule_every(self.cfg.flap_every, Event::Flap);
    }

    pub(super) fn flap_toggle(&mut self, a: usize, b: usize, left: u32) {
        if !self.faults_on || left == 0 {
            return;
        }
        if self.net.toggle_flap(a, b) {
            self.stats.flaps += 1;
        }
        let at = self.now + self.rng.random_range(nanos(Duration::from_millis(20))..=nanos(Duration::from_millis(400)));
        self.schedule(at, Event::FlapToggle { a, b, left: left - 1 });
    }

    /// A process pause: a random running node stops being stepped for up to `max_pause`.
    pub(super) fn nemesis_pause(&mut self) {
        if !self.faults_on {
            return;
        }
        let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].is_up() && !self.nodes[i].paused).collect();
        if !up.is_empty() {
            let victim = match self.leader_index() {
                Some(l) if !self.nodes[l].paused && self.rng.random_bool(0.4) => l,
                _ => up[self.rng.random_range(0..up.len())],
            };
            let longest = nanos(self.cfg.max_pause).max(nanos(Duration::from_millis(101)));
            let until = self.now + self.rng.random_range(nanos(Duration::from_millis(100))..=longest);
            self.pause(victim, until);
            self.stats.pauses += 1;
        }
        self.schedule_every(self.cfg.pause_every, Event::Pause);
    }

    /// Steps one node's wall clock forwards or backwards by up to `max_clock_jump`.
    pub(super) fn nemesis_clock_jump(&mut self) {
        if !self.faults_on {
            return;
        }
        let victim = self.rng.random_range(0..self.nodes.len());
        let size = self.rng.random_range(nanos(Duration::from_millis(1))..=nanos(self.cfg.max_clock_jump).max(1_000_000)) as i64;
        if self.rng.random_bool(0.5) {
            self.nodes[victim].clock.jump(size);
            self.stats.clock_jumps_forward += 1;
        } else {
            self.nodes[victim].clock.jump(-size);
            self.stats.clock_jumps_backward += 1;
        }
        self.schedule_every(self.cfg.clock_jump_every, Event::ClockJump);
    }

    /// Bit rot: one bit of an acknowledged record on a faulty disk flips.
    pub(super) fn nemesis_bit_flip(&mut self) {
        if !self.faults_on {
            return;
        }
        let faulty: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].disk.faulty).collect();
        if !faulty.is_empty() {
            let victim = faulty[self.rng.random_range(0..faulty.len())];
            if self.nodes[victim].disk.flip_bit(&mut self.rng) {
                self.stats.bit_flips += 1;
            }
        }
        self.schedule_every(self.cfg.bit_flip_every, Event::BitFlip);
    }

    pub(super) fn nemesis_crash(&mut self) {
        if !self.faults_on {
            return;
        }
        let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].is_up()).collect();
        if !up.is_empty() {
            let leader = self.leader_index();
            let mut victims = vec![match leader {
                Some(l) if self.rng.random_bool(self.cfg.crash_leader_share) => l,
                _ => up[self.rng.random_range(0..up.len())],
            }];
            // A crash while a failover is still being measured interrupts it: the figure is the
            // time to recover from one leader crash, not from a chain of them.
            if self.leader_failover_since.take().is_some() {
                self.stats.failovers_interrupted += 1;
            }
            self.failover_since = None;
            // Failover is measured only when a majority stays up: otherwise the wait is for a
            // restart (downtime), not for the protocol.
            let majority_left = (up.len() - 1) * 2 > self.nodes.len();
            if leader.is_some_and(|l| victims[0] == l) && self.failover_since.is_none() && majority_left {
                self.failover_since = Some(self.now);
            }
            if let Some(l) =
                leader.filter(|&l| victims[0] == l && self.leader_failover_since.is_none() && majority_left)
            {
                self.leader_failover_since = Some((self.now, self.nodes[l].id));
            }
            if self.cfg.power_loss > 0.0 && self.rng.random_bool(self.cfg.power_loss) {
                // A power loss: a majority goes down at the same instant, unsynced writes and all.
                self.stats.power_losses += 1;
                for &i in &up {
                    if victims.len() * 2 > self.nodes.len() {
                        break;
                    }
                    if !victims.contains(&i) {
                        victims.push(i);
                    }
                }
            }
            for victim in victims {
                self.crash(victim);
            }
            self.check_durability();
        }
        self.schedule_every(self.cfg.crash_every, Event::Crash);
    }

    /// Kills node `victim` (its disk loses what was not durable) and schedules its restart.
    pub(super) fn crash(&mut self, victim: usize) {
        let torn = (self.cfg.torn_write > 0.0 && self.rng.random_bool(self.cfg.torn_write))
            .then(|| self.rng.random_range(0.05..0.95));
        let node = &mut self.nodes[victim];
        node.stop();
        let loss = node.disk.crash(torn);
        self.stats.torn_writes += loss.torn as u64;
        self.stats.lying_losses += loss.lied as u64;
        self.stats.crashes += 1;
        let longest = nanos(self.cfg.max_downtime).max(nanos(Duration::from_millis(51)));
        let down = self.rng.random_range(nanos(Duration::from_millis(50))..=longest);
        let at = self.now + down;
        self.schedule(at, Event::Restart { node: victim });
    }

    /// Latency of one disk write: usually within the configured range, sometimes a stall of
    /// 50-250 ms (a slow fsync, as real disks have).
    pub(super) fn disk_latency(&mut self) -> u64 {
        let stall = self.faults_on && self.cfg.disk_stall > 0.0 && self.rng.random_bool(self.cfg.disk_stall);
        if stall {
            self.rng.random_range(nanos(Duration::from_millis(50))..=nanos(Duration::from_millis(250)))
        } else {
            self.rng.random_range(nanos(self.cfg.min_disk)..=nanos(self.cfg.max_disk))
        }
    }

    /// Faults stop: the network heals, paused nodes resume and crashed nodes restart.
    pub(super) fn start_liveness(&mut self) {
        self.faults_on = false;
        self.directed_end();
        if self.net.partitioned() {
            self.stats.heals += 1;
        }
        self.net.calm();
        for n in 0..self.nodes.len() {
            if self.nodes[n].paused {
                let incarnation = self.nodes[n].incarnation;
                self.resume(n, incarnation);
            }
            if !self.nodes[n].is_up() {
                self.boot(n);
            }
        }
    }
}
