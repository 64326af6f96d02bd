//! kill -9 under a write load: every answered write survives the restart.

use crate::harness::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zookeeper_client::{Acls, CreateMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answered_writes_survive_kill_9() {
    let mut s = Server::start("");
    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    for round in 0..3 {
        let acked = Arc::new(Mutex::new(Vec::<(String, Vec<u8>)>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..4 {
            let zk = connect(&s).await;
            let (acked, stop) = (acked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && i < 5000 {
                    let path = format!("/r{round}-w{w}-{i}");
                    let data = format!("{round}:{w}:{i}").into_bytes();
                    match zk.create(&path, &data, &opts).await {
                        Ok(_) => acked.lock().unwrap().push((path, data)),
                        Err(_) => break,
                    }
                    i += 1;
                }
                std::mem::forget(zk);
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + 200 * round as u64)).await;
        s = s.restart(); // kill -9 while the writers are busy
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        expected.extend(acked.lock().unwrap().drain(..));
        assert!(!expected.is_empty(), "the load wrote something");
        let zk = connect(&s).await;
        for (path, data) in &expected {
            let (got, _) = zk
                .get_data(path)
                .await
                .unwrap_or_else(|e| panic!("round {round}: answered write {path} lost: {e:?}"));
            assert_eq!(&got, data);
        }
    }
}

fn last_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let v2 = dir.join("data").join("version-2");
    let segs = paddock::log::list_segments(&v2).unwrap();
    segs.last().expect("a txn log segment").1.clone()
}

/// Offsets of every record in a segment.
fn record_offsets(path: &std::path::Path) -> Vec<(u64, usize)> {
    let bytes = std::fs::read(path).unwrap();
    let mut v = vec![];
    paddock::log::scan_segment(&bytes, |off, payload| {
        v.push((off, payload.len()));
        true
    })
    .unwrap();
    v
}

async fn write_nodes(s: &Server, n: usize) {
    let zk = connect(s).await;
    for i in 0..n {
        zk.create(
            &format!("/n{i}"),
            b"v",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    }
    std::mem::forget(zk);
}

/// A crash mid-write leaves a torn last record; a bit flip leaves a corrupt one. Either
/// way the server starts, truncates at the last good record, and says what it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_and_corrupt_tails_are_truncated() {
    for damage in ["torn", "flipped"] {
        let mut s = Server::start("");
        write_nodes(&s, 20).await;
        s.kill9();
        let seg = last_segment(s.dir.path());
        let recs = record_offsets(&seg);
        let (off, len) = *recs.last().unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&seg)
            .unwrap();
        if damage == "torn" {
            f.set_len(off + 12 + len as u64 / 2).unwrap();
        } else {
            use std::os::unix::fs::FileExt;
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, off + 12 + len as u64 - 3).unwrap();
            f.write_all_at(&[b[0] ^ 0x40], off + 12 + len as u64 - 3)
                .unwrap();
        }
        drop(f);
        let s = s.restart();
        assert!(
            s.logged("txn log tail truncated"),
            "{damage}: {}",
            s.log_text()
        );
        let zk = connect(&s).await;
        assert!(
            zk.check_stat("/n18").await.unwrap().is_some(),
            "{damage}: records before the damage stay"
        );
        assert!(
            zk.check_stat("/n19").await.unwrap().is_none(),
            "{damage}: the damaged record is gone"
        );
        // New writes go on after the truncation and survive another restart.
        zk.create(
            "/after",
            b"",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
        std::mem::forget(zk);
        let s = s.restart();
        let zk = connect(&s).await;
        assert!(zk.check_stat("/after").await.unwrap().is_some(), "{damage}");
        assert!(zk.check_stat("/n18").await.unwrap().is_some(), "{damage}");
    }
}

/// Seeded random damage to the last records of the newest segment: truncation at a random
/// byte of one of them, or a random byte flipped in one. The server starts, truncates at
/// the damaged record, and loads nothing from it or after it; new writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_tail_damage_never_loads_a_damaged_record() {
    let mut seed: u64 = 0x7A11_DA4A;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for round in 0..8 {
        let mut s = Server::start("");
        write_nodes(&s, 12).await;
        s.kill9();
        let seg = last_segment(s.dir.path());
        let bytes = std::fs::read(&seg).unwrap();
        // (offset, length, created path) of each create record.
        let mut creates = Vec::new();
        paddock::log::scan_segment(&bytes, |off, payload| {
            if let Ok((_, paddock::txn::Txn::Create { path, .. })) =
                paddock::txn::decode_record(payload)
            {
                creates.push((off, payload.len() as u64, path));
            }
            true
        })
        .unwrap();
        assert_eq!(creates.len(), 12);
        let k = creates.len() - 1 - next(5) as usize;
        let (off, len, _) = creates[k];
        let whole = 12 + len + 1; // checksum and length, payload, trailer
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        let how = if next(2) == 0 {
            // Past the checksum's high half, which is zero (an Adler-32 stored as a long):
            // a tail of zeros only is no torn record, just the end.
            let at = off + 8 + next(whole - 8);
            f.set_len(at).unwrap();
            format!("truncated at byte {at}")
        } else {
            use std::os::unix::fs::FileExt;
            let at = off + next(whole);
            let flip = 1u8 << next(8);
            f.write_all_at(&[bytes[at as usize] ^ flip], at).unwrap();
            format!("bit {flip:#x} flipped at byte {at}")
        };
        drop(f);
        let s = s.restart();
        assert!(
            s.logged("txn log tail truncated"),
            "round {round}, {how}: {}",
            s.log_text()
        );
        let zk = connect(&s).await;
        for (i, (_, _, path)) in creates.iter().enumerate() {
            let present = zk.check_stat(path).await.unwrap().is_some();
            assert_eq!(
                present,
                i < k,
                "round {round}, {how}, damaged record {k}: {path} present={present}"
            );
        }
        zk.create(
            "/after",
            b"",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
        std::mem::forget(zk);
    }
}
