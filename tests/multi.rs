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
