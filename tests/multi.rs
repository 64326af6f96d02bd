//! multi is all-or-nothing with per-op results; multiRead answers each op on its own.

use crate::harness::*;
use zookeeper_client::{
    Acls, CreateMode, Error, MultiReadResult, MultiWriteError, MultiWriteResult,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_commits_all_or_nothing() {
    let s = Server::start("");
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    let mut m = zk.new_multi_writer();
    m.add_create("/m", b"", &opts).unwrap();
    m.add_create("/m/s-", b"", &seq).unwrap();
    m.add_create("/m/s-", b"", &seq).unwrap();
    m.add_set_data("/m", b"data", Some(0)).unwrap();
    m.add_check_version("/m", 1).unwrap();
    let r = m.commit().await.unwrap();
    assert_eq!(r.len(), 5);
    match &r[2] {
        MultiWriteResult::Create { path, .. } => {
            assert_eq!(path, "/m/s-0000000001", "later ops see earlier ones")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(r[3], MultiWriteResult::SetData { ref stat } if stat.version == 1));
    assert!(matches!(r[4], MultiWriteResult::Check));

    let before = zk.get_data("/m").await.unwrap();
    let mut m = zk.new_multi_writer();
    m.add_create("/m/new", b"", &opts).unwrap();
    m.add_set_data("/m", b"other", None).unwrap();
    m.add_delete("/m/missing", None).unwrap();
    m.add_create("/m/new2", b"", &opts).unwrap();
    let err = m.commit().await.unwrap_err();
    assert_eq!(
        err,
        MultiWriteError::OperationFailed {
            index: 2,
            source: Error::NoNode
        }
    );
    assert_eq!(zk.check_stat("/m/new").await.unwrap(), None, "rolled back");
    assert_eq!(zk.get_data("/m").await.unwrap(), before, "rolled back");
    // The failed multi still used a zxid, as ZooKeeper's does.
    let (_, st) = zk.get_data("/m").await.unwrap();
    let z = zk.create("/probe", b"", &opts).await.unwrap().0.czxid;
    assert!(z > st.mzxid + 1);
}

#[test]
fn failed_multi_results_are_zero_code_then_runtime_inconsistency() {
    let s = Server::start("");
    let mut r = Raw::connect(&s);
    let mut b = Vec::new();
    for (path, version) in [("/", -1i32), ("/", 7), ("/", -1)] {
        b.extend_from_slice(&13i32.to_be_bytes());
        b.push(0);
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend(jute_string(path));
        b.extend_from_slice(&version.to_be_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(1);
    b.extend_from_slice(&(-1i32).to_be_bytes());
    r.send(1, 14, &b);
    let (_, _, err, body) = r.reply().unwrap();
    assert_eq!(err, 0, "the header says OK; the results say what failed");
    let mut codes = vec![];
    let mut i = 0;
    loop {
        let t = i32::from_be_bytes(body[i..i + 4].try_into().unwrap());
        let done = body[i + 4];
        if done == 1 {
            break;
        }
        assert_eq!(t, -1);
        codes.push(i32::from_be_bytes(body[i + 9..i + 13].try_into().unwrap()));
        i += 13;
    }
    assert_eq!(codes, vec![0, -103, -2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_read_answers_each_op() {
    let s = Server::start("");
    let zk = connect(&s).await;
    zk.create(
        "/r",
        b"v",
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    let mut m = zk.new_multi_reader();
    m.add_get_data("/r").unwrap();
    m.add_get_children("/").unwrap();
    m.add_get_data("/missing").unwrap();
    let r = m.commit().await.unwrap();
    assert!(matches!(&r[0], MultiReadResult::Data { data, .. } if data == b"v"));
    assert!(
        matches!(&r[1], MultiReadResult::Children { children } if children.contains(&"r".to_string()))
    );
    assert!(matches!(
        &r[2],
        MultiReadResult::Error { err: Error::NoNode }
    ));
}

/// Issue 14, section 3: each op of a multi answers with the Stat that op left, as
/// ZooKeeper's does, not the node as the whole multi left it: a setData followed by
/// another setData and a child create, a create2 of a node the same multi deletes (an
/// all-zero Stat before), on a standalone server and through a follower of an ensemble
/// (whose reply comes from applying the committed txn).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_multi_op_answers_with_its_own_stat() {
    let s = Server::start("");
    own_stats(&connect(&s).await).await;
    let e = crate::ensemble::Ensemble::start(3, 0, 28700, "");
    let leader = e.settled(std::time::Duration::from_secs(20));
    let follower = if leader == 1 { 2 } else { 1 };
    own_stats(&crate::ensemble::connect(&e.member(follower).client).await).await;
}

async fn own_stats(zk: &zookeeper_client::Client) {
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let mut m = zk.new_multi_writer();
    m.add_create("/own", b"a", &opts).unwrap();
    m.add_set_data("/own", b"bb", None).unwrap();
    m.add_set_data("/own", b"ccc", None).unwrap();
    m.add_create("/own/child", b"", &opts).unwrap();
    m.add_create("/gone", b"xy", &opts).unwrap();
    m.add_delete("/gone", None).unwrap();
    let r = m.commit().await.unwrap();
    let MultiWriteResult::SetData { stat: first } = &r[1] else {
        panic!("{:?}", r[1])
    };
    let MultiWriteResult::SetData { stat: second } = &r[2] else {
        panic!("{:?}", r[2])
    };
    assert_eq!(
        (first.version, first.data_length, first.num_children),
        (1, 2, 0),
        "the first setData's own Stat"
    );
    assert_eq!(
        (second.version, second.data_length, second.num_children),
        (2, 3, 0),
        "the second setData's Stat, before the child"
    );
    assert_eq!(first.mzxid, second.mzxid, "one txn");
    let MultiWriteResult::Create { stat, .. } = &r[4] else {
        panic!("{:?}", r[4])
    };
    assert_eq!(
        (stat.data_length, stat.czxid, stat.version),
        (2, first.mzxid, 0),
        "a deleted node's create still has its Stat"
    );
}
