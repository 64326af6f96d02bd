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
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_paddock"))
            .arg("start-foreground")
            .arg(&p)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
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
