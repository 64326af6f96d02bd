//! Malformed and oversize input closes that connection and nothing else.

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
    // A request whose body is cut short.
    let mut r = Raw::connect(&s);
    r.send(1, 4, &[0, 0, 0, 50, b'/']);
    assert!(r.closed());
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
