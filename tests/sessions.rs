//! Session life: expiry removes ephemerals, reconnect resumes, bad passwords are refused.

use crate::harness::*;
use std::io::Write;
use std::time::Duration;
use zookeeper_client::{Acls, CreateMode, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_expiry_remove_ephemerals() {
    let s = Server::start("");
    let watcher = connect(&s).await;
    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    {
        let zk = connect(&s).await;
        zk.create("/closed", b"", &eph).await.unwrap();
        drop(zk); // closeSession
    }
    eventually("ephemeral gone after close", || async {
        watcher.check_stat("/closed").await.unwrap().is_none()
    })
    .await;

    // A raw session that just stops talking expires after its timeout.
    let mut raw = Raw::connect(&s);
    let mut b = jute_string("/expiring");
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&31i32.to_be_bytes());
    b.extend(jute_string("world"));
    b.extend(jute_string("anyone"));
    b.extend_from_slice(&1i32.to_be_bytes());
    raw.send(1, 1, &b);
    assert_eq!(raw.reply().unwrap().2, 0);
    let st = watcher.check_stat("/expiring").await.unwrap().unwrap();
    assert_eq!(st.ephemeral_owner, raw.session);
    // The connection stays open but silent (no pings): the session must still expire.
    eventually("ephemeral gone after expiry", || async {
        watcher.check_stat("/expiring").await.unwrap().is_none()
    })
    .await;
    assert!(raw.closed(), "the expired session's connection is closed");
}

fn connect_request(session: i64, passwd: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&30000i32.to_be_bytes());
    b.extend_from_slice(&session.to_be_bytes());
    b.extend_from_slice(&(passwd.len() as i32).to_be_bytes());
    b.extend_from_slice(passwd);
    frame(&b)
}

#[test]
fn reconnect_with_password_resumes_and_wrong_password_is_refused() {
    let s = Server::start("");
    let mut a = Raw::connect(&s);
    let mut resp = {
        let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.write_all(&connect_request(0, &[0; 16])).unwrap();
        let mut r = Raw { sock, session: 0 };
        let f = r.read_frame().unwrap();
        assert_eq!(
            f.len(),
            36,
            "an old client (no readOnly byte) gets a 36-byte response"
        );
        f
    };
    let session = i64::from_be_bytes(resp[8..16].try_into().unwrap());
    let passwd = resp.split_off(20);
    assert_eq!(passwd.len(), 16);
    assert_eq!(
        i32::from_be_bytes(resp[4..8].try_into().unwrap()),
        30000,
        "timeout within [min, max]"
    );

    let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(&connect_request(session, &passwd)).unwrap();
    let mut r = Raw { sock, session };
    let f = r.read_frame().unwrap();
    assert_eq!(
        i64::from_be_bytes(f[8..16].try_into().unwrap()),
        session,
        "resumed"
    );

    let mut bad = passwd.clone();
    bad[0] ^= 1;
    let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(&connect_request(session, &bad)).unwrap();
    let mut r = Raw { sock, session };
    let f = r.read_frame().unwrap();
    assert_eq!(
        i32::from_be_bytes(f[4..8].try_into().unwrap()),
        0,
        "timeout 0"
    );
    assert_eq!(
        i64::from_be_bytes(f[8..16].try_into().unwrap()),
        0,
        "session 0"
    );
    assert!(r.closed());

    let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(&connect_request(0x0123_4567, &[0; 16]))
        .unwrap();
    let mut r = Raw { sock, session: 0 };
    let f = r.read_frame().unwrap();
    assert_eq!(
        i64::from_be_bytes(f[8..16].try_into().unwrap()),
        0,
        "unknown session refused"
    );
    a.send(1, 11, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_a_server_restart() {
    let s = Server::start("");
    // The first client lives in its own runtime, dropped without a closeSession, so that
    // nothing of it reconnects behind our back.
    let addr = s.addr();
    let (session, id) = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (session, id, zk) = rt.block_on(async {
            let zk = zookeeper_client::Client::connector()
                .with_session_timeout(Duration::from_secs(30))
                .connect(&addr)
                .await
                .unwrap();
            zk.create(
                "/kept",
                b"",
                &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
            )
            .await
            .unwrap();
            (zk.session().clone(), zk.session_id(), zk)
        });
        drop(rt);
        std::mem::forget(zk);
        (session, id)
    })
    .join()
    .unwrap();
    let s = s.restart();
    let zk2 = zookeeper_client::Client::connector()
        .with_session(session)
        .connect(&s.addr())
        .await
        .expect("resume after restart");
    assert_eq!(zk2.session_id(), id);
    let st = zk2
        .check_stat("/kept")
        .await
        .unwrap()
        .expect("ephemeral survives the restart");
    assert_eq!(st.ephemeral_owner, id.0);
    zk2.create(
        "/after",
        b"",
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    drop(zk2);
    let zk3 = connect(&s).await;
    eventually(
        "ephemeral removed when the resumed session closes",
        || async { zk3.check_stat("/kept").await.unwrap().is_none() },
    )
    .await;
    assert_eq!(
        zk3.create(
            "/after",
            b"",
            &CreateMode::Persistent.with_acls(Acls::anyone_all())
        )
        .await
        .unwrap_err(),
        Error::NodeExists
    );
}

/// A session resumed on a second connection is gone from the first: the server closes
/// the first connection (ZooKeeper never sends SESSIONMOVED as a reply).
#[test]
fn a_moved_session_closes_its_old_connection() {
    let s = Server::start("");
    let mut first = std::net::TcpStream::connect(s.addr()).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    first.write_all(&connect_request(0, &[0; 16])).unwrap();
    let mut first = Raw {
        sock: first,
        session: 0,
    };
    let f = first.read_frame().unwrap();
    let session = i64::from_be_bytes(f[8..16].try_into().unwrap());
    let passwd = f[20..36].to_vec();
    let mut second = std::net::TcpStream::connect(s.addr()).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    second
        .write_all(&connect_request(session, &passwd))
        .unwrap();
    let mut second = Raw {
        sock: second,
        session,
    };
    let f = second.read_frame().unwrap();
    assert_eq!(i64::from_be_bytes(f[8..16].try_into().unwrap()), session);
    assert!(first.closed(), "the old connection is closed");
    second.send(1, 11, &[]);
    assert_eq!(second.reply().unwrap().0, -2, "the new one serves");
}

/// Closing a session that owns tens of thousands of ephemerals under one parent is one
/// txn with a delete per node. Applying it once took time quadratic in the node count
/// (each delete looked through the txn's earlier changes one by one): 120,000 nodes
/// stalled the writer, and every client with it, for half a minute.
#[test]
fn closing_a_session_with_many_ephemerals_does_not_stall_the_server() {
    const N: usize = 120_000;
    let s = Server::start("");
    let mut owner = Raw::connect(&s);
    owner
        .sock
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let create = |path: &str, flags: i32| create_body(path, b"", flags);
    owner.send(1, 1, &create("/many", 0));
    assert_eq!(owner.reply().unwrap().2, 0);
    // Pipelined, a chunk at a time.
    for chunk in (0..N).collect::<Vec<_>>().chunks(2000) {
        for &i in chunk {
            owner.send(i as i32 + 2, 1, &create(&format!("/many/e{i:06}"), 1));
        }
        for _ in chunk {
            assert_eq!(owner.reply().unwrap().2, 0);
        }
    }
    let started = std::time::Instant::now();
    owner.send(N as i32 + 2, -11, &[]);
    let (xid, _, err, _) = owner.reply().expect("closeSession answered");
    let took = started.elapsed();
    assert_eq!((xid, err), (N as i32 + 2, 0));
    // Linear work takes well under a second here; the quadratic apply took over 30 s.
    assert!(
        took < Duration::from_secs(15),
        "closing a session with {N} ephemerals took {took:?}"
    );
    // They are all gone, and the server answers others.
    let mut other = Raw::connect(&s);
    let mut b = jute_string("/many");
    b.push(0);
    other.send(1, 12, &b); // getChildren2
    let (_, _, err, body) = other.reply().unwrap();
    assert_eq!(err, 0);
    assert_eq!(i32::from_be_bytes(body[0..4].try_into().unwrap()), 0);
}
