//! Bounded everything: connections per IP, a slow reader's memory, reply size.

use crate::harness::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zookeeper_client::{Acls, CreateMode};

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

#[test]
fn max_client_cnxns_per_ip() {
    let s = Server::start("maxClientCnxns=3");
    let _held: Vec<Raw> = (0..3).map(|_| Raw::connect(&s)).collect();
    let mut extra = std::net::TcpStream::connect(s.addr()).unwrap();
    extra
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(&frame(&[0u8; 45]));
    let mut r = Raw {
        sock: extra,
        session: 0,
    };
    assert!(r.closed(), "the fourth connection from one IP is refused");
    assert!(s.logged("too many connections from 127.0.0.1"));
}

/// A client that pipelines reads of a 512 KiB node and never reads the replies: the
/// server stops reading its requests instead of queueing gigabytes of replies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_cannot_grow_the_server() {
    let s = Server::start("");
    let zk = connect(&s).await;
    zk.create(
        "/big",
        &vec![b'x'; 512 * 1024],
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    let before = rss_kib(s.child.id());
    let mut r = Raw::connect(&s);
    r.sock
        .set_write_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let mut req = jute_string("/big");
    req.push(0);
    let mut sent = 0;
    // 4000 requests would be 2 GiB of replies.
    for i in 0..4000 {
        let mut b = (i + 1i32).to_be_bytes().to_vec();
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&req);
        if r.sock.write_all(&frame(&b)).is_err() {
            break; // the server stopped reading: our socket buffer is full
        }
        sent += 1;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = rss_kib(s.child.id());
    assert!(
        after < before + 64 * 1024,
        "server RSS grew from {before} KiB to {after} KiB after {sent} unread requests"
    );
    // Everyone else is still served.
    assert_eq!(zk.get_data("/big").await.unwrap().0.len(), 512 * 1024);
}

/// Issue 14, section 2: jute.maxbuffer bounds requests, not replies, as in ZooKeeper.
/// What the server accepted can be read back: a node whose data fills a request up to
/// the limit, and a getChildren whose reply is twice the limit (before, both were
/// MarshallingError).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_accepted_can_be_read_back_past_jute_maxbuffer() {
    let s = Server::start("jute.maxbuffer=2000");
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    zk.create("/many", b"", &opts).await.unwrap();
    for i in 0..100 {
        zk.create(&format!("/many/child-with-a-long-name-{i:04}"), b"", &opts)
            .await
            .unwrap();
    }
    assert_eq!(zk.list_children("/many").await.unwrap().len(), 100);
    // 1930 bytes of data: the create's frame body is 1986 bytes (under the limit), the
    // getData reply's 2022 (over it).
    let data = vec![b'x'; 1930];
    zk.create("/full", &data, &opts).await.unwrap();
    let (got, stat) = zk.get_data("/full").await.unwrap();
    assert_eq!(got, data);
    assert_eq!(stat.data_length as usize, got.len());
    assert!(
        4 + 16 + 4 + got.len() + 68 > 2000,
        "the reply is over the limit"
    );
}

/// A watcher that lost READ on a node is not told of its changes (ZooKeeper 3.8.4+).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_need_read_permission() {
    use zookeeper_client::{Acl, AuthId, Permission};
    let s = Server::start("");
    let owner = connect(&s).await;
    owner.auth("digest", b"owner:pw").await.unwrap();
    let watcher = connect(&s).await;
    owner
        .create(
            "/secret",
            b"v0",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    let (_, _, w) = watcher.get_and_watch_data("/secret").await.unwrap();
    let mine = [Acl::new(
        Permission::ALL,
        AuthId::new("digest", &paddock::acl::digest("owner:pw")),
    )];
    owner
        .set_acl("/secret", &Acls::new(&mine), None)
        .await
        .unwrap();
    owner.set_data("/secret", b"v1", None).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_millis(800), w.changed()).await;
    assert!(
        got.is_err(),
        "no event for a node the watcher may not read: {got:?}"
    );
}

/// `mntr` value of `key` as a number.
fn mntr_num(s: &Server, key: &str) -> u64 {
    let m = four(s, "mntr");
    m.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t'))
        .unwrap_or_else(|| panic!("no {key} in mntr:\n{m}"))
        .trim()
        .parse()
        .unwrap()
}

/// paddock.batchTxnsMax bounds a group commit even when one reactor turn hands the writer
/// more than that (64 pipelined creates in one segment arrive as one hand-off): the
/// writer takes them in parts, each with its own sync, and answers all in order.
#[test]
fn a_group_commit_takes_at_most_batch_txns_max() {
    let s = Server::start("paddock.batchTxnsMax=4\n");
    let mut raw = Raw::connect(&s);
    let before = mntr_num(&s, "zk_paddock_group_commits");
    let mut all = Vec::new();
    for i in 0..64 {
        let mut b = 1000i32.wrapping_add(i).to_be_bytes().to_vec();
        b.extend_from_slice(&1i32.to_be_bytes()); // create
        b.extend(create_body(&format!("/b{i}"), b"x", 0));
        all.extend(frame(&b));
    }
    raw.sock.write_all(&all).unwrap();
    let mut last_zxid = 0;
    for i in 0..64 {
        let (xid, zxid, err, _) = raw.reply().expect("a reply");
        assert_eq!((xid, err), (1000 + i, 0), "reply {i}");
        assert!(zxid > last_zxid, "zxids in order");
        last_zxid = zxid;
    }
    let commits = mntr_num(&s, "zk_paddock_group_commits") - before;
    assert!(commits >= 16, "64 creates in {commits} group commits");
    assert!(mntr_num(&s, "zk_paddock_writer_part") <= 4);
}

/// Issue 14, section 1 (log floods): a flood of connections over maxClientCnxns logs a
/// few lines and a summary of the rest, not one line per refused connection.
#[test]
fn a_connection_flood_is_logged_in_a_few_lines() {
    let s = Server::start("maxClientCnxns=5\n");
    let held: Vec<std::net::TcpStream> = (0..5)
        .map(|_| std::net::TcpStream::connect(s.addr()).unwrap())
        .collect();
    // Wait until the five count (the server accepted them).
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..300 {
        if let Ok(c) = std::net::TcpStream::connect(s.addr()) {
            drop(c);
        }
    }
    assert!(
        s.logged("too many connections from 127.0.0.1"),
        "the refusals are logged at all"
    );
    // The summary of the suppressed lines comes once the window closes (or with the
    // next line): give it time.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !s.log_text().contains("more like this") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = s.log_text();
    let lines = text
        .lines()
        .filter(|l| l.contains("too many connections"))
        .count();
    assert!(
        lines <= 10,
        "{lines} lines for one flood of 300 refused connections"
    );
    assert!(
        text.contains("more like this"),
        "no summary of the suppressed lines:\n{text}"
    );
    drop(held);
}

/// Issue 14, section 1 (handshakes that never finish): a connection that does not
/// complete its ConnectRequest within 10 s is closed, as ZooKeeper closes sessionless
/// connections (zookeeper.nio.sessionlessCnxnTimeout, 10 s), so such sockets cannot
/// hold maxClientCnxns (nor their partial frames) for good.
#[test]
fn a_connection_that_never_handshakes_is_closed() {
    use std::io::Read;
    let s = Server::start("maxClientCnxns=3\n");
    let mut idle: Vec<std::net::TcpStream> = (0..3)
        .map(|i| {
            let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
            if i == 0 {
                // A frame that says 1 MB is coming, and then nothing.
                c.write_all(&(1_000_000i32).to_be_bytes()).unwrap();
                c.write_all(&[0u8; 1000]).unwrap();
            }
            c
        })
        .collect();
    let started = std::time::Instant::now();
    for (i, c) in idle.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut b = [0u8; 16];
        match c.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!(
                "idle connection {i} still open after {:?}: {other:?}",
                started.elapsed()
            ),
        }
    }
    // The address is free again: a real client gets its session.
    let mut r = Raw::connect(&s);
    r.send(1, 3, &{
        let mut b = jute_string("/");
        b.push(0);
        b
    });
    assert_eq!(r.reply().unwrap().2, 0);
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(key))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// A probe session doing getData and setData on its own small node every 50 ms until
/// `stop`; returns its worst round trip and how many rounds it made.
fn probe(addr: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Duration, u32)> {
    std::thread::spawn(move || {
        let mut p = Raw::connect_addr(&addr);
        p.send(1, 1, &create_body("/probe", b"0", 0));
        assert_eq!(p.reply().unwrap().2, 0);
        let mut worst = Duration::ZERO;
        let mut rounds = 0;
        let mut xid = 2;
        while !stop.load(Relaxed) {
            let t0 = Instant::now();
            let mut get = jute_string("/probe");
            get.push(0);
            p.send(xid, 4, &get);
            assert_eq!(p.reply().expect("probe getData answered").2, 0);
            let mut set = jute_string("/probe");
            set.extend_from_slice(&1i32.to_be_bytes());
            set.push(b'1');
            set.extend_from_slice(&(-1i32).to_be_bytes());
            p.send(xid + 1, 5, &set);
            assert_eq!(p.reply().expect("probe setData answered").2, 0);
            worst = worst.max(t0.elapsed());
            rounds += 1;
            xid += 2;
            std::thread::sleep(Duration::from_millis(50));
        }
        (worst, rounds)
    })
}

/// Issue 14, section 1 (replies from the writer): four clients each pipeline 1000
/// getData(watch=true) of a 1 MB node in one write (about 21 kB) and never read the
/// replies, and a fifth pipelines setData/getData pairs, whose reads the writer answers
/// too. Before, the writer's replies skipped the connection's outbound cap: about 1 GB
/// queued per client, 2.86 GB peak RSS, other clients stalled for seconds. Now every
/// byte owed to a connection counts against one budget, room for the writer's replies
/// is reserved before they are asked for, and the server's peak RSS stays far below
/// 512 MB while a probe client is answered throughout.
#[test]
fn unread_replies_from_the_writer_stay_within_the_outbound_budget() {
    let s = Server::start("");
    let addr = s.addr();
    let mut setup = Raw::connect(&s);
    setup.send(1, 1, &create_body("/big", &vec![b'x'; 1_000_000], 0));
    assert_eq!(setup.reply().unwrap().2, 0);
    setup.send(2, 1, &create_body("/w", b"", 0));
    assert_eq!(setup.reply().unwrap().2, 0);
    let pid = s.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(addr.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(300));

    let mut get_watch = jute_string("/big");
    get_watch.push(1);
    let mut get = jute_string("/big");
    get.push(0);
    let mut set = jute_string("/w");
    set.extend_from_slice(&1i32.to_be_bytes());
    set.push(b'y');
    set.extend_from_slice(&(-1i32).to_be_bytes());
    let mut attackers = Vec::new();
    for a in 0..5 {
        // A long session: its requests are not read while it owes so much, pings neither.
        let (mut r, _, _) = Raw::try_session(&addr, 0, &[], 30_000).unwrap();
        r.sock
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let reqs: Vec<(i32, i32, &[u8])> = if a < 4 {
            (1..=1000).map(|x| (x, 4, &get_watch[..])).collect()
        } else {
            (1..=1000)
                .map(|x| {
                    if x % 2 == 1 {
                        (x, 5, &set[..])
                    } else {
                        (x, 4, &get[..])
                    }
                })
                .collect()
        };
        r.send_all(&reqs);
        attackers.push(r);
    }
    let mut peak_sampled = 0;
    for _ in 0..30 {
        peak_sampled = peak_sampled.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let hwm = status_kib(pid, "VmHWM:");
    stop.store(true, Relaxed);
    let (worst, rounds) = prober.join().unwrap();
    eprintln!(
        "peak RSS {} MiB (sampled {} MiB); probe: {rounds} rounds, worst {worst:?}",
        hwm / 1024,
        peak_sampled / 1024
    );
    assert!(
        hwm < 512 * 1024,
        "peak RSS {} MiB under five clients that do not read",
        hwm / 1024
    );
    assert!(
        worst < Duration::from_secs(1),
        "the probe waited {worst:?} for an answer"
    );
    // The attackers are owed their replies still, in order: one reads them all.
    let mut a = attackers.pop().unwrap();
    a.sock
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    for x in 1..=1000 {
        let (xid, _, err, body) = a.reply().expect("reply owed to the attacker");
        assert_eq!((xid, err), (x, 0));
        if x % 2 == 0 {
            assert_eq!(body.len(), 4 + 1_000_000 + 68);
        }
    }
}

/// Issue 14, section 1: past 4x `paddock.outboundBytesMax` owed, a connection is closed
/// and what the writer had for it is dropped; its session lives on. The reactor reserves
/// room for a read's reply from the node as it stands, so a node that grows before the
/// writer answers is the way past it: a 1 MB setData and 200 getData(watch) of the same
/// node behind it, read in one go while the node is still empty, would be 200 MB.
#[test]
fn a_connection_owing_past_the_hard_limit_is_closed_and_its_session_lives() {
    let s = Server::start("paddock.outboundBytesMax=1048576\n");
    let addr = s.addr();
    let mut setup = Raw::connect(&s);
    setup.send(1, 1, &create_body("/grow", b"", 0));
    assert_eq!(setup.reply().unwrap().2, 0);
    let (mut r, passwd, _) = Raw::try_session(&addr, 0, &[], 30_000).unwrap();
    let mut set = jute_string("/grow");
    set.extend_from_slice(&1_000_000i32.to_be_bytes());
    set.extend_from_slice(&vec![b'x'; 1_000_000]);
    set.extend_from_slice(&(-1i32).to_be_bytes());
    let mut get = jute_string("/grow");
    get.push(1);
    let mut reqs: Vec<(i32, i32, &[u8])> = vec![(1, 5, &set[..])];
    reqs.extend((2..=201).map(|x| (x, 4, &get[..])));
    r.send_all(&reqs);
    std::thread::sleep(Duration::from_millis(1000));
    let hwm = status_kib(s.child.id(), "VmHWM:");
    assert!(
        hwm < 128 * 1024,
        "peak RSS {} MiB for one connection owed 200 MB",
        hwm / 1024
    );
    // What was queued before the limit arrives, then the end: at most the hard limit
    // (and the frame that crossed it was not sent).
    let mut got = 0usize;
    r.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while let Some(f) = r.read_frame() {
        got += 4 + f.len();
    }
    assert!(
        got <= 4 << 20,
        "{got} bytes arrived past the 4 MiB hard limit"
    );
    assert!(got > 0, "the setData's reply and some reads arrived");
    assert!(s.logged("queued and not read by the client"));
    // The session lives on: its client reconnects, and the write stands.
    let (mut again, _, _) = Raw::try_session(&addr, r.session, &passwd, 30_000)
        .expect("the session survives its connection");
    let mut plain = jute_string("/grow");
    plain.push(0);
    again.send(1, 4, &plain);
    let (_, _, err, body) = again.reply().unwrap();
    assert_eq!((err, body.len()), (0, 4 + 1_000_000 + 68));
}

/// Issue 14, section 1 (partial frames): 300 connections each send all but the last byte
/// of a 1,000,000-byte frame and hold it. Before, each pinned its megabyte until the
/// handshake timeout (2,000 of them: 2.27 GB). Now a frame over `largeRequestThreshold`
/// counts against `largeRequestMaxBytes` in total from its length prefix, as in
/// ZooKeeper: past it the connection is closed, and the server's memory stays bounded.
#[test]
fn partial_frames_are_bounded_in_total() {
    let s = Server::start("largeRequestMaxBytes=33554432\n");
    let pid = s.child.id();
    let base = status_kib(pid, "VmRSS:");
    let mut chunk = 1_000_000i32.to_be_bytes().to_vec();
    chunk.extend_from_slice(&vec![0u8; 999_999]);
    let mut held = Vec::new();
    for _ in 0..300 {
        let Ok(mut c) = std::net::TcpStream::connect(s.addr()) else {
            continue;
        };
        c.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = c.write_all(&chunk);
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let hwm = status_kib(pid, "VmHWM:");
    let closed = held
        .iter_mut()
        .filter(|c| {
            let mut c: &std::net::TcpStream = c;
            use std::io::Read;
            c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            match c.read(&mut [0u8; 8]) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            }
        })
        .count();
    eprintln!(
        "RSS {} MiB before, peak {} MiB; {closed} of 300 connections closed",
        base / 1024,
        hwm / 1024
    );
    assert!(
        hwm < base + 96 * 1024,
        "peak RSS {} MiB (from {} MiB) with 300 MB of partial frames sent",
        hwm / 1024,
        base / 1024
    );
    assert!(s.logged("rejecting a large request"));
    assert!(mntr_num(&s, "zk_large_requests_rejected") > 0);
    // Everyone else is still served, and a large request goes through once the
    // partial frames are gone.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let mut r = Raw::connect(&s);
    r.send(1, 1, &create_body("/after", &vec![b'z'; 900_000], 0));
    assert_eq!(r.reply().unwrap().2, 0);
}

/// How many of the process's descriptors are numbered below `below` (a descriptor it
/// inherited may sit far above the rest).
fn open_fds(pid: u32, below: usize) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .filter(|&fd| fd < below)
        .count()
}

/// Issue 14, section 1 (EMFILE): connections that wait in the listen backlog while the
/// server has no file descriptor left are accepted once descriptors are free again,
/// without another connection arriving to wake the listener (and without a busy loop:
/// the server retries accepting every few ms, and at once when it closes a connection).
#[test]
fn connections_queued_while_descriptors_ran_out_are_accepted_when_they_free() {
    let s = Server::start("");
    let pid = s.child.id();
    let mut held: Vec<Raw> = Vec::new();
    let limit = open_fds(pid, 200) + 8;
    let ok = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .unwrap();
    assert!(ok.success(), "prlimit failed");
    // Use up the descriptors with real sessions.
    while open_fds(pid, limit) < limit {
        held.push(Raw::connect(&s));
    }
    // These wait in the backlog: accept fails with EMFILE.
    let waiting: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(s.addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        open_fds(pid, limit),
        limit,
        "the server has no descriptor left"
    );
    // Free descriptors; no new connection arrives after this.
    held.truncate(held.len() - 4);
    for mut c in waiting {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // An old client's ConnectRequest (no readOnly byte): a 36-byte response.
        let mut hs = connect_request(0, &[0u8; 16], 10_000);
        hs.pop();
        c.write_all(&frame(&hs)).unwrap();
        let mut r = Raw {
            sock: c,
            session: 0,
        };
        let resp = r
            .read_frame()
            .expect("a connection from the backlog gets its session once descriptors free");
        assert_eq!(resp.len(), 36);
    }
}
