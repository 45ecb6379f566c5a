//! Alternated measurement rounds: our sweeps and the peers' sweeps, taken several times in
//! turn, each figure the median over the rounds.
//!
//! Why: this host's speed drifts by a third within minutes (other tenants), and a harness that
//! always runs the peers after us hands the drift to one side. With `--rounds N` the peers build
//! once (round 0, after ours, as before), save their index, and in later rounds load it and
//! sweep again; which side goes first alternates every round, so a slow spell lands on both
//! sides alike, and the median drops the outlying round.

use crate::measure::SearchFigures;

/// One sweep per engine (or per variant of ours), each one figure set per `ef`.
pub type Sweeps = Vec<Vec<SearchFigures>>;

/// Whether our sweeps run before the peers' in `round` (0-based): even rounds ours first, odd
/// rounds peers first. Round 0 must be ours first: the peers build (and save) there, and our
/// build figures were taken on a machine that had not yet run theirs.
pub fn ours_first(round: usize) -> bool {
    round.is_multiple_of(2)
}

/// Runs `rounds` rounds (at least one): `ours(round)` returns one sweep per variant of ours,
/// `peers(round)` one sweep per peer, called in the order [`ours_first`] gives. Returns the
/// median sweeps of ours and of each peer ([`median_sweep`]).
pub fn alternate<E>(
    rounds: usize,
    mut ours: impl FnMut(usize) -> Result<Sweeps, E>,
    mut peers: impl FnMut(usize) -> Result<Sweeps, E>,
) -> Result<(Sweeps, Sweeps), E> {
    let mut our_rounds = Vec::new();
    let mut peer_rounds = Vec::new();
    for round in 0..rounds.max(1) {
        if ours_first(round) {
            our_rounds.push(ours(round)?);
            peer_rounds.push(peers(round)?);
        } else {
            peer_rounds.push(peers(round)?);
            our_rounds.push(ours(round)?);
        }
    }
    Ok((medians(&our_rounds), medians(&peer_rounds)))
}

/// Per engine (index in each round's list), the median sweep over the rounds.
fn medians(rounds: &[Sweeps]) -> Sweeps {
    let engines = rounds.iter().map(Vec::len).min().unwrap_or(0);
    (0..engines)
        .map(|e| median_sweep(&rounds.iter().map(|r| r[e].clone()).collect::<Vec<_>>()))
        .collect()
}

/// Each figure of each sweep point is the median of that figure over `rounds` (the mean of the
/// middle two for an even count). Points are matched by position; a round with a shorter sweep
/// shortens the result (a peer that failed part-way cannot pass for a full sweep).
pub fn median_sweep(rounds: &[Vec<SearchFigures>]) -> Vec<SearchFigures> {
    let points = rounds.iter().map(Vec::len).min().unwrap_or(0);
    (0..points)
        .map(|i| {
            let at: Vec<&SearchFigures> = rounds.iter().map(|r| &r[i]).collect();
            debug_assert!(at.iter().all(|f| f.ef == at[0].ef), "rounds sweep the same ef list");
            let m = |get: fn(&SearchFigures) -> f64| median(at.iter().map(|f| get(f)).collect());
            SearchFigures {
                ef: at[0].ef,
                recall: m(|f| f.recall),
                qps: m(|f| f.qps),
                p50_us: m(|f| f.p50_us),
                p99_us: m(|f| f.p99_us),
                cpu_qps: m(|f| f.cpu_qps),
                cpu_p50_us: m(|f| f.cpu_p50_us),
                cpu_p99_us: m(|f| f.cpu_p99_us),
            }
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn fig(ef: usize, cpu_qps: f64) -> SearchFigures {
        SearchFigures { ef, recall: 0.9, qps: cpu_qps / 2.0, p50_us: 1e6 / cpu_qps, p99_us: 2e6 / cpu_qps, cpu_qps, cpu_p50_us: 1.0, cpu_p99_us: 2.0 }
    }

    #[test]
    fn sides_alternate_and_round_zero_runs_ours_first() {
        let order = RefCell::new(Vec::new());
        let (ours, peers) = alternate::<()>(
            4,
            |r| {
                order.borrow_mut().push(format!("ours{r}"));
                Ok(vec![vec![fig(16, 100.0 + r as f64)]])
            },
            |r| {
                order.borrow_mut().push(format!("peers{r}"));
                Ok(vec![vec![fig(16, 10.0 * (r + 1) as f64)], vec![fig(16, 7.0)]])
            },
        )
        .unwrap();
        assert_eq!(
            order.into_inner(),
            ["ours0", "peers0", "peers1", "ours1", "ours2", "peers2", "peers3", "ours3"]
        );
        assert_eq!(ours.len(), 1);
        assert_eq!(ours[0][0].cpu_qps, 101.5, "median of 100..=103: mean of the middle two");
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0][0].cpu_qps, 25.0);
        assert_eq!(peers[1][0].cpu_qps, 7.0);
    }

    #[test]
    fn one_round_is_the_plain_run_and_a_failure_stops_the_rounds() {
        let (ours, peers) = alternate::<()>(0, |_| Ok(vec![vec![fig(16, 5.0)]]), |_| Ok(vec![])).unwrap();
        assert_eq!(ours, vec![vec![fig(16, 5.0)]]);
        assert!(peers.is_empty());
        let calls = RefCell::new(0);
        let failed = alternate(
            3,
            |_| Ok(vec![]),
            |r| {
                *calls.borrow_mut() += 1;
                if r == 1 { Err("peer died") } else { Ok(vec![]) }
            },
        );
        assert_eq!(failed, Err("peer died"));
        assert_eq!(calls.into_inner(), 2, "no round after the failure");
    }

    #[test]
    fn medians_are_per_figure_and_per_point_and_drop_an_outlier() {
        let rounds = vec![
            vec![fig(16, 300.0), fig(32, 150.0)],
            vec![fig(16, 100.0), fig(32, 160.0)],
            vec![fig(16, 310.0), fig(32, 10.0), fig(64, 1.0)],
        ];
        let m = median_sweep(&rounds);
        assert_eq!(m.len(), 2, "the shortest sweep decides");
        assert_eq!((m[0].ef, m[0].cpu_qps, m[0].qps), (16, 300.0, 150.0));
        assert_eq!(m[0].p50_us, 1e6 / 300.0);
        assert_eq!((m[1].ef, m[1].cpu_qps), (32, 150.0));
        assert!(median_sweep(&[]).is_empty());
    }
}
