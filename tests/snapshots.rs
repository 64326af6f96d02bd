//! Snapshots: taken while serving, loaded on restart (falling back past a corrupt one),
//! purged, printed by the dump tools.

use crate::harness::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zookeeper_client::{Acls, Client, CreateMode, Stat};

/// Every node's data and Stat, walked from the root.
pub async fn tree_of(zk: &Client) -> BTreeMap<String, (Vec<u8>, Stat)> {
    let mut out = BTreeMap::new();
    let mut todo = vec!["/".to_string()];
    while let Some(p) = todo.pop() {
        let (data, stat) = zk.get_data(&p).await.unwrap();
        let (children, _) = zk.get_children(&p).await.unwrap();
        for c in children {
            todo.push(if p == "/" {
                format!("/{c}")
            } else {
                format!("{p}/{c}")
            });
        }
        out.insert(p, (data, stat));
    }
    out
}

pub fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    let zxid = |p: &PathBuf| {
        let n = p.file_name().unwrap().to_string_lossy().to_string();
        i64::from_str_radix(n.split('.').nth(1).unwrap(), 16).unwrap()
    };
    v.sort_by_key(zxid);
    v
}

fn v2(s: &Server) -> PathBuf {
    s.dir.path().join("data").join("version-2")
}

/// Writes (setData on `/churn`) until `n` snapshots were written while serving: a
/// snapshot that would start while one runs waits, so fast writes need more txns.
async fn churn_until_snapshots(zk: &Client, s: &Server, n: usize) {
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let _ = zk.create("/churn", b"", &opts).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.log_text().matches("written: ").count() < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} snapshots: {}",
            s.log_text()
        );
        for _ in 0..10 {
            zk.set_data("/churn", b"x", None).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client with the digest identity that owns `/locked`, so it can read every node.
async fn owner(s: &Server) -> Client {
    let zk = connect_with(s, Duration::from_secs(60)).await;
    zk.auth("digest", b"owner:pw").await.unwrap();
    zk
}

/// A varied tree: nested persistent nodes, sequentials, set and deleted nodes, null
/// and empty data, an ACL, an ephemeral held by a live session, a multi.
async fn write_varied_tree(zk: &Client, n: usize) {
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    zk.create("/app", b"", &opts).await.unwrap();
    for i in 0..n {
        let p = format!("/app/n{i:04}");
        zk.create(&p, format!("value {i}").as_bytes(), &opts)
            .await
            .unwrap();
        if i % 3 == 0 {
            zk.create(&format!("{p}/child"), b"c", &opts).await.unwrap();
        }
        if i % 5 == 0 {
            zk.set_data(&p, format!("set {i}").as_bytes(), None)
                .await
                .unwrap();
        }
        if i % 7 == 0 {
            if i % 3 == 0 {
                zk.delete(&format!("{p}/child"), None).await.unwrap();
            }
            zk.delete(&p, None).await.unwrap();
        }
        if i % 10 == 0 {
            zk.create("/app/s-", b"", &seq).await.unwrap();
        }
    }
    zk.create(
        "/locked",
        b"secret",
        &CreateMode::Persistent.with_acls(Acls::creator_all()),
    )
    .await
    .unwrap();
    zk.create(
        "/eph",
        b"held",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    let mut m = zk.new_multi_writer();
    m.add_create("/multi-a", b"a", &opts).unwrap();
    m.add_create("/multi-b", b"b", &opts).unwrap();
    m.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_snapshots_serves_the_same_tree() {
    let s = Server::start("snapCount=50");
    let zk = owner(&s).await;
    write_varied_tree(&zk, 300).await;
    churn_until_snapshots(&zk, &s, 3).await;
    let before = tree_of(&zk).await;
    assert!(before.contains_key("/eph"));
    let snaps = files(&v2(&s), "snapshot.");
    let logs = files(&v2(&s), "log.");
    assert!(
        snaps.len() >= 4,
        "snapshot.0 and at least 3 more: {snaps:?}"
    );
    assert!(logs.len() >= 3, "the log rolled at each snapshot: {logs:?}");
    let s = s.restart();
    assert!(s.logged("loaded "), "{}", s.log_text());
    assert!(
        s.logged("digests checked, 0 mismatched"),
        "{}",
        s.log_text()
    );
    let zk2 = owner(&s).await;
    let after = tree_of(&zk2).await;
    assert_eq!(before.len(), after.len());
    for (p, v) in &before {
        assert_eq!(after.get(p), Some(v), "{p} differs after the restart");
    }
    drop(zk);
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_newest_snapshot_falls_back_to_an_older_one() {
    let s = Server::start("snapCount=40");
    let zk = owner(&s).await;
    write_varied_tree(&zk, 200).await;
    churn_until_snapshots(&zk, &s, 2).await;
    let before = tree_of(&zk).await;
    let mut s = s;
    s.kill9();
    // Only now: a dropped client closes its session, which would delete /eph.
    drop(zk);
    let snaps = files(&v2(&s), "snapshot.");
    let newest = snaps.last().unwrap().clone();
    let len = std::fs::metadata(&newest).unwrap().len() as usize;
    flip_byte(&newest, len / 2);
    let s = s.restart();
    assert!(
        s.logged("trying an older snapshot"),
        "fallback is logged: {}",
        s.log_text()
    );
    let zk = owner(&s).await;
    let after = tree_of(&zk).await;
    assert_eq!(before.len(), after.len());
    for (p, v) in &before {
        // /eph too: its session was never closed, so it lives on until it expires.
        assert_eq!(after.get(p), Some(v), "{p} differs after the fallback");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_valid_snapshot_stops_start_up_with_a_clear_error() {
    let mut s = Server::start("snapCount=40");
    let zk = owner(&s).await;
    write_varied_tree(&zk, 60).await;
    churn_until_snapshots(&zk, &s, 1).await;
    drop(zk);
    s.kill9();
    for p in files(&v2(&s), "snapshot.") {
        let len = std::fs::metadata(&p).unwrap().len() as usize;
        flip_byte(&p, len / 2);
    }
    let (code, err) = start_failing(&s.dir.path().join("zoo.cfg"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no valid snapshot in"), "{err}");
    assert!(
        err.contains("checksum mismatch"),
        "the reason is logged: {err}"
    );
}

fn paddock(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_keeps_the_newest_snapshots_and_the_logs_they_need() {
    let s = Server::start("snapCount=10");
    let zk = owner(&s).await;
    write_varied_tree(&zk, 150).await;
    churn_until_snapshots(&zk, &s, 6).await;
    let before = tree_of(&zk).await;
    let mut s = s;
    s.kill9();
    // Only now: a dropped client closes its session, which would delete /eph.
    drop(zk);
    let snaps = files(&v2(&s), "snapshot.");
    assert!(snaps.len() >= 7, "{snaps:?}");
    let cfg = s.dir.path().join("zoo.cfg");
    let (ok, out) = paddock(&["purge", cfg.to_str().unwrap(), "-n", "3"]);
    assert!(ok, "{out}");
    let kept = files(&v2(&s), "snapshot.");
    assert_eq!(kept, snaps[snaps.len() - 3..].to_vec(), "{out}");
    let oldest_kept = kept[0].file_name().unwrap().to_string_lossy().to_string();
    let oldest_kept = i64::from_str_radix(&oldest_kept["snapshot.".len()..], 16).unwrap();
    let logs = files(&v2(&s), "log.");
    let starts: Vec<i64> = logs
        .iter()
        .map(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            i64::from_str_radix(&n["log.".len()..], 16).unwrap()
        })
        .collect();
    assert!(
        starts[0] <= oldest_kept + 1,
        "the log after the oldest kept snapshot stays: {starts:?} vs 0x{oldest_kept:x}"
    );
    assert!(
        starts.iter().filter(|&&z| z <= oldest_kept).count() <= 1,
        "older logs went: {starts:?}"
    );
    // The oldest kept snapshot plus the kept logs still rebuild everything.
    for p in &kept[1..] {
        std::fs::remove_file(p).unwrap();
    }
    let s = s.restart();
    let zk = owner(&s).await;
    let after = tree_of(&zk).await;
    for (p, v) in &before {
        assert_eq!(after.get(p), Some(v), "{p} differs after purge + restart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autopurge_runs_at_start() {
    let s = Server::start("snapCount=10");
    let zk = owner(&s).await;
    write_varied_tree(&zk, 100).await;
    churn_until_snapshots(&zk, &s, 5).await;
    drop(zk);
    let mut s = s;
    s.kill9();
    assert!(files(&v2(&s), "snapshot.").len() >= 6);
    let dir = s.dir.clone();
    drop(s);
    // A fresh port: the old one may be taken by now, and nothing here needs it.
    let s = Server::start_in(
        dir,
        "snapCount=10\nautopurge.purgeInterval=1\nautopurge.snapRetainCount=3",
        0,
    );
    assert!(s.logged("autopurge: kept 3 snapshots"), "{}", s.log_text());
    assert!(files(&v2(&s), "snapshot.").len() <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_tools_print_every_record_and_node() {
    let s = Server::start("snapCount=30");
    let zk = owner(&s).await;
    write_varied_tree(&zk, 50).await;
    churn_until_snapshots(&zk, &s, 1).await;
    let tree = tree_of(&zk).await;
    let mut s = s;
    s.kill9();
    // Only now: a dropped client closes its session, and a close that reached the
    // server first would delete /eph, which `tree` holds. (Given time to try it.)
    drop(zk);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A snapshot of the final tree: restart replays the tail and snapshots it, or, when
    // the newest snapshot already holds every txn, replays nothing.
    let s = s.restart();
    assert!(s.logged("recovered in"), "{}", s.log_text());
    if !s.log_text().contains(" 0 txns replayed") {
        assert!(s.logged("written: "), "{}", s.log_text());
    }
    let snap = files(&v2(&s), "snapshot.").pop().unwrap();
    let (ok, out) = paddock(&["dump-snapshot", snap.to_str().unwrap(), "--json"]);
    assert!(ok, "{out}");
    let mut nodes = BTreeMap::new();
    for line in out.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(p) = v.get("path") {
            nodes.insert(p.as_str().unwrap().to_string(), v.clone());
        }
    }
    assert_eq!(nodes.len(), tree.len(), "one line per node");
    let n1 = &nodes["/app/n0001"];
    assert_eq!(n1["data"], "dmFsdWUgMQ=="); // base64 of "value 1"
    assert_eq!(n1["version"], 0);
    let (ok, text) = paddock(&["dump-snapshot", snap.to_str().unwrap()]);
    assert!(ok && text.contains("checksums ok"), "{text}");

    let first_log = files(&v2(&s), "log.").remove(0);
    let (ok, out) = paddock(&["dump-log", first_log.to_str().unwrap(), "--json"]);
    assert!(ok, "{out}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["tail"], "Clean");
    assert_eq!(last["records"].as_u64().unwrap() as usize, lines.len() - 1);
    assert_eq!(lines[0]["txn"]["type"], "createSession");
    assert!(lines.iter().any(|l| l["txn"]["type"]
        .as_str()
        .unwrap_or("")
        .starts_with("create")
        && l["txn"]["path"] == "/app/n0001"));
    let (ok, bad) = paddock(&["dump-log", snap.to_str().unwrap()]);
    assert!(!ok && bad.contains("not a txn log"), "{bad}");
}

/// kill -9 of the server ends its forked snapshot child too, as it would end
/// ZooKeeper's snapshot thread: nothing writes into the data directory after the server
/// is gone (a restarted server, or an operator, may be working on it by then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_child_ends_with_its_server() {
    let mut s = Server::start("snapCount=100");
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    zk.create("/big", b"", &opts).await.unwrap();
    // 50 to 100 MB in the tree when the snapshot starts: it takes a while to write.
    let value = vec![7u8; 1_000_000];
    let mut i = 0;
    let line = loop {
        if let Some(l) = s
            .log_text()
            .lines()
            .find(|l| l.contains("writes it; the writer paused"))
        {
            break l.to_owned();
        }
        assert!(i < 200, "no snapshot started: {}", s.log_text());
        zk.create(&format!("/big/{i}"), &value, &opts)
            .await
            .unwrap();
        i += 1;
    };
    s.kill9();
    // "snapshot 0x<zxid>: child <pid> writes it; ..."
    let zxid = line
        .split("snapshot 0x")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    let pid: u32 = line
        .split("child ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Gone, or a zombie: the killed server's children go to init (or a subreaper), which
    // may reap them late or never; a zombie writes nothing.
    let running = || {
        let stat = format!("/proc/{pid}/stat");
        !matches!(proc_state(Path::new(&stat)), None | Some('Z' | 'X'))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while running() {
        assert!(
            Instant::now() < deadline,
            "snapshot child {pid} outlived its server"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let snap = v2(&s).join(format!("snapshot.{zxid}"));
    assert!(
        !snap.exists(),
        "{} was finished after its server was killed",
        snap.display()
    );
    std::mem::forget(zk);
}

/// Bytes of `path` in the page cache (mincore over a shared mapping of it).
fn cached_bytes(path: &Path) -> u64 {
    let file = std::fs::File::open(path).unwrap();
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let pages = map.len().div_ceil(4096);
    let mut resident = vec![0u8; pages];
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut _, map.len(), resident.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    resident.iter().filter(|&&r| r & 1 == 1).count() as u64 * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_log_records_leave_the_page_cache() {
    // On the target directory's filesystem: tmpfs (a common /tmp) cannot drop a page.
    let dir = Arc::new(tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap());
    let s = Server::start_in(dir, "preAllocSize=65536", 0);
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    zk.create("/big", b"", &opts).await.unwrap();
    let value = vec![7u8; 100_000];
    for _ in 0..60 {
        zk.set_data("/big", &value, None).await.unwrap();
    }
    let log = files(&v2(&s), "log.").pop().unwrap();
    // 6 MB of records were synced; what stays cached is at most the records since the
    // last drop (1 MB) and the zeros written ahead of them (1 MB).
    let cached = cached_bytes(&log);
    assert!(
        cached <= 2_200_000,
        "{cached} bytes of {} still in the page cache",
        log.display()
    );
    // And every record is there to read back.
    let s = s.restart();
    let zk = connect(&s).await;
    let (data, stat) = zk.get_data("/big").await.unwrap();
    assert_eq!((data.len(), stat.version), (100_000, 60));
}
