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
