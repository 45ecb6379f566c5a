//! The async WAL front: group commit through the writer thread, back-pressure, durability watch,
//! prefix deletion through the queue.

use vecraft_runtime::wal::{Wal, WalOptions, spawn_writer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_become_durable_in_batches_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        segment_size: 8 << 10,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    let (mut handle, join) = spawn_writer(wal, 64, 256).unwrap();
    let mut last = 0;
    for i in 0..2000u64 {
        last = handle.append(i.to_le_bytes().to_vec()).await.unwrap();
        assert_eq!(last, i + 1);
    }
    handle.wait_durable(last).await.unwrap();
    let d = handle.durable().borrow().clone();
    assert_eq!((d.seq, d.records, d.failed.clone()), (2000, 2000, None));
    // Group commit: far fewer fsyncs than records (the queue fills while an fsync runs).
    assert!(d.batches < d.records, "{d:?}");
    // Prefix deletion goes through the queue, after what was queued before it.
    let removed = handle.truncate_prefix(1000).await.unwrap();
    assert!(removed > 0);
    drop(handle);
    join.join().unwrap();
    let (wal, rec) = Wal::open(dir.path(), opts).unwrap();
    assert!(rec.is_intact());
    let first = rec.records[0].seq;
    assert!(first > 1 && first <= 1000, "first kept seq {first}");
    for r in &rec.records {
        assert_eq!(r.payload, (r.seq - 1).to_le_bytes());
    }
    assert_eq!(rec.records.last().unwrap().seq, 2000);
    assert_eq!(wal.next_seq(), 2001);
}

#[tokio::test]
async fn try_append_reports_a_full_queue_and_oversized_records_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        max_record_len: 4,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir.path(), opts).unwrap();
    let (mut handle, join) = spawn_writer(wal, 1, 16).unwrap();
    // Fill until the bounded queue refuses; nothing is lost or reordered meanwhile.
    let mut accepted = Vec::new();
    for _ in 0..10_000 {
        match handle.try_append(vec![1, 2]).unwrap() {
            Some(seq) => accepted.push(seq),
            None => break,
        }
    }
    assert!(accepted.len() < 10_000, "queue never filled");
    handle
        .wait_durable(*accepted.last().unwrap())
        .await
        .unwrap();
    // An oversized record is refused without using a seq; the writer keeps going.
    let next = handle.next_seq();
    let err = handle.append(vec![0; 5]).await.unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
    assert_eq!(handle.append(vec![9]).await.unwrap(), next);
    handle.wait_durable(next).await.unwrap();
    drop(handle);
    join.join().unwrap();
    let (_, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(rec.records.len() as u64, next);
    assert_eq!(rec.records.last().unwrap().payload, vec![9]);
}
