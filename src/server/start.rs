//! Start-up: data directory, recovery from the txn log, threads.

use super::writer::ensemble::{mode, Ensemble, Epochs, Recent};
use super::writer::{replay, WriterLoop};
use super::{ReactorHandle, ServerStats, Shared, ToWriter};
use crate::acl::open_acl;
use crate::config::Config;
use crate::log::{recover, FileTxnLog};
use crate::net::{Reactor, WAKER};
use crate::session::SessionTracker;
use crate::tree::{split_path, AclRef, NodeRef, PathRef};
use crate::tree::{DataTree, Node};
use crate::txn::commit::{Committed, Indexes};
use crate::txn::{decode_record_digest, Store};
use crate::types::Zxid;
use crate::zab::broadcast::Limits;
use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
    Epoch(#[from] super::writer::ensemble::EpochError),
    #[error("no valid snapshot in {} (every snapshot file failed its checks; see the log)", .0.display())]
    NoSnapshot(PathBuf),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub use crate::txn::initial_tree;

fn prepare_dir(dir: &Path) -> Result<PathBuf, StartError> {
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
fn lock_dir(v2: &Path) -> Result<File, StartError> {
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
) -> Result<(DataTree, crate::snap::Summary), String> {
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
            r => refs
                .get(&r)
                .cloned()
                .ok_or_else(|| format!("{}: unknown ACL reference {r}", rec.path))?,
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
                split_path(rec.path).ok_or_else(|| format!("bad path {}", rec.path))?;
            match stack.last_mut() {
                Some(top) if &*top.key == parent => top.node.add_child(key.clone()),
                _ => {
                    // Not in one run: the parent was published already.
                    let p = tree
                        .get(parent)
                        .ok_or_else(|| format!("{}: parent {parent} missing", rec.path))?;
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
    })
    .map_err(|e| e.to_string())?;
    while let Some(top) = stack.pop() {
        publish(top, idx);
    }
    if tree.get("/").is_none() {
        return Err("no root node".into());
    }
    Ok((tree, summary))
}

pub struct Running {
    pub addr: SocketAddr,
    pub writer: std::thread::JoinHandle<()>,
    _lock: File,
    _data_lock: Option<File>,
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, StartError> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| StartError::Resolve(format!("{host}:{port}")))
}

/// An ensemble member's quorum side: the election port bound now (an error stops
/// start-up), the quorum thread electing for the life of the server, and what the writer
/// needs to run ZAB.
fn start_quorum(
    cfg: &Config,
    q: &crate::config::quorum::Quorum,
    data_v2: &Path,
    last_zxid: Zxid,
    to_writer: crossbeam_channel::Sender<ToWriter>,
) -> Result<Ensemble, StartError> {
    use crate::config::quorum::LearnerType;
    use crate::quorum::role::{QuorumEvent, Roles};
    let me = q.me();
    let any = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    let election_bind = if q.quorum_listen_on_all_ips {
        any(me.election_port)
    } else {
        resolve(&me.host, me.election_port)?
    };
    let quorum_bind = if q.quorum_listen_on_all_ips {
        any(me.quorum_port)
    } else {
        resolve(&me.host, me.quorum_port)?
    };
    let listener =
        std::net::TcpListener::bind(election_bind).map_err(|error| StartError::Listen {
            addr: election_bind,
            error,
        })?;
    let mut peers = HashMap::new();
    let mut quorum_addrs = HashMap::new();
    for s in &q.servers {
        quorum_addrs.insert(s.id, resolve(&s.host, s.quorum_port)?);
        if s.id != q.my_id {
            peers.insert(s.id, resolve(&s.host, s.election_port)?);
        }
    }
    let voters: Vec<i64> = q.voters().map(|s| s.id).collect();
    let observers: Vec<i64> = q
        .servers
        .iter()
        .filter(|s| s.kind == LearnerType::Observer)
        .map(|s| s.id)
        .collect();
    let epochs = Epochs::load(data_v2, last_zxid).map_err(StartError::Epoch)?;
    let tick = Duration::from_millis(cfg.tick_ms as u64);
    let limits = Limits {
        tick_ms: cfg.tick_ms as u64,
        init_ms: cfg.tick_ms as u64 * cfg.init_limit as u64,
        sync_ms: cfg.tick_ms as u64 * cfg.sync_limit as u64,
        window_max: cfg.diff_window_txns,
    };
    let (relook, relook_rx) = crossbeam_channel::unbounded::<(i64, i64)>();
    let events: crate::quorum::role::Events =
        Arc::new(move |e| to_writer.send(ToWriter::Quorum(e)).is_ok());
    let mut roles = Roles::new(
        q.my_id,
        quorum_addrs,
        quorum_bind,
        tick * cfg.init_limit,
        cfg.jute_maxbuffer + 1024,
        events.clone(),
    );
    let config: Vec<u8> = q
        .servers
        .iter()
        .map(|s| {
            format!(
                "server.{}={}:{}:{}\n",
                s.id, s.host, s.quorum_port, s.election_port
            )
        })
        .chain(std::iter::once("version=0".to_string()))
        .collect::<String>()
        .into_bytes();
    let cnx_timeout = Duration::from_millis(q.cnx_timeout_ms as u64);
    let net = crate::quorum::ElectionNet::start(q.my_id, listener, peers, config, cnx_timeout)?;
    let first = (last_zxid, epochs.current);
    let my_id = q.my_id;
    let (v, o) = (voters.clone(), observers);
    std::thread::Builder::new()
        .name("quorum".into())
        .spawn(move || {
            net.run_forever(v, o, first, &relook_rx, |state, vote| {
                if matches!(
                    state,
                    crate::zab::election::PeerState::Following
                        | crate::zab::election::PeerState::Observing
                ) {
                    events(QuorumEvent::Follow {
                        leader: vote.leader,
                    });
                }
                roles.decided(state, vote);
            });
            log::error!("server {my_id}: the election loop ended");
        })?;
    log::info!(
        "server.{my_id} of an ensemble of {} ({} voters); epochs {}/{}; electing",
        q.servers.len(),
        voters.len(),
        epochs.accepted,
        epochs.current
    );
    Ok(Ensemble {
        my_id: q.my_id,
        voters,
        observer: me.kind == LearnerType::Observer,
        limits,
        relook,
        epochs,
        started: Instant::now(),
    })
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
    let t0 = Instant::now();
    let now = super::now_ms();
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
            let tree = initial_tree();
            tree.for_each(|p, n| {
                idx.digest = idx.digest.wrapping_add(n.digest as i64);
                idx.data_bytes += (p.len() + n.data_len()) as i64;
                idx.acls
                    .entry(n.acl.to_vec())
                    .or_insert_with(|| n.acl.clone());
            });
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
    let recovered = recover(log_v2, after, |bytes| {
        let (hdr, txn, digest) = decode_record_digest(bytes).map_err(|e| e.to_string())?;
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

pub fn start(mut cfg: Config) -> Result<Running, StartError> {
    if let Some(q) = &cfg.quorum {
        // Session ids carry the server id in their top byte: unique across the ensemble.
        cfg.server_id = q.my_id;
        crate::logger::set_server_id(q.my_id);
        if let Some((host, port)) = &q.me().client {
            cfg.client_port = *port;
            if let Some(h) = host {
                cfg.client_port_address = Some(resolve(h, *port)?.ip());
            }
        }
    }
    let data_v2 = prepare_dir(&cfg.data_dir)?;
    let log_v2 = prepare_dir(&cfg.data_log_dir)?;
    let lock = lock_dir(&log_v2)?;
    // dataDir is where snapshots go; a second server on it is as bad as on the logs.
    let data_lock = if data_v2 != log_v2 {
        Some(lock_dir(&data_v2)?)
    } else {
        None
    };
    let state = recover_state(&cfg, &data_v2, &log_v2)?;
    let mut log = FileTxnLog::open(&log_v2, cfg.prealloc_bytes, cfg.force_sync, state.last_zxid)?;
    log.sync_delay_us = cfg.sync_delay_us;
    let RecoveredState {
        tree,
        idx,
        sessions,
        last_zxid,
        snapshot_soon,
        recent,
    } = state;

    let ip = cfg
        .client_port_address
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let addr = SocketAddr::new(ip, cfg.client_port);
    let listener =
        mio::net::TcpListener::bind(addr).map_err(|error| StartError::Listen { addr, error })?;
    let local = listener.local_addr()?;
    // mio listens with a backlog of 128: a burst of reconnecting clients overflows it and
    // waits for the kernel's 1 s SYN retry. Calling listen() again resizes the queue.
    let backlog = if cfg.client_port_listen_backlog > 0 {
        cfg.client_port_listen_backlog
    } else {
        1024
    };
    if unsafe { libc::listen(std::os::unix::io::AsRawFd::as_raw_fd(&listener), backlog) } != 0 {
        log::warn!(
            "cannot set the listen backlog to {backlog}: {}",
            std::io::Error::last_os_error()
        );
    }
    let mut cfg = cfg;
    cfg.client_port = local.port();

    let shared = Arc::new(Shared {
        tree,
        last_zxid: AtomicI64::new(last_zxid),
        mode: AtomicU8::new(if cfg.quorum.is_some() {
            mode::LOOKING
        } else {
            mode::STANDALONE
        }),
        serving: AtomicBool::new(cfg.quorum.is_none()),
        read_only: AtomicBool::new(false),
        stats: ServerStats::default(),
        outstanding: AtomicUsize::new(0),
        large_requests: AtomicUsize::new(0),
        writes_refused: AtomicBool::new(false),
        conns: Mutex::new(Default::default()),
        per_ip: Mutex::new(Default::default()),
        started: Instant::now(),
        cfg,
    });
    shared
        .stats
        .min_response_bytes
        .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);

    let (to_writer, writer_inbox) = crossbeam_channel::unbounded::<ToWriter>();
    let n = shared.cfg.reactor_threads;
    let mut polls = Vec::new();
    let mut handles = Vec::new();
    let mut inboxes = Vec::new();
    for _ in 0..n {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        handles.push(ReactorHandle { tx, waker });
        inboxes.push(rx);
        polls.push(poll);
    }
    let cores = if shared.cfg.pin_cores {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        vec![]
    };
    let mut listener = Some(listener);
    for (i, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
        let reactor = Reactor::new(
            i,
            poll,
            shared.clone(),
            inbox,
            to_writer.clone(),
            if i == 0 { listener.take() } else { None },
            handles.clone(),
        )?;
        let core = if cores.is_empty() {
            None
        } else {
            Some(cores[(i + 1) % cores.len()])
        };
        std::thread::Builder::new()
            .name(format!("reactor-{i}"))
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                reactor.run();
            })?;
    }
    let ens = match &shared.cfg.quorum {
        Some(q) => Some(start_quorum(
            &shared.cfg,
            q,
            &data_v2,
            last_zxid,
            to_writer.clone(),
        )?),
        None => None,
    };
    let writer = WriterLoop::new(
        shared.clone(),
        log,
        writer_inbox,
        handles,
        super::writer::Recovered {
            sessions,
            idx,
            last_zxid,
            snap_dir: data_v2,
            snapshot_soon,
            ens,
            recent,
        },
    );
    let writer_core = cores.first().copied();
    let writer = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || {
            if let Some(c) = writer_core {
                core_affinity::set_for_current(c);
            }
            writer.run();
        })?;
    if shared.cfg.autopurge_purge_interval_hours > 0 {
        // As ZooKeeper's DatadirCleanupManager: once at start, then every interval.
        let (snap, logs) = (
            shared.cfg.data_dir.join("version-2"),
            shared.cfg.data_log_dir.join("version-2"),
        );
        let retain = shared.cfg.autopurge_snap_retain_count as usize;
        let every = Duration::from_secs(3600 * shared.cfg.autopurge_purge_interval_hours as u64);
        std::thread::Builder::new()
            .name("purge".into())
            .spawn(move || loop {
                match crate::snap::purge::purge(&snap, &logs, retain) {
                    Ok(p) => log::info!(
                        "autopurge: kept {} snapshots, removed {} files",
                        p.kept_snapshots.len(),
                        p.removed.len()
                    ),
                    Err(e) => log::error!("autopurge failed: {e}"),
                }
                std::thread::sleep(every);
            })?;
    }
    // Keep a sender alive so the writer never sees its inbox disconnect while serving.
    std::mem::forget(to_writer);
    log::info!("serving on {local} ({} reactor threads)", n);
    Ok(Running {
        addr: local,
        writer,
        _lock: lock,
        _data_lock: data_lock,
    })
}
