//! Timer bookkeeping: which groups need a `Tick`, and when. Deadlines live in an ordered set, so
//! the host's `next_deadline` is its first element and a `Tick` visits only the groups whose
//! deadline passed; a quiesced group has no deadline and costs nothing.
//!
//! Leaders' deadlines are rounded up to a grid of `tick` (the heartbeat interval by default): every
//! leader on a node then heartbeats in the same step, which is what lets heartbeats to a peer
//! coalesce into one envelope. Rounding only ever delays a timer (by less than one `tick`), which
//! Raft tolerates: lease safety rests on the followers' vote stickiness measured at receipt, never
//! on when a timer fires. Election timers of followers and candidates are *not* rounded: their
//! randomness is what keeps candidates from splitting the vote, and a grid would collapse it into
//! a handful of slots (they rarely fire anyway: only while a group has no leader).

use crate::contract::Time;
use crate::raft::GroupId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The ordered deadlines of all awake groups.
#[derive(Debug)]
pub(super) struct Schedule {
    grid: u64,
    queue: BTreeSet<(Time, GroupId)>,
    at: BTreeMap<GroupId, Time>,
}

impl Schedule {
    pub(super) fn new(tick: Duration) -> Self {
        Schedule { grid: (tick.as_nanos() as u64).max(1), queue: BTreeSet::new(), at: BTreeMap::new() }
    }

    /// `t` rounded up to the tick grid.
    fn align(&self, t: Time) -> Time {
        Time(t.0.div_ceil(self.grid).saturating_mul(self.grid))
    }

    /// Records `group`'s next deadline (`None`: asleep or gone), rounded up to the grid if
    /// `align` (leaders).
    pub(super) fn set(&mut self, group: GroupId, deadline: Option<Time>, align: bool) {
        let new = deadline.map(|d| if align { self.align(d) } else { d });
        let old = self.at.get(&group).copied();
        if old == new {
            return;
        }
        if let Some(o) = old {
            self.queue.remove(&(o, group));
            self.at.remove(&group);
        }
        if let Some(n) = new {
            self.queue.insert((n, group));
            self.at.insert(group, n);
        }
    }

    /// The earliest deadline of any group.
    pub(super) fn next(&self) -> Option<Time> {
        self.queue.first().map(|(t, _)| *t)
    }

    /// Groups whose deadline is at or before `now`, in deadline order.
    pub(super) fn due(&self, now: Time) -> Vec<GroupId> {
        self.queue.range(..=(now, GroupId::MAX)).map(|(_, g)| *g).collect()
    }

    /// Groups with a running timer.
    pub(super) fn awake(&self) -> usize {
        self.at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_deadlines_round_up_to_the_grid_and_election_timers_do_not() {
        let mut s = Schedule::new(Duration::from_millis(50));
        s.set(1, Some(Time::from_millis(50)), true);
        s.set(2, Some(Time(Time::from_millis(50).0 + 1)), true);
        s.set(3, Some(Time::from_millis(73)), false);
        assert_eq!(s.next(), Some(Time::from_millis(50)), "on the grid: unchanged");
        assert_eq!(s.due(Time::from_millis(50)), vec![1]);
        assert_eq!(s.due(Time::from_millis(73)), vec![1, 3], "1ns past the grid waits for the next point");
        assert_eq!(s.due(Time::from_millis(100)), vec![1, 3, 2]);
        s.set(1, None, true);
        s.set(3, Some(Time::from_millis(200)), false);
        assert_eq!(s.due(Time::from_millis(100)), vec![2]);
        assert_eq!(s.awake(), 2);
    }
}
