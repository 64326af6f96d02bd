//! kill -9 at arbitrary moments under a mixed write load while snapshots are being taken:
//! after every restart each answered write is there, and nothing half-done is visible.
//! 20 rounds by default; `PADDOCK_CRASH_ROUNDS=N` runs a longer stress.

use crate::harness::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zookeeper_client::{Acls, Client, CreateMode, Error};

const WRITERS: usize = 4;

#[derive(Default)]
struct Seen {
    /// Creates that were answered: (path, data).
    created: Vec<(String, Vec<u8>)>,
    /// Multis sent: (path a, path b, answered).
    multis: Vec<(String, String, bool)>,
    /// Per writer: the last answered setData value of /v/w<N>, and one sent unanswered.
    last_set: Vec<(Option<String>, Option<String>)>,
}

async fn writer(zk: Client, w: usize, round: usize, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) && i < 20_000 {
        match i % 3 {
            0 => {
                let path = format!("/c/r{round}-w{w}-{i}");
                let data = format!("{round}.{w}.{i}").into_bytes();
                match zk.create(&path, &data, &opts).await {
                    Ok(_) => seen.lock().unwrap().created.push((path, data)),
                    Err(_) => break,
                }
            }
            1 => {
                let value = format!("{round}.{i}");
                seen.lock().unwrap().last_set[w].1 = Some(value.clone());
                match zk
                    .set_data(&format!("/v/w{w}"), value.as_bytes(), None)
                    .await
                {
                    Ok(_) => {
                        let mut s = seen.lock().unwrap();
                        s.last_set[w] = (Some(value), None);
                    }
                    Err(_) => break,
                }
            }
            _ => {
                let a = format!("/m/r{round}-w{w}-{i}-a");
                let b = format!("/m/r{round}-w{w}-{i}-b");
                let k = {
                    let mut s = seen.lock().unwrap();
                    s.multis.push((a.clone(), b.clone(), false));
                    s.multis.len() - 1
                };
                let mut m = zk.new_multi_writer();
                m.add_create(&a, b"a", &opts).unwrap();
                m.add_create(&b, b"b", &opts).unwrap();
                match m.commit().await {
                    Ok(_) => seen.lock().unwrap().multis[k].2 = true,
                    Err(_) => break,
                }
            }
        }
        i += 1;
    }
    // Dropping a client whose server died may wait on its reconnect; it is not needed.
    std::mem::forget(zk);
}

async fn exists(zk: &Client, path: &str) -> bool {
    match zk.get_data(path).await {
        Ok(_) => true,
        Err(Error::NoNode) => false,
        Err(e) => panic!("{path}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_writes_and_snapshots_loses_nothing_answered() {
    let rounds: usize = std::env::var("PADDOCK_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // Autopurge runs at every start: the rounds keep the data directory small.
    let mut s =
        Server::start("snapCount=100\nautopurge.purgeInterval=1\nautopurge.snapRetainCount=3");
    {
        let zk = connect(&s).await;
        let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
        for p in ["/c", "/m", "/v"] {
            zk.create(p, b"", &opts).await.unwrap();
        }
        for w in 0..WRITERS {
            zk.create(&format!("/v/w{w}"), b"", &opts).await.unwrap();
        }
    }
    let mut all_created: Vec<(String, Vec<u8>)> = Vec::new();
    let mut snapshots_started = 0;
    let mut snapshots_written = 0;
    let mut last_set: Vec<(Option<String>, Option<String>)> = vec![(None, None); WRITERS];
    for round in 0..rounds {
        let seen = Arc::new(Mutex::new(Seen {
            last_set: last_set.clone(),
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let zk = connect(&s).await;
            tasks.push(tokio::spawn(writer(
                zk,
                w,
                round,
                seen.clone(),
                stop.clone(),
            )));
        }
        // A different moment in each round, the load running all the while.
        tokio::time::sleep(Duration::from_millis(40 + (round as u64 * 37) % 220)).await;
        // Snapshots started under this round's load (a restart after a replayed tail
        // starts one at its first txn), whether or not they got to finish before the kill.
        let log = s.log_text();
        snapshots_started += log.matches("writes it; the writer paused").count();
        snapshots_written += log.matches("written: ").count();
        s = s.restart();
        stop.store(true, Ordering::Relaxed);
        // Recovery recomputes ZooKeeper's tree digest and checks it against the one the
        // snapshot and each replayed record carry.
        assert!(
            s.logged("digests checked, 0 mismatched"),
            "round {round}: {}",
            s.log_text()
        );
        for t in tasks {
            let _ = t.await;
        }
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        let zk = match tokio::time::timeout(Duration::from_secs(8), connect(&s)).await {
            Ok(zk) => zk,
            Err(_) => panic!(
                "round {round}: no session after the restart: {}",
                s.log_text()
            ),
        };
        for (p, d) in &seen.created {
            let (data, _) = zk
                .get_data(p)
                .await
                .unwrap_or_else(|e| panic!("round {round}: answered create {p} lost: {e}"));
            assert_eq!(&data, d, "round {round}: {p}");
        }
        for (a, b, answered) in &seen.multis {
            let (ea, eb) = (exists(&zk, a).await, exists(&zk, b).await);
            assert_eq!(
                ea, eb,
                "round {round}: multi half applied: {a} {ea}, {b} {eb}"
            );
            if *answered {
                assert!(ea, "round {round}: answered multi {a} lost");
            }
        }
        for (w, (acked, sent)) in seen.last_set.iter().enumerate() {
            let (data, _) = zk.get_data(&format!("/v/w{w}")).await.unwrap();
            let now = String::from_utf8(data).unwrap();
            let ok = acked.as_deref().unwrap_or("") == now || sent.as_deref() == Some(&now);
            assert!(
                ok,
                "round {round}: /v/w{w} = {now:?}, answered {acked:?}, unanswered {sent:?}"
            );
            // An unanswered value that made it is now the one to expect.
            last_set[w] = (Some(now), None);
        }
        all_created.extend(seen.created);
        std::mem::forget(zk);
    }
    // Every answered create of every round, after all the restarts.
    let zk = connect(&s).await;
    let (children, _) = zk.get_children("/c").await.unwrap();
    let present: BTreeSet<String> = children.into_iter().map(|c| format!("/c/{c}")).collect();
    for (p, _) in &all_created {
        assert!(present.contains(p), "{p} lost by a later round");
    }
    // The kills hit snapshots in progress: snapshots were started in most rounds, and
    // some (how many is a matter of throughput) were finished and went through a restart.
    assert!(
        snapshots_started >= rounds / 2 && (snapshots_written >= 1 || rounds < 4),
        "snapshots were taken during the rounds: {snapshots_started} started, \
         {snapshots_written} written in {rounds} rounds"
    );
}
