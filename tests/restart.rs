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
