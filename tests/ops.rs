//! Every plain operation and its error codes.

use crate::harness::*;
use zookeeper_client::{Acls, CreateMode, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_set_delete_with_stats() {
    let s = Server::start("");
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let (st, _) = zk.create("/a", b"hello", &opts).await.unwrap();
    assert_eq!(
        (
            st.version,
            st.cversion,
            st.aversion,
            st.data_length,
            st.num_children
        ),
        (0, 0, 0, 5, 0)
    );
    assert_eq!(st.czxid, st.mzxid);
    assert_eq!(st.czxid, st.pzxid);
    assert_eq!(st.ephemeral_owner, 0);
    assert!(st.ctime > 1_600_000_000_000 && st.ctime == st.mtime);

    let (data, st2) = zk.get_data("/a").await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(st2, st);

    let st3 = zk.set_data("/a", b"world!", Some(0)).await.unwrap();
    assert_eq!(st3.version, 1);
    assert_eq!(st3.data_length, 6);
    assert!(st3.mzxid > st.mzxid);
    assert_eq!(st3.czxid, st.czxid);
    assert_eq!(
        zk.set_data("/a", b"x", Some(0)).await.unwrap_err(),
        Error::BadVersion
    );
    assert_eq!(
        zk.set_data("/nope", b"x", None).await.unwrap_err(),
        Error::NoNode
    );

    // Children and the parent's counters.
    zk.create("/a/b", b"", &opts).await.unwrap();
    zk.create("/a/c", b"", &opts).await.unwrap();
    let (mut kids, pst) = zk.get_children("/a").await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["b", "c"]);
    assert_eq!((pst.num_children, pst.cversion), (2, 2));
    assert_eq!(zk.delete("/a", None).await.unwrap_err(), Error::NotEmpty);
    let before = zk.check_stat("/a").await.unwrap().unwrap();
    zk.delete("/a/b", None).await.unwrap();
    let after = zk.check_stat("/a").await.unwrap().unwrap();
    assert_eq!(
        (after.num_children, after.cversion),
        (1, 3),
        "a delete counts as a child change"
    );
    assert!(after.pzxid > before.pzxid);
    assert_eq!(
        zk.delete("/a/c", Some(5)).await.unwrap_err(),
        Error::BadVersion
    );
    zk.delete("/a/c", Some(0)).await.unwrap();
    zk.delete("/a", None).await.unwrap();
    assert_eq!(zk.check_stat("/a").await.unwrap(), None);
    assert_eq!(zk.get_data("/a").await.unwrap_err(), Error::NoNode);
    assert_eq!(zk.delete("/a", None).await.unwrap_err(), Error::NoNode);
    assert_eq!(
        zk.create("/x/y", b"", &opts).await.unwrap_err(),
        Error::NoNode
    );
    zk.create("/x", b"", &opts).await.unwrap();
    assert_eq!(
        zk.create("/x", b"", &opts).await.unwrap_err(),
        Error::NodeExists
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_suffix_comes_from_parent_cversion() {
    let s = Server::start("");
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    zk.create("/q", b"", &opts).await.unwrap();
    let (_, s0) = zk.create("/q/n-", b"", &seq).await.unwrap();
    let (_, s1) = zk.create("/q/n-", b"", &seq).await.unwrap();
    assert_eq!(
        (s0.to_string(), s1.to_string()),
        ("0000000000".into(), "0000000001".into())
    );
    zk.create("/q/plain", b"", &opts).await.unwrap();
    zk.delete("/q/n-0000000001", None).await.unwrap();
    let (_, s3) = zk.create("/q/n-", b"", &seq).await.unwrap();
    assert_eq!(s3.to_string(), "0000000003", "numbers are never reused");
    let mut kids = zk.list_children("/q").await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["n-0000000000", "n-0000000003", "plain"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_and_special_nodes() {
    let s = Server::start("");
    let zk = connect(&s).await;
    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let (st, _) = zk.create("/e", b"", &eph).await.unwrap();
    assert_eq!(st.ephemeral_owner, zk.session_id().0);
    assert_eq!(
        zk.create("/e/child", b"", &opts).await.unwrap_err(),
        Error::NoChildrenForEphemerals
    );
    zk.create("/p", b"", &opts).await.unwrap();
    zk.create(
        "/p/e2",
        b"",
        &CreateMode::EphemeralSequential.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    let mut e = zk.list_ephemerals("/").await.unwrap();
    e.sort();
    assert_eq!(e, vec!["/e", "/p/e20000000000"]);
    assert_eq!(
        zk.list_ephemerals("/p").await.unwrap(),
        vec!["/p/e20000000000"]
    );

    // The built-in nodes.
    let mut root = zk.list_children("/").await.unwrap();
    root.sort();
    assert_eq!(root, vec!["e", "p", "zookeeper"]);
    let mut zkc = zk.list_children("/zookeeper").await.unwrap();
    zkc.sort();
    assert_eq!(zkc, vec!["config", "quota"]);
    let (acl, st) = zk.get_acl("/zookeeper/config").await.unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(st.aversion, -1);
    for p in ["/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert!(
            matches!(
                zk.delete(p, None).await.unwrap_err(),
                Error::BadArguments(_)
            ),
            "{p}"
        );
    }
    zk.create("/zookeeper/mine", b"", &opts).await.unwrap();
    assert_eq!(zk.count_descendants_number("/").await.unwrap(), 7);
    assert_eq!(zk.count_descendants_number("/p").await.unwrap(), 1);
    zk.sync("/p").await.unwrap();
}

#[test]
fn bad_paths_and_flags_are_bad_arguments() {
    let s = Server::start("");
    let mut r = Raw::connect(&s);
    let create = |path: &str, flags: i32| {
        let mut b = jute_string(path);
        b.extend_from_slice(&0i32.to_be_bytes()); // empty data
        b.extend_from_slice(&1i32.to_be_bytes()); // one ACL
        b.extend_from_slice(&31i32.to_be_bytes());
        b.extend(jute_string("world"));
        b.extend(jute_string("anyone"));
        b.extend_from_slice(&flags.to_be_bytes());
        b
    };
    for (i, (path, flags, want)) in [
        ("/a/", 0, -101), // the parent "/a" is looked up before the path is checked
        ("/a//b", 0, -101),
        ("//", 0, -8),
        ("/.", 0, -8),
        ("/a/..", 0, -101),
        ("/bad\u{1}char", 0, -8),
        ("/ok", 9, -8),
        ("/ttl-via-create", 5, -8),
        ("noslash", 0, -8),
    ]
    .into_iter()
    .enumerate()
    {
        r.send(i as i32 + 1, 1, &create(path, flags));
        let (xid, _, err, _) = r.reply().unwrap();
        assert_eq!(
            (xid, err),
            (i as i32 + 1, want),
            "create {path:?} flags {flags}"
        );
    }
    // A sequential create ending in "/" appends the suffix to the given path verbatim.
    r.send(50, 1, &create("/", 2));
    let (_, _, err, body) = r.reply().unwrap();
    assert_eq!(err, 0);
    assert_eq!(&body[4..], b"/0000000000");
}

#[test]
fn check_outside_multi_and_unknown_opcodes_close_the_connection() {
    let s = Server::start("");
    let mut r = Raw::connect(&s);
    let mut b = jute_string("/");
    b.extend_from_slice(&(-1i32).to_be_bytes());
    r.send(1, 13, &b);
    let (_, _, err, _) = r.reply().unwrap();
    assert_eq!(err, -6);
    assert!(r.closed());
    let mut r = Raw::connect(&s);
    r.send(1, 77, &[]);
    let (xid, _, err, _) = r.reply().unwrap();
    assert_eq!((xid, err), (1, -6));
    assert!(r.closed());
}

#[test]
fn reconfig_in_standalone_is_disabled() {
    let s = Server::start("");
    let mut r = Raw::connect(&s);
    let mut b = jute_string("");
    b.extend(jute_string(""));
    b.extend(jute_string("server.2=127.0.0.1:2888:3888"));
    b.extend_from_slice(&(-1i64).to_be_bytes());
    r.send(1, 16, &b);
    let (_, _, err, _) = r.reply().unwrap();
    assert_eq!(
        err, -123,
        "ReconfigDisabled, as a standalone ZooKeeper answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_ttl_and_create2_stats() {
    let s = Server::start("");
    let zk = connect(&s).await;
    let (st, _) = zk
        .create(
            "/c",
            b"d",
            &CreateMode::Container.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    assert_eq!(
        st.ephemeral_owner, 0,
        "clients see 0 as a container's owner"
    );
    assert_eq!(st.data_length, 1);
    let ttl = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(std::time::Duration::from_secs(3600));
    let (st, _) = zk.create("/t", b"", &ttl).await.unwrap();
    assert_eq!(st.ephemeral_owner, 0);
    let ttl_seq = CreateMode::PersistentSequential
        .with_acls(Acls::anyone_all())
        .with_ttl(std::time::Duration::from_secs(3600));
    let (_, n) = zk.create("/t/s-", b"", &ttl_seq).await.unwrap();
    assert_eq!(n.to_string(), "0000000000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_needs_extended_types() {
    let s = Server::start("extendedTypesEnabled=false");
    let zk = connect(&s).await;
    let ttl = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(std::time::Duration::from_secs(10));
    let err = zk.create("/t", b"", &ttl).await.unwrap_err();
    assert!(matches!(err, Error::Unimplemented), "{err:?}");
}

/// Issue 14, section 3: `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`
/// hold empty data, as ZooKeeper's DataTree makes them (`new byte[0]`; zkCli prints an
/// empty line), not null; also after a restart from the server's own snapshot and log.
#[test]
fn system_nodes_hold_empty_data_not_null() {
    let s = Server::start("");
    let check = |s: &Server| {
        let mut r = Raw::connect(s);
        for (i, path) in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"]
            .into_iter()
            .enumerate()
        {
            let mut get = jute_string(path);
            get.push(0);
            r.send(i as i32 + 1, 4, &get);
            let (_, _, err, body) = r.reply().expect("getData answered");
            assert_eq!(err, 0, "{path}");
            let len = i32::from_be_bytes(body[..4].try_into().unwrap());
            assert_eq!(len, 0, "{path}: data length {len} (-1 is null)");
        }
    };
    check(&s);
    let s = s.restart();
    check(&s);
}

/// Issue 14, section 3: delete checks in ZooKeeper's order (PrepRequestProcessor): the
/// parent must exist, then the parent's DELETE permission, then the node. So a path with
/// a trailing slash is NONODE (its "parent" is the node itself), and deleting a missing
/// child of a parent that denies DELETE is NOAUTH, not NONODE.
#[test]
fn delete_checks_the_parent_first_as_zookeeper_does() {
    let s = Server::start("");
    let mut r = Raw::connect(&s);
    r.send(1, 1, &create_body("/a", b"", 0));
    assert_eq!(r.reply().unwrap().2, 0);
    let mut del = jute_string("/a/");
    del.extend_from_slice(&(-1i32).to_be_bytes());
    r.send(2, 2, &del);
    assert_eq!(r.reply().unwrap().2, -101, "delete /a/: NONODE");
    // world:anyone with every permission but DELETE (8).
    let mut b = jute_string("/nodelete");
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&(31i32 - 8).to_be_bytes());
    b.extend(jute_string("world"));
    b.extend(jute_string("anyone"));
    b.extend_from_slice(&0i32.to_be_bytes());
    r.send(3, 1, &b);
    assert_eq!(r.reply().unwrap().2, 0);
    let mut del = jute_string("/nodelete/missing");
    del.extend_from_slice(&(-1i32).to_be_bytes());
    r.send(4, 2, &del);
    assert_eq!(
        r.reply().unwrap().2,
        -102,
        "delete under a parent without DELETE: NOAUTH"
    );
    let mut del = jute_string("/missing/child");
    del.extend_from_slice(&(-1i32).to_be_bytes());
    r.send(5, 2, &del);
    assert_eq!(r.reply().unwrap().2, -101, "a missing parent: NONODE");
}

/// Issue 14, section 3: reads of the path "" (kazoo sends it for a client's root) answer
/// for "/", as ZooKeeper's DataTree maps "" to the root.
#[test]
fn reads_of_the_empty_path_answer_for_the_root() {
    let s = Server::start("");
    let mut r = Raw::connect(&s);
    let mut get = jute_string("");
    get.push(0);
    r.send(1, 8, &get); // getChildren
    let (_, _, err, body) = r.reply().unwrap();
    assert_eq!(err, 0, "getChildren(\"\")");
    let n = i32::from_be_bytes(body[..4].try_into().unwrap());
    assert_eq!(n, 1, "the root's one child, /zookeeper");
    r.send(2, 3, &get); // exists
    assert_eq!(r.reply().unwrap().2, 0, "exists(\"\")");
    r.send(3, 4, &get); // getData
    assert_eq!(r.reply().unwrap().2, 0, "getData(\"\")");
}
