//! The one-line result format every engine (ours and the peers) prints, its parser, and the
//! side-by-side table with QPS ratios at equal recall.
//!
//! Format, one line per `ef` (keys in any order, unknown keys ignored):
//! `RESULT engine=NAME ef=64 recall=0.9731 qps=8123.4 p50_us=110.2 p99_us=240.8
//! cpu_qps=8300.2 cpu_p50_us=108.0 cpu_p99_us=201.3 build_s=95.1 bytes_per_point=1234.5`
//! (`qps`/`p50_us`/`p99_us` by wall clock, `cpu_*` by the querying thread's CPU clock).
//!
//! The table compares engines on CPU-time figures: on a shared machine wall-clock figures mostly
//! measure the scheduler (see [`crate::measure`]); wall p99 is shown alongside.

use std::fmt::Write as _;

use crate::measure::SearchFigures;

/// Figures for one engine on one data set.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineRun {
    /// Engine name (e.g. `vecraft-hnsw`, `hnswlib`).
    pub engine: String,
    /// Seconds to build the index (wall clock).
    pub build_s: f64,
    /// CPU seconds of the building thread (NaN when not reported, e.g. a parallel build): on a
    /// loaded machine this is the comparable build figure for single-threaded builds.
    pub build_cpu_s: f64,
    /// Bytes of memory the index holds per point (vectors included).
    pub bytes_per_point: f64,
    /// One entry per `ef` in the sweep.
    pub sweep: Vec<SearchFigures>,
}

/// Why a result line could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    /// A required key is absent.
    #[error("missing key `{0}`")]
    Missing(&'static str),
    /// A value is not a number.
    #[error("key `{key}`: `{value}` is not a number")]
    NotANumber {
        /// The key.
        key: String,
        /// The value found.
        value: String,
    },
    /// Lines of one engine disagree on its name.
    #[error("lines from several engines: `{0}` and `{1}`")]
    MixedEngines(String, String),
    /// No `RESULT` line at all.
    #[error("no RESULT lines in the output")]
    NoResults,
}

/// Formats one sweep point of `run` as a `RESULT` line.
pub fn result_line(run: &EngineRun, f: &SearchFigures) -> String {
    format!(
        "RESULT engine={} ef={} recall={:.4} qps={:.1} p50_us={:.1} p99_us={:.1} cpu_qps={:.1} cpu_p50_us={:.1} cpu_p99_us={:.1} build_s={:.2} build_cpu_s={:.2} bytes_per_point={:.1}",
        run.engine, f.ef, f.recall, f.qps, f.p50_us, f.p99_us, f.cpu_qps, f.cpu_p50_us, f.cpu_p99_us, run.build_s, run.build_cpu_s, run.bytes_per_point
    )
}

/// Parses the `RESULT` lines in `output` (other lines are ignored) into one run.
pub fn parse_results(output: &str) -> Result<EngineRun, ParseError> {
    let mut run: Option<EngineRun> = None;
    for line in output.lines() {
        let Some(rest) = line.trim().strip_prefix("RESULT ") else { continue };
        let pairs: Vec<(&str, &str)> = rest.split_whitespace().filter_map(|kv| kv.split_once('=')).collect();
        let get = |key: &'static str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).ok_or(ParseError::Missing(key));
        let num = |key: &'static str| -> Result<f64, ParseError> {
            let v = get(key)?;
            v.parse().map_err(|_| ParseError::NotANumber { key: key.to_string(), value: v.to_string() })
        };
        let engine = get("engine")?.to_string();
        let figures = SearchFigures {
            ef: num("ef")? as usize,
            recall: num("recall")?,
            qps: num("qps")?,
            p50_us: num("p50_us")?,
            p99_us: num("p99_us")?,
            cpu_qps: num("cpu_qps")?,
            cpu_p50_us: num("cpu_p50_us")?,
            cpu_p99_us: num("cpu_p99_us")?,
        };
        let (build_s, bytes_per_point) = (num("build_s")?, num("bytes_per_point")?);
        let build_cpu_s = num("build_cpu_s").unwrap_or(f64::NAN);
        match &mut run {
            None => run = Some(EngineRun { engine, build_s, build_cpu_s, bytes_per_point, sweep: vec![figures] }),
            Some(r) if r.engine != engine => return Err(ParseError::MixedEngines(r.engine.clone(), engine)),
            Some(r) => r.sweep.push(figures),
        }
    }
    run.ok_or(ParseError::NoResults)
}

/// The CPU-time QPS `run` would reach at `recall`, interpolated linearly between its sweep points;
/// `None` when `recall` lies outside the recall range the sweep covered.
pub fn qps_at_recall(run: &EngineRun, recall: f64) -> Option<f64> {
    let mut points: Vec<(f64, f64)> = run.sweep.iter().map(|f| (f.recall, f.cpu_qps)).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    // A wider search never has to be slower for the same recall: keep the best QPS per recall.
    points.dedup_by(|later, earlier| later.0 == earlier.0);
    let first = points.first()?;
    if recall < first.0 {
        return None;
    }
    if recall == first.0 {
        return Some(first.1);
    }
    points.windows(2).find(|w| w[0].0 <= recall && recall <= w[1].0).map(|w| {
        let t = (recall - w[0].0) / (w[1].0 - w[0].0);
        w[0].1 + t * (w[1].1 - w[0].1)
    })
}

/// The side-by-side table: our sweep and the peer's at the same `ef` (CPU-time QPS, p50, p99,
/// and wall-clock p99), and our CPU-time QPS as a ratio of the peer's at the same `ef` and at
/// equal recall. `extra` rows (name, value) are appended so later figures (snapshot size,
/// write/restore throughput) slot in without a format change.
pub fn table(ours: &EngineRun, peer: Option<&EngineRun>, extra: &[(String, String)]) -> String {
    let mut s = String::new();
    let peer_name = peer.map(|p| p.engine.as_str()).unwrap_or("peer");
    let _ = writeln!(s, "{:>5} | {:^41} | {:^41} | {:^20}", "", ours.engine, peer_name, "our QPS / peer QPS");
    let _ = writeln!(
        s,
        "{:>5} | {:>7} {:>8} {:>7} {:>7} {:>7} | {:>7} {:>8} {:>7} {:>7} {:>7} | {:>7} {:>12}",
        "ef", "recall", "cpu_qps", "cpu_p50", "cpu_p99", "wall99", "recall", "cpu_qps", "cpu_p50", "cpu_p99", "wall99", "same ef", "equal recall"
    );
    for f in &ours.sweep {
        let p = peer.and_then(|p| p.sweep.iter().find(|g| g.ef == f.ef));
        let peer_cols: [String; 5] = match p {
            Some(g) => [
                format!("{:.4}", g.recall),
                format!("{:.0}", g.cpu_qps),
                format!("{:.0}", g.cpu_p50_us),
                format!("{:.0}", g.cpu_p99_us),
                format!("{:.0}", g.p99_us),
            ],
            None => ["-".into(), "-".into(), "-".into(), "-".into(), "-".into()],
        };
        let same_ef = p.map(|g| format!("{:.2}", f.cpu_qps / g.cpu_qps)).unwrap_or_else(|| "-".into());
        let at_recall = peer
            .and_then(|p| qps_at_recall(p, f.recall))
            .map(|q| format!("{:.2}", f.cpu_qps / q))
            .unwrap_or_else(|| "n/a".into());
        let _ = writeln!(
            s,
            "{:>5} | {:>7.4} {:>8.0} {:>7.0} {:>7.0} {:>7.0} | {:>7} {:>8} {:>7} {:>7} {:>7} | {:>7} {:>12}",
            f.ef, f.recall, f.cpu_qps, f.cpu_p50_us, f.cpu_p99_us, f.p99_us,
            peer_cols[0], peer_cols[1], peer_cols[2], peer_cols[3], peer_cols[4], same_ef, at_recall
        );
    }
    let _ = writeln!(s, "latencies in microseconds; cpu_* by thread CPU clock, wall99 by wall clock");
    let _ = writeln!(s, "build_s: {} {:.2}{}", ours.engine, ours.build_s,
        peer.map(|p| format!(", {} {:.2}", p.engine, p.build_s)).unwrap_or_default());
    let _ = writeln!(s, "bytes_per_point: {} {:.0}{}", ours.engine, ours.bytes_per_point,
        peer.map(|p| format!(", {} {:.0}", p.engine, p.bytes_per_point)).unwrap_or_default());
    for (name, value) in extra {
        let _ = writeln!(s, "{name}: {value}");
    }
    s
}

/// One line per target recall (ours vs the peer, both interpolated along their sweeps), then
/// build time and memory as ratios: the figures the ANN goals are stated in.
pub fn summary(ours: &EngineRun, peer: &EngineRun, recalls: &[f64]) -> String {
    let mut s = String::new();
    for &r in recalls {
        let ratio = match (qps_at_recall(ours, r), qps_at_recall(peer, r)) {
            (Some(a), Some(b)) => format!("{:.2}x ({a:.0} vs {b:.0} cpu_qps)", a / b),
            (a, b) => format!("n/a (ours {}, peer {})", fmt_opt(a), fmt_opt(b)),
        };
        let _ = writeln!(s, "RATIO vs {} qps@recall{r}: {ratio}", peer.engine);
    }
    let _ = writeln!(s, "RATIO vs {} build_wall: {:.2}x ({:.2} s vs {:.2} s)", peer.engine, ours.build_s / peer.build_s, ours.build_s, peer.build_s);
    let _ = writeln!(
        s,
        "RATIO vs {} build_cpu: {:.2}x ({:.2} s vs {:.2} s)",
        peer.engine,
        ours.build_cpu_s / peer.build_cpu_s,
        ours.build_cpu_s,
        peer.build_cpu_s
    );
    let _ = writeln!(
        s,
        "RATIO vs {} bytes_per_point: {:.2}x ({:.0} vs {:.0})",
        peer.engine,
        ours.bytes_per_point / peer.bytes_per_point,
        ours.bytes_per_point,
        peer.bytes_per_point
    );
    s
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "out of range".into(), |q| format!("{q:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(ef: usize, recall: f64, qps: f64) -> SearchFigures {
        SearchFigures {
            ef,
            recall,
            qps: qps * 0.9,
            p50_us: 10.0,
            p99_us: 20.0,
            cpu_qps: qps,
            cpu_p50_us: 9.0,
            cpu_p99_us: 15.0,
        }
    }

    fn run(engine: &str, sweep: Vec<SearchFigures>) -> EngineRun {
        EngineRun { engine: engine.into(), build_s: 1.5, build_cpu_s: 1.25, bytes_per_point: 700.0, sweep }
    }

    #[test]
    fn lines_round_trip() {
        let r = run("vecraft-hnsw", vec![fig(16, 0.9, 1000.0), fig(64, 0.99, 400.0)]);
        let text: String = r.sweep.iter().map(|f| result_line(&r, f) + "\nnoise line\n").collect();
        assert_eq!(parse_results(&text).unwrap(), r);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse_results("hello"), Err(ParseError::NoResults));
        assert_eq!(parse_results("RESULT engine=a ef=1"), Err(ParseError::Missing("recall")));
        let bad = "RESULT engine=a ef=1 recall=x qps=1 p50_us=1 p99_us=1 cpu_qps=1 cpu_p50_us=1 cpu_p99_us=1 build_s=1 bytes_per_point=1";
        assert!(matches!(parse_results(bad), Err(ParseError::NotANumber { .. })));
        let a = "RESULT engine=a ef=1 recall=1 qps=1 p50_us=1 p99_us=1 cpu_qps=1 cpu_p50_us=1 cpu_p99_us=1 build_s=1 bytes_per_point=1";
        let b = a.replace("engine=a", "engine=b");
        assert!(matches!(parse_results(&format!("{a}\n{b}")), Err(ParseError::MixedEngines(..))));
    }

    #[test]
    fn interpolates_qps_at_equal_recall() {
        let peer = run("hnswlib", vec![fig(64, 0.95, 2000.0), fig(16, 0.80, 5000.0), fig(128, 0.99, 1000.0)]);
        assert_eq!(qps_at_recall(&peer, 0.80), Some(5000.0));
        assert_eq!(qps_at_recall(&peer, 0.97), Some(1500.0));
        assert_eq!(qps_at_recall(&peer, 0.99), Some(1000.0));
        assert_eq!(qps_at_recall(&peer, 0.5), None);
        assert_eq!(qps_at_recall(&peer, 0.995), None);
        let ours = run("vecraft-hnsw", vec![fig(64, 0.97, 3000.0), fig(512, 0.999, 100.0)]);
        let t = table(&ours, Some(&peer), &[("snapshot_bytes".into(), "123".into())]);
        assert!(t.contains("1.50"), "same-ef ratio 3000/2000:\n{t}");
        assert!(t.contains("2.00"), "equal-recall ratio 3000/1500:\n{t}");
        assert!(t.contains("n/a"));
        assert!(t.contains("snapshot_bytes: 123"));
        let sum = summary(&ours, &peer, &[0.97, 0.5]);
        assert!(sum.contains("qps@recall0.97: 2.00x"), "{sum}");
        assert!(sum.contains("qps@recall0.5: n/a"), "{sum}");
        assert!(sum.contains("build_wall: 1.00x") && sum.contains("build_cpu: 1.00x"), "{sum}");
        assert!(sum.contains("bytes_per_point: 1.00x"), "{sum}");
    }
}
