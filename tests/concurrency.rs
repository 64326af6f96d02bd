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

/// One session pipelines writes and plain reads without waiting: every read sees the
/// write just before it and not the one after, failed writes included, and every reply
/// comes back in request order. (Standalone, a read behind its session's writes is
/// answered by the writer right after the last of them applies; the writes queued behind
/// the read go on meanwhile.)
#[test]
fn pipelined_reads_see_their_sessions_writes_in_order() {
    let s = Server::start("");
    pipeline_writes_and_reads(&mut Raw::connect(&s), "/pipe", false, 400);
}

/// The same with reads that set a watch: they go to the writer, where they must still
/// wait for the session's writes before them.
#[test]
fn pipelined_watch_reads_see_their_sessions_writes_in_order() {
    let s = Server::start("");
    pipeline_writes_and_reads(&mut Raw::connect(&s), "/pipe", true, 400);
}

/// In an ensemble, on the leader and on a follower, with and without watches: a write
/// waits for a quorum, and the reads behind it wait for its answer.
#[test]
fn pipelined_reads_see_their_sessions_writes_in_order_in_an_ensemble() {
    let e = crate::ensemble::Ensemble::start(3, 0, 27420, "");
    let leader = e.settled(std::time::Duration::from_secs(30));
    let follower = if leader == 1 { 2 } else { 1 };
    for (id, watch) in [
        (leader, false),
        (leader, true),
        (follower, false),
        (follower, true),
    ] {
        let mut a = Raw::connect_addr(&e.member(id).client);
        let root = format!("/pipe-{id}-{watch}");
        pipeline_writes_and_reads(&mut a, &root, watch, 120);
    }
    // A sync pipelined behind a write, on a follower: its answer comes after the write's
    // (the leader's SYNC must not overtake the COMMIT it waited for).
    let mut a = Raw::connect_addr(&e.member(follower).client);
    a.sock
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    for i in 0..50 {
        let xid = 1000 + 2 * i;
        a.send(xid, 1, &create_body(&format!("/sync-{i}"), b"x", 0));
        a.send(xid + 1, 9, &jute_string("/"));
        for want in [xid, xid + 1] {
            let (got, _, err, _) = a.reply().expect("a reply");
            assert_eq!((got, err), (want, 0), "create then sync, round {i}");
        }
    }
}

/// Pipelines `n` pairs (a write, then a getData of what it wrote, with `watch`) on one
/// connection and checks every reply's xid, error and data.
fn pipeline_writes_and_reads(a: &mut Raw, root: &str, watch: bool, n: i32) {
    a.sock
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let create = |path: &str, data: &[u8]| create_body(path, data, 0);
    let set = |path: &str, data: &[u8]| {
        let mut b = jute_string(path);
        b.extend_from_slice(&(data.len() as i32).to_be_bytes());
        b.extend_from_slice(data);
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b
    };
    let get = |path: &str| {
        let mut b = jute_string(path);
        b.push(u8::from(watch));
        b
    };
    a.send(1, 1, &create(root, b"start"));
    assert_eq!(a.reply().unwrap().2, 0);
    let missing = format!("{root}-missing");
    let mut xid = 10;
    let mut want = Vec::new(); // (xid, op, expected err, expected data for reads)
    for i in 0..n {
        let v = format!("v{i}");
        match i % 4 {
            // A write, then a read of it.
            0 | 1 => {
                a.send(xid, 5, &set(root, v.as_bytes()));
                want.push((xid, 5, 0, None));
                xid += 1;
                a.send(xid, 4, &get(root));
                want.push((xid, 4, 0, Some(v.clone())));
                xid += 1;
            }
            // A failing write (no such node), then a read: the value stays.
            2 => {
                a.send(xid, 5, &set(&missing, b"x"));
                want.push((xid, 5, -101, None));
                xid += 1;
                let last = format!("v{}", i - 1);
                a.send(xid, 4, &get(root));
                want.push((xid, 4, 0, Some(last)));
                xid += 1;
            }
            // A create, then a read of the new node.
            _ => {
                let p = format!("{root}-{i}");
                a.send(xid, 1, &create(&p, v.as_bytes()));
                want.push((xid, 1, 0, None));
                xid += 1;
                a.send(xid, 4, &get(&p));
                want.push((xid, 4, 0, Some(v.clone())));
                xid += 1;
            }
        }
    }
    for (xid, op, err, data) in want {
        // Watch events (type -1 xid) may come between: they are not replies.
        let (got_xid, _, got_err, body) = loop {
            let r = a.reply().expect("a reply");
            if r.0 != -1 {
                break r;
            }
        };
        assert_eq!(
            (got_xid, got_err),
            (xid, err),
            "reply to op {op} under {root} (watch {watch})"
        );
        if let Some(d) = data {
            let len = i32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
            assert_eq!(
                std::str::from_utf8(&body[4..4 + len]).unwrap(),
                d,
                "getData xid {xid} under {root} (watch {watch})"
            );
        }
    }
}
