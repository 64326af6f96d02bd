//! Issue 16: TLS between servers (`sslQuorum=true`, `ssl.quorum.*`). A 3-member ensemble
//! whose election and quorum ports speak only mutual TLS elects, replicates and fails
//! over; a member whose certificate another CA signed, or one not valid for its address,
//! is kept out and the others say why; the ensemble keeps serving.

use crate::ensemble::{all_have, connect, create_surely, Ensemble};
use crate::tls::{write_stores, Ca};
use std::collections::BTreeSet;
use std::time::Duration;

fn quorum_lines(ks: &std::path::Path, ts: &std::path::Path) -> String {
    format!(
        "sslQuorum=true\nssl.quorum.keyStore.location={}\nssl.quorum.keyStore.password=s3cret-Store-pw\n\
         ssl.quorum.trustStore.location={}\nssl.quorum.trustStore.password=s3cret-Store-pw\n",
        ks.display(),
        ts.display()
    )
}

/// Waits up to 30 s for `cond`.
fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Points member `id`'s key store at `ks` and restarts it.
fn swap_key_store(e: &mut Ensemble, id: i64, from: &std::path::Path, to: &std::path::Path) {
    let m = e.member_mut(id);
    let text = std::fs::read_to_string(&m.cfg).unwrap();
    let text = text.replace(
        &format!("ssl.quorum.keyStore.location={}", from.display()),
        &format!("ssl.quorum.keyStore.location={}", to.display()),
    );
    std::fs::write(&m.cfg, text).unwrap();
    m.restart();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_over_quorum_tls_elects_replicates_fails_over_and_keeps_strangers_out() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Quorum CA");
    let members = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let good = ca.leaf("member", &members, false);
    let (ks, ts) = write_stores(dir.path(), "member", "p12", &good, &ca.cert);
    let mut e = Ensemble::start(3, 0, 28200, &quorum_lines(&ks, &ts));
    assert_eq!(e.settled(Duration::from_secs(30)), 3);
    for id in 1..=3 {
        assert!(
            e.member(id)
                .log_text()
                .contains("sslQuorum: TLS on the election and quorum ports"),
            "{}",
            e.member(id).log_text()
        );
    }
    let followers = format!("{},{}", e.member(1).client, e.member(2).client);
    let c = connect(&followers).await;
    c.create(
        "/q",
        b"",
        &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
    )
    .await
    .unwrap();
    let mut acked = BTreeSet::new();
    for i in 0..100 {
        create_surely(&c, &format!("/q/{i}")).await.unwrap();
        acked.insert(i.to_string());
    }
    all_have(&e, "/q", &acked).await;

    // Fail over: the leader is killed, the other two elect over TLS and go on.
    e.member_mut(3).kill9();
    for i in 100..150 {
        create_surely(&c, &format!("/q/{i}")).await.unwrap();
        acked.insert(i.to_string());
    }
    let leader = e.settled(Duration::from_secs(30));
    assert!(leader == 1 || leader == 2, "new leader {leader}");
    all_have(&e, "/q", &acked).await;

    // Member 3 comes back with a certificate of another CA: kept out, and said why.
    let rogue = Ca::new("Rogue CA").leaf("member", &members, false);
    let (rogue_ks, _) = write_stores(dir.path(), "rogue", "p12", &rogue, &ca.cert);
    swap_key_store(&mut e, 3, &ks, &rogue_ks);
    let other = if leader == 1 { 2 } else { 1 };
    let refusals = |id: i64| e.member(id).log_text().matches("refused a").count();
    wait_for(|| refusals(leader) > 0 && refusals(other) > 0, "refusals");
    assert_ne!(
        e.member(3).mode(),
        "follower",
        "a member with a rogue certificate joined"
    );
    for i in 150..170 {
        create_surely(&c, &format!("/q/{i}")).await.unwrap();
        acked.insert(i.to_string());
    }

    // A certificate of the right CA but for another address (hostname verification).
    let elsewhere = ca.leaf("member", &["127.0.0.9"], false);
    let (elsewhere_ks, _) = write_stores(dir.path(), "elsewhere", "p12", &elsewhere, &ca.cert);
    swap_key_store(&mut e, 3, &rogue_ks, &elsewhere_ks);
    let not_valid = || {
        let log = e.member(leader).log_text() + &e.member(other).log_text();
        log.contains("is not valid for 127.0.0.")
    };
    wait_for(not_valid, "a refusal for the certificate's address");
    assert_ne!(
        e.member(3).mode(),
        "follower",
        "a member with another address's certificate joined"
    );

    // Its own certificate again: it joins and catches up.
    swap_key_store(&mut e, 3, &elsewhere_ks, &ks);
    e.member(3).wait_mode("follower");
    all_have(&e, "/q", &acked).await;
    for id in 1..=3 {
        assert!(
            !e.member(id).log_text().contains("s3cret-Store-pw"),
            "a password was logged"
        );
    }
}
