//! Recovery: the data directory, the newest valid snapshot and the txn log after it,
//! into the tree, the indexes and the sessions (start-up, and a learner rebuilding after
//! its leader's TRUNC or SNAP).

use crate::acl::open_acl;
use crate::config::Config;
use crate::proto::DecodeError;
use crate::session::SessionTracker;
use crate::snap::NodeError;
use crate::tree::{split_path, AclRef, NodeRef, PathRef};
use crate::tree::{DataTree, Node};
use crate::txn::commit::{self, Committed, Indexes, Source};
use crate::txn::{decode_record_digest, Store, Txn, TxnHeader};
use crate::types::Zxid;
use crate::zab::broadcast::epoch_of;
use std::collections::VecDeque;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("data directory {}: {error}", .path.display())]
    DataDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("data directory {} is in use by another running server (lock file {})", .dir.display(), .lock.display())]
    Locked { dir: PathBuf, lock: PathBuf },
    #[error("txn log: {0}")]
    Log(#[from] crate::log::LogError),
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("{0}")]
    Epoch(#[from] EpochError),
    #[error("no valid snapshot in {} (every snapshot file failed its checks; see the log)", .0.display())]
    NoSnapshot(PathBuf),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

pub use crate::txn::initial_tree;

pub fn prepare_dir(dir: &Path) -> Result<PathBuf, StartError> {
    let v2 = dir.join("version-2");
    std::fs::create_dir_all(&v2).map_err(|error| StartError::DataDir {
        path: v2.clone(),
        error,
    })?;
    let probe = v2.join(".paddock-write-test");
    std::fs::write(&probe, b"").map_err(|error| StartError::DataDir {
        path: v2.clone(),
        error,
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(v2)
}

/// Holds the data directory's lock for the life of the process. The file must not be
/// opened (and closed) again by this process: closing any descriptor of it drops a POSIX lock.
pub fn lock_dir(v2: &Path) -> Result<File, StartError> {
    let lock = v2.join(".paddock.lock");
    let f = File::create(&lock).map_err(|error| StartError::DataDir {
        path: lock.clone(),
        error,
    })?;
    // A POSIX record lock, not flock: it belongs to this process alone, so a snapshot
    // child (a fork that may outlive a killed server by a moment) does not hold it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
    if rc != 0 {
        return Err(StartError::Locked {
            dir: v2.to_owned(),
            lock,
        });
    }
    Ok(f)
}

/// A loaded snapshot: the tree, its zxid, and the (zxid, digest) trailer it carried.
type LoadedSnapshot = (DataTree, Zxid, Option<(Zxid, i64)>);

/// Loads the newest snapshot that passes every check, falling back to older ones (up to
/// 100, as ZooKeeper). `None` when the directory has no snapshot at all.
fn load_snapshot(
    v2: &Path,
    idx: &mut Indexes,
    sessions: &mut SessionTracker,
    ext: bool,
    now: i64,
) -> Result<Option<LoadedSnapshot>, StartError> {
    let snaps = crate::snap::list_snapshots(v2).map_err(|error| StartError::DataDir {
        path: v2.to_owned(),
        error,
    })?;
    if snaps.is_empty() {
        return Ok(None);
    }
    for s in snaps.iter().take(100) {
        if s.compressed {
            log::warn!(
                "{}: compressed snapshots are not supported; skipped",
                s.path.display()
            );
            continue;
        }
        let t0 = Instant::now();
        let map = match crate::snap::map_file(&s.path) {
            Ok(m) => m,
            Err(e) => {
                log::warn!("{}: {e}; trying an older snapshot", s.path.display());
                continue;
            }
        };
        // One pass builds and checks: a snapshot that fails a seal is dropped whole.
        let mut fresh = Indexes::default();
        match build_tree(&map, &mut fresh, ext) {
            Ok((tree, summary)) => {
                for &(id, timeout) in &summary.sessions {
                    sessions.add(id, timeout, now as u64);
                }
                *idx = fresh;
                log::info!(
                    "loaded {} in {:?}: {} nodes, {} sessions",
                    s.path.display(),
                    t0.elapsed(),
                    summary.nodes,
                    summary.sessions.len()
                );
                return Ok(Some((tree, s.zxid, summary.digest)));
            }
            Err(e) => log::warn!("{}: {e}; trying an older snapshot", s.path.display()),
        }
    }
    Err(StartError::NoSnapshot(v2.to_owned()))
}

/// Recovery's digest checks, as ZooKeeper's: a snapshot's digest is compared when the tree
/// reaches its zxid, and each replayed record's digest after that. A mismatch is logged,
/// not fatal (ZooKeeper counts it too).
#[derive(Default)]
struct DigestCheck {
    pending: Option<(Zxid, i64)>,
    checked: u64,
    mismatched: u64,
}

impl DigestCheck {
    /// The tree has reached `zxid` with digest `tree`: check a pending snapshot digest.
    fn at(&mut self, zxid: Zxid, tree: i64) {
        if let Some((z, d)) = self.pending {
            if z == zxid {
                self.pending = None;
                self.compare(zxid, d, tree, "snapshot");
            }
        }
    }
    fn compare(&mut self, zxid: Zxid, expected: i64, tree: i64, what: &str) {
        self.checked += 1;
        if expected != tree {
            self.mismatched += 1;
            if self.mismatched <= 5 {
                log::warn!(
                    "digest mismatch at zxid 0x{zxid:x}: the {what} says {expected}, the tree has {tree}"
                );
            }
        }
    }
}

/// A node read from a snapshot whose subtree is still being read: its children set grows
/// until the file leaves the subtree, then it is published.
struct OpenNode<'a> {
    key: PathRef,
    node: Node,
    data: Option<&'a [u8]>,
}

fn is_ancestor(a: &str, p: &str) -> bool {
    if a == "/" {
        return p != "/";
    }
    p.len() > a.len() && p.starts_with(a) && p.as_bytes()[a.len()] == b'/'
}

/// Builds the tree from a snapshot; `parse` checks every seal on the way, and on any
/// failure the caller drops what was built. Nodes come parents first;
/// in ZooKeeper's and Paddock's files each subtree is one run, so a stack of the open
/// ancestors builds every children set without a second pass.
fn build_tree(
    bytes: &[u8],
    idx: &mut Indexes,
    ext: bool,
) -> Result<(DataTree, crate::snap::Summary), crate::snap::ParseError> {
    let tree = DataTree::default();
    let open: AclRef = crate::txn::prep::intern_acl(&mut idx.acls, &open_acl());
    let mut refs: crate::tree::FastMap<i64, AclRef> = Default::default();
    let mut stack: Vec<OpenNode<'_>> = Vec::new();
    let publish = |o: OpenNode<'_>, idx: &mut Indexes| {
        let owner = o.node.ephemeral_owner;
        let mut store = Committed::new(&tree, idx, ext);
        let n = NodeRef::new(&o.key, o.node, o.data);
        store.put_new(o.key.clone(), n);
        if owner != 0 {
            store.owner_changed(&o.key, owner, true);
        }
        store.publish();
    };
    let summary = crate::snap::parse(bytes, |summary, rec| {
        if refs.is_empty() {
            for (r, list) in &summary.acls {
                refs.insert(*r, crate::txn::prep::intern_acl(&mut idx.acls, list));
            }
        }
        let acl = match rec.acl_ref {
            -1 => open.clone(),
            r => refs.get(&r).cloned().ok_or_else(|| NodeError::UnknownAcl {
                path: rec.path.to_owned(),
                acl_ref: r,
            })?,
        };
        while let Some(top) = stack.last() {
            if is_ancestor(&top.key, rec.path) {
                break;
            }
            let top = stack.pop().unwrap();
            publish(top, idx);
        }
        let key = PathRef::from(rec.path);
        if rec.path != "/" {
            let (parent, _) =
                split_path(rec.path).ok_or_else(|| NodeError::BadPath(rec.path.to_owned()))?;
            match stack.last_mut() {
                Some(top) if &*top.key == parent => top.node.add_child(key.clone()),
                _ => {
                    // Not in one run: the parent was published already.
                    let p = tree.get(parent).ok_or_else(|| NodeError::MissingParent {
                        path: rec.path.to_owned(),
                        parent: parent.to_owned(),
                    })?;
                    let mut f = p.fields();
                    f.add_child(key.clone());
                    tree.put_path(PathRef::from(parent), NodeRef::new(parent, f, p.data()));
                }
            }
        }
        let st = rec.stat;
        stack.push(OpenNode {
            key,
            node: Node {
                czxid: st.czxid,
                mzxid: st.mzxid,
                pzxid: st.pzxid,
                ctime: st.ctime,
                mtime: st.mtime,
                ephemeral_owner: st.ephemeral_owner,
                version: st.version,
                cversion: st.cversion,
                aversion: st.aversion,
                acl,
                children: None,
                digest: 0,
            },
            data: rec.data,
        });
        Ok(())
    })?;
    while let Some(top) = stack.pop() {
        publish(top, idx);
    }
    if tree.get("/").is_none() {
        return Err(crate::snap::ParseError::NoRoot);
    }
    Ok((tree, summary))
}

/// What recovery rebuilt from a data directory.
pub struct RecoveredState {
    pub tree: DataTree,
    pub idx: Indexes,
    pub sessions: SessionTracker,
    pub last_zxid: Zxid,
    /// Replayed txns follow the newest snapshot: take one at the first chance.
    pub snapshot_soon: bool,
    /// The newest logged records, for an ensemble leader's diff window.
    pub recent: Recent,
}

/// Loads the newest good snapshot and replays the log after it (start-up, and a learner
/// rebuilding after its leader truncated its log or sent a snapshot).
pub fn recover_state(
    cfg: &Config,
    data_v2: &Path,
    log_v2: &Path,
) -> Result<RecoveredState, StartError> {
    let now = super::now_ms();
    recover_state_from(cfg, data_v2, now, |after, f| {
        crate::log::recover(log_v2, after, f)
    })
}

/// A replay callback: a record's bytes in, its zxid out (or why it does not decode).
pub type ReplayRecord<'a> = &'a mut dyn FnMut(&[u8]) -> Result<Zxid, DecodeError>;

/// `recover_state` with the log as a value: `log(after, f)` feeds every record, oldest
/// first, to `f` (which skips those up to `after`), stopping at the first that does not
/// decode (a torn tail, which it cuts off). The files, or the simulator's disk. `now`:
/// when the sessions are touched, and where new session ids start (ms since the epoch).
pub fn recover_state_from(
    cfg: &Config,
    data_v2: &Path,
    now: i64,
    log: impl FnOnce(Zxid, ReplayRecord<'_>) -> Result<crate::log::Recovered, crate::log::LogError>,
) -> Result<RecoveredState, StartError> {
    let t0 = Instant::now();
    let ext = cfg.extended_types;
    let mut sessions = SessionTracker::new(cfg.tick_ms as u64, cfg.server_id, now);
    let removed = crate::snap::remove_temporaries(data_v2)?;
    if removed > 0 {
        log::warn!("removed {removed} unfinished snapshot file(s) left by a crash");
    }
    let mut idx = Indexes::default();
    let loaded = load_snapshot(data_v2, &mut idx, &mut sessions, ext, now)?;
    let mut digests = DigestCheck::default();
    let (tree, snap_zxid) = match loaded {
        Some((tree, zxid, snap_digest)) => {
            // A Paddock snapshot is exact: its digest is the tree's now. A ZooKeeper one
            // is fuzzy: its digest holds at a later zxid, checked when replay gets there.
            digests.pending = snap_digest.filter(|_| cfg.digest_enabled);
            digests.at(zxid, idx.digest);
            (tree, Some(zxid))
        }
        None => {
            let (tree, fresh) = fresh_state();
            idx = fresh;
            (tree, None)
        }
    };
    let after = snap_zxid.unwrap_or(0);
    let mut replayed = 0u64;
    let mut recent = Recent {
        txns: Default::default(),
        from: after,
        max: cfg.diff_window_txns,
    };
    let keep_recent = cfg.quorum.is_some();
    let recovered = log(after, &mut |bytes: &[u8]| -> Result<Zxid, DecodeError> {
        let (hdr, txn, digest) = decode_record_digest(bytes)?;
        if hdr.zxid <= after {
            return Ok(hdr.zxid);
        }
        if replayed == 0 && hdr.zxid > after + 1 && hdr.zxid >> 32 == after >> 32 {
            // Within one epoch zxids are consecutive: the txns in between are missing.
            log::warn!(
                "txn log gap: the state is at 0x{after:x} but the next logged txn is 0x{:x}; \
                 the txns in between are not in the log",
                hdr.zxid
            );
        }
        let applied = replay(&tree, &mut idx, ext, &hdr, &txn);
        replayed += 1;
        if keep_recent {
            recent.push(hdr.zxid, std::sync::Arc::from(bytes));
        }
        if digests.pending.is_some() {
            digests.at(hdr.zxid, idx.digest);
        } else if let Some(d) = digest.filter(|_| cfg.digest_enabled) {
            digests.compare(hdr.zxid, d, idx.digest, "log");
        }
        for (s, t) in applied.sessions_created {
            sessions.add(s, t, now as u64);
        }
        for s in applied.sessions_closed {
            sessions.remove(s);
        }
        Ok(hdr.zxid)
    })?;
    log::info!(
        "recovered in {:?}: {}{replayed} txns replayed up to zxid 0x{:x}: {} nodes, {} sessions, \
         tree digest {} ({} digests checked, {} mismatched){}",
        t0.elapsed(),
        match snap_zxid {
            Some(z) => format!("snapshot 0x{z:x}, "),
            None => "no snapshot, ".to_string(),
        },
        recovered.last_zxid,
        tree.len(),
        sessions.len(),
        idx.digest,
        digests.checked,
        digests.mismatched,
        if recovered.truncated.is_empty() {
            String::new()
        } else {
            format!(", truncated: {}", recovered.truncated.join("; "))
        }
    );
    if snap_zxid.is_none() {
        // As ZooKeeper: a data directory always has a snapshot once a server has started
        // on it (ZooKeeper refuses logs without one). Small here: a fresh tree, or logs only.
        let list: Vec<(i64, i32)> = sessions.iter().map(|(i, s)| (*i, s.timeout_ms)).collect();
        let src = crate::snap::Source {
            tree: &tree,
            sessions: &list,
            acls: &idx.acls,
            digest: cfg
                .digest_enabled
                .then_some((recovered.last_zxid, idx.digest)),
        };
        let (path, size) =
            crate::snap::write_file(data_v2, recovered.last_zxid, &src).map_err(|error| {
                StartError::DataDir {
                    path: data_v2.to_owned(),
                    error,
                }
            })?;
        log::info!("wrote {} ({size} bytes)", path.display());
    }
    Ok(RecoveredState {
        tree,
        idx,
        sessions,
        last_zxid: recovered.last_zxid,
        snapshot_soon: snap_zxid.is_some() && replayed > 0,
        recent,
    })
}

/// The tree of a server that has never run, and its indexes.
pub fn fresh_state() -> (DataTree, Indexes) {
    let tree = initial_tree();
    let mut idx = Indexes::default();
    tree.for_each(|p, n| {
        idx.digest = idx.digest.wrapping_add(n.digest as i64);
        idx.data_bytes += (p.len() + n.data_len()) as i64;
        idx.acls
            .entry(n.acl.to_vec())
            .or_insert_with(|| n.acl.clone());
    });
    (tree, idx)
}

/// Applies one recovered txn to the tree (start-up replay).
pub fn replay(
    tree: &DataTree,
    idx: &mut Indexes,
    extended_types: bool,
    hdr: &TxnHeader,
    txn: &Txn,
) -> commit::Applied {
    let mut applied = commit::apply(tree, idx, extended_types, hdr, Source::Txn(txn));
    commit::publish(tree, std::mem::take(&mut applied.held), || {});
    applied
}

/// The persisted epochs of ZAB.
pub struct Epochs {
    dir: PathBuf,
    pub accepted: i64,
    pub current: i64,
}

/// Why the epoch files stop start-up.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error("{}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {text:?} is not an epoch", .path.display())]
    NotAnEpoch { path: PathBuf, text: String },
    #[error("{}: the accepted epoch {accepted} is older than the current epoch {current}", .path.display())]
    AcceptedBehindCurrent {
        path: PathBuf,
        accepted: i64,
        current: i64,
    },
}

fn read_epoch(path: &Path) -> Result<Option<i64>, EpochError> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| EpochError::NotAnEpoch {
                path: path.to_owned(),
                text: s.trim().to_owned(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(EpochError::Io {
            path: path.to_owned(),
            error,
        }),
    }
}

impl Epochs {
    /// Reads both files; a missing one is taken from the last logged zxid, as ZooKeeper
    /// does on its first start as an ensemble member.
    ///
    /// A current epoch behind the log's last zxid is raised to it (and written), with a
    /// warning: a learner makes the history its leader synced durable before it takes
    /// the new epoch (writer/ensemble.rs, NEWLEADER), so a crash between the two leaves a
    /// log that is a prefix of that leader's history with the old epoch beside it. Its
    /// last txn's epoch is the most it may claim: any txn committed beyond its log was
    /// acked by a quorum that holds a newer epoch, or the same epoch and a higher zxid,
    /// and so out-votes it. (ZooKeeper refuses to start there unless it finds
    /// currentEpoch.tmp; it takes the new epoch first, and can lose committed txns.)
    pub fn load(dir: &Path, last_zxid: Zxid) -> Result<Epochs, EpochError> {
        let logged = epoch_of(last_zxid);
        let mut current = read_epoch(&dir.join("currentEpoch"))?.unwrap_or(logged);
        let mut accepted = read_epoch(&dir.join("acceptedEpoch"))?.unwrap_or(current);
        if accepted < current {
            return Err(EpochError::AcceptedBehindCurrent {
                path: dir.join("acceptedEpoch"),
                accepted,
                current,
            });
        }
        let raise = current < logged;
        if raise {
            log::warn!(
                "{}: the current epoch {current} is older than the last logged zxid \
                 0x{last_zxid:x}: a sync with a leader ended before its new epoch was taken; \
                 taking epoch {logged}",
                dir.join("currentEpoch").display()
            );
            current = logged;
            accepted = accepted.max(logged);
        }
        let e = Epochs {
            dir: dir.to_owned(),
            accepted,
            current,
        };
        if raise {
            for (name, v) in [("acceptedEpoch", accepted), ("currentEpoch", current)] {
                e.write(name, v).map_err(|error| EpochError::Io {
                    path: dir.join(name),
                    error,
                })?;
            }
        }
        Ok(e)
    }

    pub(crate) fn write(&self, name: &str, value: i64) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{value}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(name))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

/// The recent log records, for a leader's diff window (`paddock.diffWindowTxns`).
#[derive(Default)]
pub struct Recent {
    pub txns: VecDeque<(Zxid, Arc<[u8]>)>,
    /// Every logged txn after this zxid is in `txns`.
    pub from: Zxid,
    pub max: usize,
}

impl Recent {
    pub fn push(&mut self, zxid: Zxid, record: Arc<[u8]>) {
        self.txns.push_back((zxid, record));
        while self.txns.len() > self.max {
            self.from = self.txns.pop_front().unwrap().0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EpochError, Epochs};

    /// A learner that crashed after its leader's history was durable and before it took
    /// the new epoch starts with the epoch of its last txn, written back; an accepted
    /// epoch behind the current one is still refused.
    #[test]
    fn a_current_epoch_behind_the_log_is_raised_to_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("currentEpoch"), "1").unwrap();
        std::fs::write(d.path().join("acceptedEpoch"), "5").unwrap();
        let e = Epochs::load(d.path(), (4 << 32) | 7).unwrap();
        assert_eq!((e.accepted, e.current), (5, 4));
        let on_disk = std::fs::read_to_string(d.path().join("currentEpoch")).unwrap();
        assert_eq!(on_disk.trim(), "4");
        // Up to date: nothing changes.
        let e = Epochs::load(d.path(), (4 << 32) | 9).unwrap();
        assert_eq!((e.accepted, e.current), (5, 4));
        std::fs::write(d.path().join("acceptedEpoch"), "3").unwrap();
        assert!(matches!(
            Epochs::load(d.path(), 1),
            Err(EpochError::AcceptedBehindCurrent { .. })
        ));
    }
}
