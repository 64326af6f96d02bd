//! Issue 13, item 2: sessions end cleanly everywhere. No ephemeral outlives its
//! session, even one created in the same pipeline as the close (ZooKeeper adds the
//! session's ephemerals still in flight to the close's delete list); a request
//! pipelined behind closeSession never overtakes the close's reply.

use crate::ensemble::Ensemble;
use crate::harness::{create_body, jute_string, Raw, Server};
use std::time::{Duration, Instant};

const CREATE: i32 = 1;
const EXISTS: i32 = 3;
const GET_DATA: i32 = 4;
const CLOSE_SESSION: i32 = -11;

/// `n` raw sessions at `addrs` (cycled), each pipelining create(`/e/<tag><i>`, EPHEMERAL) and
/// closeSession without waiting; returns how many creates were answered OK. Every
/// session's replies must come in xid order, the close's among them.
fn create_then_close(addrs: &[String], n: usize, tag: &str) -> usize {
    let mut raws: Vec<Raw> = (0..n)
        .map(|i| Raw::connect_addr(&addrs[i % addrs.len()]))
        .collect();
    for (i, r) in raws.iter_mut().enumerate() {
        let create = create_body(&format!("/e/{tag}{i}"), b"x", 1);
        r.send_all(&[(1, CREATE, &create), (2, CLOSE_SESSION, &[])]);
    }
    let mut created = 0;
    for (i, r) in raws.iter_mut().enumerate() {
        let (xid, _, err, _) = r.reply().unwrap_or_else(|| panic!("session {i}: no reply"));
        assert_eq!(xid, 1, "session {i}: the create's reply comes first");
        created += usize::from(err == 0);
        let (xid, _, err, _) = r
            .reply()
            .unwrap_or_else(|| panic!("session {i}: the close was never answered"));
        assert_eq!((xid, err), (2, 0), "session {i}: the close's reply");
    }
    created
}

fn ephemerals_left(addr: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = crate::ensemble::connect(addr).await;
        c.sync("/").await.unwrap();
        c.list_children("/e").await.unwrap()
    })
}

fn make_parent(addr: &str) {
    let mut r = Raw::connect_addr(addr);
    r.send(1, CREATE, &create_body("/e", b"", 0));
    assert_eq!(r.reply().unwrap().2, 0);
}

#[test]
fn an_ephemeral_pipelined_with_its_close_is_gone_standalone() {
    let s = Server::start("");
    make_parent(&s.addr());
    let created = create_then_close(&[s.addr()], 50, "");
    let left = ephemerals_left(&s.addr());
    assert!(left.is_empty(), "{created} created, left: {left:?}");
}

/// Through the leader and through both followers: the creates are staged (or forwarded)
/// and not yet committed when the close is prepared.
#[test]
fn an_ephemeral_pipelined_with_its_close_is_gone_in_an_ensemble() {
    let e = Ensemble::start(3, 0, 27900, "");
    let leader = e.settled(Duration::from_secs(20));
    let leader_addr = e.member(leader).client.clone();
    make_parent(&leader_addr);
    let followers: Vec<String> = e
        .members
        .iter()
        .filter(|m| m.id != leader)
        .map(|m| m.client.clone())
        .collect();
    let by_leader = create_then_close(std::slice::from_ref(&leader_addr), 50, "l");
    let by_followers = create_then_close(&followers, 50, "f");
    assert_eq!((by_leader, by_followers), (50, 50), "creates refused");
    for m in &e.members {
        let left = ephemerals_left(&m.client);
        assert!(
            left.is_empty(),
            "member {} (leader {leader}): {} of {by_leader}+{by_followers} ephemerals left: \
             {left:?}",
            m.id,
            left.len()
        );
    }
}

/// A read and a write pipelined behind closeSession: the close's reply comes first, and
/// whatever follows it (if anything) follows in xid order.
#[test]
fn requests_pipelined_behind_close_session_do_not_overtake_it() {
    let s = Server::start("");
    for round in 0..20 {
        let mut r = Raw::connect(&s);
        let mut get = jute_string("/");
        get.push(0);
        let create = create_body(&format!("/after-close-{round}"), b"", 0);
        r.send_all(&[
            (1, CLOSE_SESSION, &[]),
            (2, GET_DATA, &get),
            (3, CREATE, &create),
            (4, EXISTS, &get),
        ]);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut xids = Vec::new();
        while let Some((xid, _, err, _)) = r.reply() {
            xids.push((xid, err));
            assert!(Instant::now() < deadline);
        }
        assert_eq!(
            xids.first().copied(),
            Some((2 - 1, 0)),
            "round {round}: the close's reply first, OK: {xids:?}"
        );
        assert!(
            xids.windows(2).all(|w| w[0].0 < w[1].0),
            "round {round}: replies out of xid order: {xids:?}"
        );
        assert!(
            xids[1..].iter().all(|&(_, err)| err != 0),
            "round {round}: a request after the close succeeded: {xids:?}"
        );
    }
}
