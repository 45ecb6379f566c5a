//! Crash test: a child process appends and fsyncs in a loop, printing each acknowledged seq; the
//! parent SIGKILLs it mid-stream, recovers, and checks that every acknowledged record survived.
//! Three rounds on the same directory, so recovery after recovery is exercised too.
//!
//! The child is this same test binary re-run on the ignored test `crash_child_writer`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use vecraft_runtime::wal::{Wal, WalOptions};

const DIR_ENV: &str = "VECRAFT_WAL_CRASH_DIR";

fn payload(seq: u64) -> Vec<u8> {
    let len = (seq * 37 % 700) as usize;
    let mut p = seq.to_le_bytes().to_vec();
    p.extend((0..len).map(|i| (seq as u8) ^ (i as u8)));
    p
}

fn opts() -> WalOptions {
    // Small segments so the kill also lands around segment rolls.
    WalOptions {
        segment_size: 32 << 10,
        ..WalOptions::default()
    }
}

#[test]
#[ignore = "helper process for kill9_mid_write_keeps_every_acknowledged_record"]
fn crash_child_writer() {
    let dir = std::env::var(DIR_ENV).expect("run by the parent test only");
    let (mut wal, rec) = Wal::open(&dir, opts()).unwrap();
    assert!(rec.is_intact(), "{rec:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut stdout = std::io::stdout().lock();
    let mut round = 0u64;
    while std::time::Instant::now() < deadline {
        let first = wal.next_seq();
        let n = 1 + round % 13;
        let batch: Vec<Vec<u8>> = (first..first + n).map(payload).collect();
        let last = wal.append_batch(&batch).unwrap().unwrap();
        writeln!(stdout, "ACK {last}").unwrap();
        stdout.flush().unwrap();
        round += 1;
    }
}

#[test]
fn kill9_mid_write_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked_max = 0u64;
    for (round, kill_after) in [25usize, 80, 140].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acks = 0;
        while acks < kill_after {
            let line = lines.next().expect("child ended early").unwrap();
            if let Some(seq) = line.strip_prefix("ACK ") {
                acked_max = acked_max.max(seq.parse().unwrap());
                acks += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        // Acks the child printed before dying count too.
        for line in lines {
            if let Some(seq) = line.unwrap().strip_prefix("ACK ") {
                acked_max = acked_max.max(seq.parse().unwrap());
            }
        }
        child.wait().unwrap();

        let (wal, rec) = Wal::open(dir.path(), opts()).unwrap();
        assert!(rec.is_intact(), "round {round}: {:?}", rec.corruption);
        let seqs: Vec<u64> = rec.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs.first(), Some(&1));
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "round {round}: gap in recovered seqs"
        );
        assert!(
            *seqs.last().unwrap() >= acked_max,
            "round {round}: acked {acked_max}, recovered {:?}",
            seqs.last()
        );
        for r in &rec.records {
            assert_eq!(
                r.payload,
                payload(r.seq),
                "round {round}: payload of {}",
                r.seq
            );
        }
        eprintln!(
            "round {round}: acked up to {acked_max}, recovered up to {:?}, torn bytes cut {}",
            seqs.last(),
            rec.bytes_cut()
        );
        drop(wal);
    }
}
