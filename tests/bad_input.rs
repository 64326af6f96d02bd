//! Malformed and oversize input: a bad frame closes that connection and nothing else; a
//! bad request inside a good frame gets ZooKeeper 3.8's answer.

use crate::harness::*;
use std::io::Write;
use zookeeper_client::{Acls, CreateMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_one_connection_only() {
    let s = Server::start("jute.maxbuffer=4096");
    let zk = connect(&s).await;
    zk.create(
        "/alive",
        b"",
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();

    // Oversize length prefix.
    let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
    c.write_all(&(1i32 << 30).to_be_bytes()).unwrap();
    let mut r = Raw {
        sock: c,
        session: 0,
    };
    r.sock
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    assert!(r.closed());
    // A negative length.
    let mut r = Raw::connect(&s);
    r.sock.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(r.closed());
    // A request whose body is cut short: MarshallingError, as ZooKeeper answers it, and
    // the connection stays (malformed_requests_are_answered_as_zookeeper_answers_them).
    let mut r = Raw::connect(&s);
    r.send(1, 4, &[0, 0, 0, 50, b'/']);
    assert_eq!(r.reply().unwrap().2, -5);
    // A value above jute.maxbuffer.
    let big = vec![7u8; 8192];
    assert!(zk.set_data("/alive", &big, None).await.is_err());
    // A short handshake.
    let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
    c.write_all(&frame(&[0, 0, 0])).unwrap();
    let mut r = Raw {
        sock: c,
        session: 0,
    };
    r.sock
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    assert!(r.closed());

    // Everyone else is fine, the server too.
    let zk2 = connect(&s).await;
    assert!(zk2.check_stat("/alive").await.unwrap().is_some());
    assert!(s.logged("Len error"), "the oversize frame is logged");
}

/// Start-up errors are one clear line naming what is wrong, and the process exits 1.
#[test]
fn bad_configs_and_busy_data_dirs_stop_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |cfg: &str| {
        let p = dir.path().join("zoo.cfg");
        std::fs::write(&p, cfg).unwrap();
        start_failing(&p)
    };
    let data = dir.path().join("data");
    let (code, err) = run(&format!(
        "dataDir={}\nclientPort=0\ntickTime=abc\n",
        data.display()
    ));
    assert_eq!(code, Some(1));
    assert!(err.contains("tickTime=abc: not a valid number"), "{err}");
    let (code, err) = run(&format!(
        "dataDir={}\nclientPort=0\nminSessionTimeout=9000\nmaxSessionTimeout=4000\n",
        data.display()
    ));
    assert_eq!(code, Some(1));
    assert!(err.contains("minSessionTimeout=9000"), "{err}");
    let (code, err) = run("clientPort=0\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("dataDir is required"), "{err}");
    // A second server on a data directory in use.
    let s = Server::start("");
    let (code, err) = run(&format!(
        "dataDir={}\nclientPort=0\n",
        s.dir.path().join("data").display()
    ));
    assert_eq!(code, Some(1));
    assert!(err.contains("in use by another running server"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
}

/// Ensemble configuration as ZooKeeper reads it: a single server.N line (or none) is a
/// standalone server; a myid that is missing, not listed, or a server line given twice
/// stops start-up with one line saying so. A valid ensemble starts as its member.
#[test]
fn ensemble_configs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let run = |extra: &str| {
        let p = dir.path().join("zoo.cfg");
        std::fs::write(
            &p,
            format!(
                "dataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\n{extra}",
                data.display()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_paddock"))
            .arg("start-foreground")
            .arg(&p)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A standalone start keeps running: read until it serves, then stop it.
        use std::io::BufRead;
        let mut err = String::new();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        for l in lines.by_ref() {
            let l = l.unwrap();
            err.push_str(&l);
            err.push('\n');
            if l.contains("serving on") {
                break;
            }
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        (status.code(), err)
    };
    let three = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\nserver.3=127.0.0.3:2888:3888\n";
    // One server line: standalone.
    let (_, err) = run("server.1=127.0.0.1:2888:3888\n");
    assert!(err.contains("serving on"), "{err}");
    // Three, no myid.
    let (code, err) = run(three);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("myid is missing") && err.contains("ensemble of 3 servers"),
        "{err}"
    );
    // myid not in the list.
    std::fs::write(data.join("myid"), "7\n").unwrap();
    let (code, err) = run(three);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("myid 7") && err.contains("server.1, server.2, server.3"),
        "{err}"
    );
    // myid not a number.
    std::fs::write(data.join("myid"), "two").unwrap();
    let (code, err) = run(three);
    assert_eq!(code, Some(1));
    assert!(err.contains("\"two\" is not a server id"), "{err}");
    // A server line given twice, and two servers on one address.
    std::fs::write(data.join("myid"), "2").unwrap();
    let (code, err) = run(&format!("{three}server.2=127.0.0.9:2888:3888\n"));
    assert_eq!(code, Some(1));
    assert!(err.contains("server.2 is given twice"), "{err}");
    let (code, err) = run(
        "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2888:3889\nserver.3=127.0.0.3:2888:3888\n",
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("same address 127.0.0.1:2888"), "{err}");
    // A malformed line names the key and value.
    let (code, err) = run("server.1=127.0.0.1:2888\nserver.2=127.0.0.2:2888:3888\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("server.1=127.0.0.1:2888: expected"), "{err}");
    // A valid ensemble with this server's myid: it starts as that member and elects.
    let (_, err) = run(three);
    assert!(
        err.contains("server.2 of an ensemble of 3 (3 voters)"),
        "{err}"
    );
    // standaloneEnabled=false makes even one server line an ensemble, of one voter.
    let (_, err) = run("server.2=127.0.0.1:2888:3888\nstandaloneEnabled=false\n");
    assert!(
        err.contains("server.2 of an ensemble of 1 (1 voters)"),
        "{err}"
    );
}

/// A reply: xid, zxid, err, body.
type Reply = (i32, i64, i32, Vec<u8>);

/// What a raw session sees after one request: its reply if any, and whether the
/// connection still answers a ping after it.
fn ask(s: &Server, op: i32, xid: i32, body: &[u8]) -> (Option<Reply>, bool) {
    let mut r = Raw::connect(s);
    r.sock
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    r.send(xid, op, body);
    let reply = r.reply();
    let alive = {
        let sent = {
            let mut b = (-2i32).to_be_bytes().to_vec();
            b.extend_from_slice(&11i32.to_be_bytes());
            r.sock.write_all(&frame(&b)).is_ok()
        };
        sent && matches!(r.reply(), Some((-2, _, 0, _)))
    };
    (reply, alive)
}

fn null_path_watch() -> Vec<u8> {
    let mut b = (-1i32).to_be_bytes().to_vec();
    b.push(0);
    b
}

/// Issue 14, section 2: each malformed or edge request gets the answer Apache ZooKeeper
/// 3.8 gives (each compared with it over a raw socket: MarshallingError (-5) for a body
/// that does not decode or a null ZooKeeper dereferences, the connection kept; a write's
/// -5 as an error txn that takes a zxid), instead of a close without a reply.
#[test]
fn malformed_requests_are_answered_as_zookeeper_answers_them() {
    let s = Server::start("");
    let err = |op: i32, body: &[u8]| {
        let (reply, alive) = ask(&s, op, 1, body);
        (reply.map(|r| r.2), alive)
    };
    // A body cut short; null paths where ZooKeeper dereferences them.
    assert_eq!(err(4, &[0, 0, 0, 10, b'/', b'a', b'b']), (Some(-5), true));
    for op in [3, 4, 8, 12] {
        assert_eq!(err(op, &null_path_watch()), (Some(-5), true), "op {op}");
    }
    for op in [6, 104] {
        assert_eq!(err(op, &(-1i32).to_be_bytes()), (Some(-5), true), "op {op}");
    }
    // create and delete with a null path: -5, as an error txn (it takes a zxid).
    let mut z = Raw::connect(&s);
    z.send(1, 1, &create_body("/z1", b"", 0));
    let z1 = z.reply().unwrap().1;
    let mut null_create = (-1i32).to_be_bytes().to_vec();
    null_create.extend_from_slice(&create_body("", b"", 0)[4..]);
    z.send(2, 1, &null_create);
    assert_eq!(z.reply().unwrap().2, -5);
    let mut null_delete = (-1i32).to_be_bytes().to_vec();
    null_delete.extend_from_slice(&(-1i32).to_be_bytes());
    z.send(3, 2, &null_delete);
    assert_eq!(z.reply().unwrap().2, -5);
    z.send(4, 1, &create_body("/z2", b"", 0));
    assert_eq!(
        z.reply().unwrap().1,
        z1 + 3,
        "each malformed write took a zxid"
    );
    assert_eq!(err(1, &null_create), (Some(-5), true));
    // setData with a null path is a bad argument, for ZooKeeper too.
    let mut null_set = (-1i32).to_be_bytes().to_vec();
    null_set.extend_from_slice(&(-1i32).to_be_bytes());
    null_set.extend_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(err(5, &null_set), (Some(-8), true));
    // addWatch with a mode ZooKeeper does not know.
    for mode in [5i32, -1] {
        let mut b = jute_string("/");
        b.extend_from_slice(&mode.to_be_bytes());
        assert_eq!(err(106, &b), (Some(-5), true), "mode {mode}");
    }
    // setWatches / setWatches2 with null path lists.
    for (op, lists) in [(101, 3), (105, 5)] {
        let mut b = 0i64.to_be_bytes().to_vec();
        for _ in 0..lists {
            b.extend_from_slice(&(-1i32).to_be_bytes());
        }
        let (reply, alive) = ask(&s, op, -8, &b);
        assert_eq!((reply.map(|r| (r.0, r.2)), alive), (Some((-8, -5)), true));
    }
    // An ACL count of -2 is an empty list to ZooKeeper: INVALIDACL.
    let mut acl_minus_two = jute_string("/acl");
    acl_minus_two.extend_from_slice(&0i32.to_be_bytes());
    acl_minus_two.extend_from_slice(&(-2i32).to_be_bytes());
    acl_minus_two.extend_from_slice(&0i32.to_be_bytes());
    assert_eq!(err(1, &acl_minus_two), (Some(-114), true));
    let mut set_acl = jute_string("/");
    set_acl.extend_from_slice(&(-2i32).to_be_bytes());
    set_acl.extend_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(err(7, &set_acl), (Some(-114), true));
    // An IPv6 ip ACL: ZooKeeper 3.8 reads IPv4 only.
    let ipv6 = create_body_acl("/v6", b"", "ip", "::1", 0);
    assert_eq!(err(1, &ipv6), (Some(-114), true));
    // A null digest: AUTHFAILED with zxid 0, then the close.
    let mut auth = 0i32.to_be_bytes().to_vec();
    auth.extend(jute_string("digest"));
    auth.extend_from_slice(&(-1i32).to_be_bytes());
    let (reply, alive) = ask(&s, 100, -4, &auth);
    assert_eq!(
        (reply.map(|r| (r.0, r.1, r.2)), alive),
        (Some((-4, 0, -115)), false)
    );
    // deleteContainer from a client: BADARGUMENTS, nothing deleted, the connection kept.
    z.send(5, 19, &create_body("/c1", b"", 0));
    assert_eq!(z.reply().unwrap().2, 0);
    assert_eq!(err(20, &jute_string("/c1")), (Some(-8), true));
    let mut exists = jute_string("/c1");
    exists.push(0);
    z.send(6, 3, &exists);
    assert_eq!(z.reply().unwrap().2, 0, "the container is still there");
    // SASL without SASL configured: OK with a null token and zxid 0.
    let (reply, alive) = ask(&s, 102, 1, &[0, 0, 0, 4, 1, 2, 3, 4]);
    assert_eq!(
        (reply.map(|r| (r.1, r.2, r.3)), alive),
        (Some((0, 0, vec![0xff, 0xff, 0xff, 0xff])), true)
    );
    // An unknown opcode: UNIMPLEMENTED with zxid -1, then the close.
    let (reply, alive) = ask(&s, 999, 1, &[]);
    assert_eq!((reply.map(|r| (r.1, r.2)), alive), (Some((-1, -6)), false));
}
