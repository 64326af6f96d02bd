//! Every watch kind: one-shot data/exist/child, persistent, persistent recursive, removal,
//! and re-arming with setWatches after a reconnect.

#![allow(deprecated)] // PersistentWatcher::remove sends removeWatches, which is what we test

use crate::harness::*;
use std::time::Duration;
use tokio::time::timeout;
use zookeeper_client::{Acls, AddWatchMode, CreateMode, EventType};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_watches_fire_once() {
    let s = Server::start("");
    let zk = connect(&s).await;
    let other = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());

    // exists on a missing node: NodeCreated.
    let w = match zk.check_and_watch_stat("/w").await.unwrap() {
        (None, w) => w,
        _ => panic!("/w should not exist"),
    };
    other.create("/w", b"1", &opts).await.unwrap();
    let ev = timeout(T, w.changed()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/w")
    );

    // getData: NodeDataChanged, and the event comes before the data it announces.
    let (_, _, w) = zk.get_and_watch_data("/w").await.unwrap();
    other.set_data("/w", b"2", None).await.unwrap();
    let ev = timeout(T, w.changed()).await.unwrap();
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
    assert_eq!(zk.get_data("/w").await.unwrap().0, b"2");

    // getChildren: NodeChildrenChanged on create, then (re-armed) on delete.
    let (_, _, w) = zk.get_and_watch_children("/w").await.unwrap();
    other.create("/w/k", b"", &opts).await.unwrap();
    let ev = timeout(T, w.changed()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, "/w")
    );
    let (_, _, w) = zk.get_and_watch_children("/w").await.unwrap();
    other.delete("/w/k", None).await.unwrap();
    assert_eq!(
        timeout(T, w.changed()).await.unwrap().event_type,
        EventType::NodeChildrenChanged
    );

    // getData then delete: NodeDeleted.
    let (_, _, w) = zk.get_and_watch_data("/w").await.unwrap();
    other.delete("/w", None).await.unwrap();
    assert_eq!(
        timeout(T, w.changed()).await.unwrap().event_type,
        EventType::NodeDeleted
    );
    assert_eq!(
        crate::harness::four(&s, "wchs").lines().last().unwrap(),
        "Total watches:0",
        "fired watches are gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_and_recursive_watches_stay() {
    let s = Server::start("");
    let zk = connect(&s).await;
    let other = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    other.create("/p", b"", &opts).await.unwrap();
    let mut pw = zk.watch("/p", AddWatchMode::Persistent).await.unwrap();
    let mut rw = zk
        .watch("/p", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    other.set_data("/p", b"1", None).await.unwrap();
    other.create("/p/a", b"", &opts).await.unwrap();
    other.create("/p/a/b", b"", &opts).await.unwrap();
    other.set_data("/p/a/b", b"x", None).await.unwrap();
    other.delete("/p/a/b", None).await.unwrap();
    other.set_data("/p", b"2", None).await.unwrap();

    let mut got = vec![];
    for _ in 0..3 {
        let e = timeout(T, pw.changed()).await.unwrap();
        got.push((e.event_type, e.path));
    }
    assert_eq!(
        got,
        vec![
            (EventType::NodeDataChanged, "/p".to_string()),
            (EventType::NodeChildrenChanged, "/p".to_string()),
            (EventType::NodeDataChanged, "/p".to_string())
        ]
    );
    let mut got = vec![];
    for _ in 0..6 {
        let e = timeout(T, rw.changed()).await.unwrap();
        got.push((e.event_type, e.path));
    }
    use EventType::*;
    let want: Vec<(EventType, String)> = [
        (NodeDataChanged, "/p"),
        (NodeCreated, "/p/a"),
        (NodeCreated, "/p/a/b"),
        (NodeDataChanged, "/p/a/b"),
        (NodeDeleted, "/p/a/b"),
        (NodeDataChanged, "/p"),
    ]
    .into_iter()
    .map(|(e, p)| (e, p.to_string()))
    .collect();
    assert_eq!(got, want, "recursive watches never see NodeChildrenChanged");
    pw.remove().await.unwrap();
    rw.remove().await.unwrap();
    assert_eq!(
        crate::harness::four(&s, "wchs").lines().last().unwrap(),
        "Total watches:0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_removal_and_wch_commands() {
    let s = Server::start("");
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    zk.create("/r", b"", &opts).await.unwrap();
    let (_, _, w) = zk.get_and_watch_data("/r").await.unwrap();
    let wchp = four(&s, "wchp");
    assert!(wchp.starts_with("/r\n\t0x"), "{wchp}");
    let wchc = four(&s, "wchc");
    assert!(
        wchc.contains(&format!("0x{:x}\n\t/r", zk.session_id().0)),
        "{wchc}"
    );
    w.remove().await.unwrap();
    assert!(four(&s, "wchs").ends_with("Total watches:0\n"));
}

/// Raw setWatches: a data watch on a node that changed after relativeZxid fires at once;
/// a child watch on an unchanged node is re-armed and fires on the next change.
#[test]
fn set_watches_rearms_and_catches_up() {
    let s = Server::start("");
    let mut a = Raw::connect(&s);
    let mk = |path: &str| create_body(path, b"", 0);
    a.send(1, 1, &mk("/x"));
    assert_eq!(a.reply().unwrap().2, 0);
    a.send(2, 1, &mk("/y"));
    let (_, z1, e, _) = a.reply().unwrap();
    assert_eq!(e, 0);
    let mut sd = jute_string("/x");
    sd.extend_from_slice(&4i32.to_be_bytes());
    sd.extend_from_slice(b"new!");
    sd.extend_from_slice(&(-1i32).to_be_bytes());
    a.send(3, 5, &sd);
    a.reply().unwrap();

    let mut b = Raw::connect(&s);
    let mut body = z1.to_be_bytes().to_vec();
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend(jute_string("/x")); // data watch: /x changes after z1
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend(jute_string("/gone")); // exist watch on a missing node: registered
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend(jute_string("/y")); // child watch, unchanged: registered
    b.send(-8, 101, &body);
    let f = b.reply().unwrap();
    assert_eq!(f.0, -1, "the catch-up event comes first");
    assert_eq!(&f.3[0..4], &3i32.to_be_bytes(), "NodeDataChanged");
    let (xid, _, err, _) = b.reply().unwrap();
    assert_eq!((xid, err), (-8, 0));
    a.send(4, 1, &mk("/y/c"));
    a.reply().unwrap();
    let (xid, zxid, _, ev) = b.reply().unwrap();
    assert_eq!((xid, zxid), (-1, -1));
    assert_eq!(&ev[0..4], &4i32.to_be_bytes(), "NodeChildrenChanged on /y");
    a.send(5, 1, &mk("/gone"));
    a.reply().unwrap();
    let (xid, _, _, ev) = b.reply().unwrap();
    assert_eq!(xid, -1);
    assert_eq!(&ev[0..4], &1i32.to_be_bytes(), "NodeCreated on /gone");
}

/// Sends one request and reads up to its reply: (err, the watch events that came first
/// as (type, path)).
fn call(r: &mut Raw, xid: i32, op: i32, body: &[u8]) -> (i32, Vec<(i32, String)>) {
    r.send(xid, op, body);
    let mut events = Vec::new();
    loop {
        let (x, _, err, b) = r.reply().expect("answered on a live connection");
        if x == -1 {
            events.push(notification(&b));
            continue;
        }
        assert_eq!(x, xid);
        return (err, events);
    }
}

fn path_type(path: &str, t: i32) -> Vec<u8> {
    let mut b = jute_string(path);
    b.extend_from_slice(&t.to_be_bytes());
    b
}

/// Issue 14, section 3: a persistent (or recursive) watch is in both of ZooKeeper's
/// watch tables, so checkWatches and removeWatches of type Data or Children find it
/// (before: NOWATCHER), and removing one half leaves the other firing. A watcher type
/// ZooKeeper 3.8 does not know answers MarshallingError and keeps the connection.
#[test]
fn check_and_remove_watches_find_each_half_of_a_persistent_watch() {
    let s = Server::start("");
    let mut r = Raw::connect(&s);
    let (data, children, any) = (2, 1, 3);
    assert_eq!(call(&mut r, 1, 1, &create_body("/pw", b"", 0)).0, 0);
    assert_eq!(call(&mut r, 2, 106, &path_type("/pw", 0)).0, 0);
    for (i, t) in [data, children, any].into_iter().enumerate() {
        assert_eq!(call(&mut r, 10 + i as i32, 17, &path_type("/pw", t)).0, 0);
    }
    // The data half goes: no DataChanged any more, but ChildrenChanged still comes.
    assert_eq!(call(&mut r, 20, 18, &path_type("/pw", data)).0, 0);
    assert_eq!(call(&mut r, 21, 18, &path_type("/pw", data)).0, -121);
    let mut set = jute_string("/pw");
    set.extend_from_slice(&1i32.to_be_bytes());
    set.push(b'x');
    set.extend_from_slice(&(-1i32).to_be_bytes());
    let (err, events) = call(&mut r, 22, 5, &set);
    assert_eq!((err, events), (0, vec![]));
    // The event comes before the reply that shows its change.
    let (err, events) = call(&mut r, 23, 1, &create_body("/pw/c", b"", 0));
    assert_eq!(err, 0);
    assert_eq!(events, vec![(4, "/pw".to_string())], "ChildrenChanged only");
    assert_eq!(call(&mut r, 26, 18, &path_type("/pw", children)).0, 0);
    assert_eq!(call(&mut r, 27, 17, &path_type("/pw", any)).0, -121);

    // A recursive watch is in the child table too.
    assert_eq!(call(&mut r, 30, 106, &path_type("/pw", 1)).0, 0);
    assert_eq!(call(&mut r, 31, 17, &path_type("/pw", children)).0, 0);
    // A type 3.8 does not know: MarshallingError, and the connection stays.
    assert_eq!(call(&mut r, 32, 17, &path_type("/pw", 7)).0, -5);
    assert_eq!(call(&mut r, 33, 18, &path_type("/pw", 0)).0, -5);
    assert_eq!(call(&mut r, 34, 17, &path_type("/pw", data)).0, 0);
}
