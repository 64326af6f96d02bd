//! Start-up: data directory, recovery from the txn log, threads.

use super::writer::{replay, Indexes, WriterLoop};
use super::{ReactorHandle, ServerStats, Shared, ToWriter};
use crate::acl::open_acl;
use crate::config::Config;
use crate::log::{recover, FileTxnLog};
use crate::net::{Reactor, WAKER};
use crate::proto::ops::perm;
use crate::proto::records::Acl;
use crate::session::SessionTracker;
use crate::tree::{AclRef, NodeRef};
use crate::tree::{DataTree, Node};
use crate::txn::decode_record;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize};
use std::sync::{Arc, Mutex};
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
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The tree of a fresh server: `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`.
pub fn initial_tree() -> DataTree {
    let tree = DataTree::default();
    let open: AclRef = crate::tree::AclList::shared(&open_acl());
    let mut root = Node::empty(open.clone());
    root.add_child("/zookeeper".into());
    let mut zk = Node::empty(open.clone());
    zk.add_child("/zookeeper/quota".into());
    zk.add_child("/zookeeper/config".into());
    let mut config = Node::empty(crate::tree::AclList::shared(&[Acl {
        perms: perm::READ,
        id: crate::acl::world_anyone(),
    }]));
    config.aversion = -1;
    tree.put("/".into(), NodeRef::new(root, None));
    tree.put("/zookeeper".into(), NodeRef::new(zk, None));
    tree.put(
        "/zookeeper/quota".into(),
        NodeRef::new(Node::empty(open), None),
    );
    tree.put("/zookeeper/config".into(), NodeRef::new(config, None));
    tree
}

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

/// Holds the data directory's lock for the life of the process.
fn lock_dir(v2: &Path) -> Result<File, StartError> {
    let lock = v2.join(".paddock.lock");
    let f = File::create(&lock).map_err(|error| StartError::DataDir {
        path: lock.clone(),
        error,
    })?;
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(StartError::Locked {
            dir: v2.to_owned(),
            lock,
        });
    }
    Ok(f)
}

pub struct Running {
    pub addr: SocketAddr,
    pub writer: std::thread::JoinHandle<()>,
    _lock: File,
}

pub fn start(cfg: Config) -> Result<Running, StartError> {
    let data_v2 = prepare_dir(&cfg.data_dir)?;
    let log_v2 = prepare_dir(&cfg.data_log_dir)?;
    let lock = lock_dir(&log_v2)?;
    let _ = data_v2;
    let t0 = Instant::now();
    let tree = initial_tree();
    let mut idx = Indexes::default();
    tree.for_each(|p, n| idx.data_bytes += (p.len() + n.data_len()) as i64);
    let now = super::now_ms();
    let mut sessions = SessionTracker::new(cfg.tick_ms as u64, cfg.server_id, now);
    let ext = cfg.extended_types;
    let recovered = recover(&log_v2, 0, |bytes| {
        let (hdr, txn) = decode_record(bytes).map_err(|e| e.to_string())?;
        replay(&tree, &mut idx, ext, &hdr, &txn);
        for (s, t) in idx.created_sessions.drain(..) {
            sessions.add(s, t, now as u64);
        }
        for s in idx.closed_sessions.drain(..) {
            sessions.remove(s);
        }
        Ok(hdr.zxid)
    })?;
    log::info!(
        "recovered {} txns up to zxid 0x{:x} in {:?}: {} nodes, {} sessions{}",
        recovered.records,
        recovered.last_zxid,
        t0.elapsed(),
        tree.len(),
        sessions.len(),
        if recovered.truncated.is_empty() {
            String::new()
        } else {
            format!(", truncated: {}", recovered.truncated.join("; "))
        }
    );
    let mut log = FileTxnLog::open(
        &log_v2,
        cfg.prealloc_bytes,
        cfg.force_sync,
        recovered.last_zxid,
    )?;
    log.sync_delay_us = cfg.sync_delay_us;

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
        last_zxid: AtomicI64::new(recovered.last_zxid),
        stats: ServerStats::default(),
        outstanding: AtomicUsize::new(0),
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
    let writer = WriterLoop::new(
        shared.clone(),
        log,
        writer_inbox,
        handles,
        sessions,
        idx,
        recovered.last_zxid,
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
    // Keep a sender alive so the writer never sees its inbox disconnect while serving.
    std::mem::forget(to_writer);
    log::info!("serving on {local} ({} reactor threads)", n);
    Ok(Running {
        addr: local,
        writer,
        _lock: lock,
    })
}
