//! A full disk: the data directory on a small tmpfs the test mounts (needs root, as CI
//! runs). Writes are refused with SystemError while reads go on; nothing answered is lost;
//! writes work again once space is freed, and everything survives a restart.

use crate::harness::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zookeeper_client::{Acls, CreateMode, Error};

/// A tmpfs mounted on `dir` for the life of the value.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size_kib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_owned(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // The server is gone by now, so a plain umount works and the temp dir can go;
        // lazily only if something still holds it.
        let plain = Command::new("umount").arg(&self.dir).status();
        if !plain.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Fills the file system of `dir` with one file, until it is full.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    // Big steps, then page-sized ones for the last few pages.
    for size in [64 * 1024, 4096] {
        let chunk = vec![7u8; size];
        for _ in 0..100_000 {
            if f.write_all(&chunk).and_then(|_| f.sync_all()).is_err() {
                break;
            }
        }
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_keeps_reads_and_recovers() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let _fs = Tmpfs::mount(&data, 8 * 1024);
    let s = Server::start_in(dir.clone(), "snapCount=1000000", 0);
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let mut answered = Vec::new();
    for i in 0..20 {
        let p = format!("/before-{i}");
        zk.create(&p, b"kept", &opts).await.unwrap();
        answered.push(p);
    }
    let filler = fill(&data);

    // The segment's preallocated space takes writes until it must grow; then SystemError
    // (-1; the client crate has no name for it).
    let value = vec![b'v'; 512];
    let mut refused = None;
    for i in 0..20_000 {
        let p = format!("/during-{i}");
        match zk.create(&p, &value, &opts).await {
            Ok(_) => answered.push(p),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert_eq!(
        refused,
        Some(Error::UnexpectedErrorCode(-1)),
        "{}",
        s.log_text()
    );
    assert!(s.logged("no space left"), "{}", s.log_text());
    // Reads go on, and so does a session's other traffic.
    let (d, _) = zk.get_data("/before-3").await.unwrap();
    assert_eq!(d, b"kept");
    // Issue 14: no claim of health the server does not have.
    assert_eq!(four(&s, "ruok"), "", "ruok while writes are refused");
    assert!(four(&s, "srvr").contains("Refusing writes: no space left for the txn log"));
    assert_eq!(
        zk.create("/still-full", b"", &opts).await.unwrap_err(),
        Error::UnexpectedErrorCode(-1)
    );

    std::fs::remove_file(&filler).unwrap();
    zk.create("/after-free", b"back", &opts).await.unwrap();
    answered.push("/after-free".into());
    assert_eq!(four(&s, "ruok"), "imok");
    assert!(!four(&s, "srvr").contains("Refusing writes"));
    assert!(!s.log_text().contains("stopping"), "{}", s.log_text());

    // Everything answered is on disk.
    let s = s.restart();
    let zk = connect(&s).await;
    for p in &answered {
        zk.get_data(p)
            .await
            .unwrap_or_else(|e| panic!("{p} answered but lost: {e}"));
    }
    assert_eq!(
        zk.get_data("/still-full").await.unwrap_err(),
        Error::NoNode,
        "a refused write left nothing behind"
    );
    assert!(
        s.logged("digests checked, 0 mismatched"),
        "{}",
        s.log_text()
    );
}

/// A data directory that cannot be made or written stops start-up with one clear line.
#[test]
fn unusable_data_directories_stop_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |data: &Path| {
        let p = dir.path().join("zoo.cfg");
        std::fs::write(&p, format!("dataDir={}\nclientPort=0\n", data.display())).unwrap();
        start_failing(&p)
    };
    // Missing and impossible to make: a file stands where a parent directory should be.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let (code, err) = run(&file.join("data"));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("data directory") && err.contains("a-file/data"),
        "{err}"
    );
    assert!(err.contains("Not a directory"), "{err}");
    // Unwritable: a read-only file system (permission bits do not stop root).
    let ro = dir.path().join("ro");
    let fs = Tmpfs::mount(&ro, 1024);
    let status = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&ro)
        .status()
        .unwrap();
    assert!(status.success());
    let (code, err) = run(&ro);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    drop(fs);
}

/// A snapshot child that runs out of space leaves no snapshot and no temporary file
/// behind; the failure is logged and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_runs_out_of_space_leaves_nothing_behind() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let _fs = Tmpfs::mount(&data, 32 * 1024);
    // The txn log lives elsewhere, so only the snapshots run out of space.
    let logs = dir.path().join("logs");
    let s = Server::start_in(
        dir.clone(),
        &format!("snapCount=100\ndataLogDir={}", logs.display()),
        0,
    );
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let big = vec![b'b'; 4000];
    for i in 0..50 {
        zk.create(&format!("/big-{i}"), &big, &opts).await.unwrap();
    }
    // With snapCount=100 a snapshot may start at the 51st txn, before the fill. Its
    // "writes it" line is logged at once (the sleep lets it arrive), its "written: " when
    // the writer reaps the child, a while later: wait for that, so that it ends before the
    // disk is full and is counted in `before`.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ended = |log: &str| log.matches(" written: ").count() + log.matches(" failed (").count();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = s.log_text();
        if log.matches(" writes it; ").count() == ended(&log) {
            break;
        }
        assert!(Instant::now() < deadline, "a snapshot never ended: {log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let filler = fill(&data);
    let log = s.log_text();
    let (written, failed) = (
        log.matches(" written: ").count(),
        log.matches(" failed (").count(),
    );
    // Enough txns for a snapshot, which cannot fit; the writes themselves go on.
    for i in 0..200 {
        zk.set_data("/big-0", format!("{i}").as_bytes(), None)
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.log_text().matches(" failed (").count() == failed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = s.log_text();
    assert!(log.matches(" failed (").count() > failed, "{log}");
    assert_eq!(log.matches(" written: ").count(), written, "{log}");
    // A later snapshot child may still be failing (a tmp file for a moment); a file left
    // behind stays.
    let v2 = data.join("version-2");
    let tmp_files = || -> Vec<String> {
        std::fs::read_dir(&v2)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("tmp."))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = tmp_files();
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = tmp_files();
    }
    assert!(left.is_empty(), "temporary snapshot files left: {left:?}");
    let (d, _) = zk.get_data("/big-3").await.unwrap();
    assert_eq!(d, big);
    std::fs::remove_file(&filler).unwrap();
    assert!(!s.log_text().contains("stopping"), "{}", s.log_text());
}

/// Issue 14, section 1 (small volumes): the data directory on a 16 MiB volume with
/// ZooKeeper's default preAllocSize (64 MiB). Before, every txn (session creates too)
/// was refused for want of 64 MiB while ruok answered imok. Now preallocation takes what
/// the volume has, says so once, and the server serves until the volume is really full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_smaller_than_prealloc_size_still_takes_writes() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let _fs = Tmpfs::mount(&data, 16 * 1024);
    let s = Server::start_in(dir.clone(), "preAllocSize=65536", 0);
    let zk = connect(&s).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    for i in 0..200 {
        zk.create(&format!("/n-{i}"), &[b'v'; 1024], &opts)
            .await
            .unwrap();
    }
    assert_eq!(four(&s, "ruok"), "imok");
    assert!(
        s.logged("less than preAllocSize (65536 KiB) free for the txn log"),
        "{}",
        s.log_text()
    );
    let s = s.restart();
    let zk = connect(&s).await;
    assert_eq!(zk.get_data("/n-199").await.unwrap().0.len(), 1024);
}
