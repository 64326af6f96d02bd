//! Many sessions race: no sequence number and no version is ever handed out twice.

use crate::harness::*;
use std::collections::HashSet;
use zookeeper_client::{Acls, CreateMode, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequence_numbers_and_versions_are_unique() {
    let s = Server::start("");
    let setup = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    setup.create("/race", b"0", &opts).await.unwrap();
    const CLIENTS: usize = 16;
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let zk = connect(&s).await;
        tasks.push(tokio::spawn(async move {
            let seq = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
            let mut created = Vec::new();
            let mut won_versions = Vec::new();
            for i in 0..EACH {
                let (_, n) = zk
                    .create("/race/n-", format!("{c}-{i}").as_bytes(), &seq)
                    .await
                    .unwrap();
                created.push(n.to_string());
                // Conditional update: read the version, try to bump it.
                let (_, st) = zk.get_data("/race").await.unwrap();
                match zk
                    .set_data("/race", format!("{c}-{i}").as_bytes(), Some(st.version))
                    .await
                {
                    Ok(new) => {
                        assert_eq!(new.version, st.version + 1);
                        won_versions.push(new.version);
                    }
                    Err(Error::BadVersion) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            (created, won_versions, zk)
        }));
    }
    let mut all_seq = HashSet::new();
    let mut all_versions = HashSet::new();
    let mut clients = Vec::new();
    for t in tasks {
        let (created, won, zk) = t.await.unwrap();
        for n in created {
            assert!(all_seq.insert(n.clone()), "sequence {n} handed out twice");
        }
        for v in won {
            assert!(all_versions.insert(v), "version {v} won twice");
        }
        clients.push(zk);
    }
    assert_eq!(all_seq.len(), CLIENTS * EACH);
    let (_, st) = setup.get_data("/race").await.unwrap();
    assert_eq!(
        st.version as usize,
        all_versions.len(),
        "every successful conditional set is one version"
    );
    let kids = setup.list_children("/race").await.unwrap();
    assert_eq!(kids.len(), CLIENTS * EACH);
    drop(clients);
    eventually("ephemerals gone when their sessions close", || async {
        setup.list_children("/race").await.unwrap().is_empty()
    })
    .await;
}
