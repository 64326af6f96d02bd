//! Containers are reaped when their last child goes; TTL nodes when their TTL passes.

use crate::harness::*;
use std::time::Duration;
use zookeeper_client::{Acls, CreateMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_used_containers_and_expired_ttl_nodes_go() {
    let s = Server::start("");
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    zk.create(
        "/c",
        b"",
        &CreateMode::Container.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    zk.create(
        "/never-used",
        b"",
        &CreateMode::Container.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    zk.create("/c/child", b"", &opts).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        zk.check_stat("/c").await.unwrap().is_some(),
        "a container with a child stays"
    );
    zk.delete("/c/child", None).await.unwrap();
    eventually("container reaped", || async {
        zk.check_stat("/c").await.unwrap().is_none()
    })
    .await;
    assert!(
        zk.check_stat("/never-used").await.unwrap().is_some(),
        "a never-used container stays"
    );

    let ttl = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_millis(300));
    // One multi: /t never exists childless, however late a second request would be (the
    // reaper, every 200 ms, would take a childless /t as soon as its 300 ms are up).
    let mut m = zk.new_multi_writer();
    m.add_create("/t", b"", &ttl).unwrap();
    m.add_create("/t/kid", b"", &opts).unwrap();
    m.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        zk.check_stat("/t").await.unwrap().is_some(),
        "a TTL node with children stays"
    );
    zk.delete("/t/kid", None).await.unwrap();
    eventually("TTL node reaped", || async {
        zk.check_stat("/t").await.unwrap().is_none()
    })
    .await;
}
