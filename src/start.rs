//! Start-up: recovery, then the threads (reactors, the writer, the quorum links) and the
//! listeners. The top of the crate: it assembles net and server, which import neither it
//! nor each other's assembly.

use crate::config::Config;
use crate::log::FileTxnLog;
use crate::net::{Reactor, WAKER};
use crate::server::recovery::Epochs;
use crate::server::recovery::{lock_dir, prepare_dir, recover_state, RecoveredState, StartError};
use crate::server::writer::ensemble::Ensemble;
use crate::server::writer::WriterLoop;
use crate::server::{ReactorHandle, Shared, ToWriter};
use crate::types::Zxid;
use crate::zab::broadcast::Limits;
use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct Running {
    pub addr: SocketAddr,
    /// The secure (TLS) client port, when configured.
    pub secure_addr: Option<SocketAddr>,
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

/// Binds a client listener with `backlog`: mio listens with 128, which a burst of
/// reconnecting clients overflows (they then wait for the kernel's 1 s SYN retry); a
/// second listen() resizes the queue.
fn listen(addr: SocketAddr, backlog: i32) -> Result<mio::net::TcpListener, StartError> {
    let l =
        mio::net::TcpListener::bind(addr).map_err(|error| StartError::Listen { addr, error })?;
    if unsafe { libc::listen(std::os::unix::io::AsRawFd::as_raw_fd(&l), backlog) } != 0 {
        log::warn!(
            "cannot set the listen backlog of {addr} to {backlog}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(l)
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
    let tls = match &cfg.quorum_tls {
        Some(keys) => {
            let t = crate::quorum::tls::QuorumTls::new(keys.clone(), cfg.quorum_port_unification)?;
            if cfg.ssl_quorum_reload {
                t.watch(Duration::from_secs(1));
            }
            log::info!(
                "sslQuorum: TLS on the election and quorum ports{}",
                if cfg.quorum_port_unification {
                    " (plain accepted too: portUnification)"
                } else {
                    ""
                }
            );
            Some(t)
        }
        None => None,
    };
    roles.tls = tls.clone();
    let net = crate::quorum::ElectionNet::start_with_tls(
        q.my_id,
        listener,
        peers,
        config,
        cnx_timeout,
        tls,
    )?;
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
    })
}

pub fn start(mut cfg: Config) -> Result<Running, StartError> {
    if let Some(q) = &cfg.quorum {
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
    let backlog = if cfg.client_port_listen_backlog > 0 {
        cfg.client_port_listen_backlog
    } else {
        1024
    };
    let listener = if cfg.plain_client_port {
        Some(listen(addr, backlog)?)
    } else {
        None
    };
    let plain_local = match &listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    // TLS: the stores are read now, so a bad one stops start-up with its file named.
    let tls = match &cfg.client_tls {
        Some(keys) => {
            let t = crate::tls::Reloading::new(keys.clone())?;
            t.watch(Duration::from_secs(1));
            Some(t)
        }
        None => None,
    };
    let secure = match (cfg.secure_client_port, &tls) {
        (Some(port), Some(_)) => {
            let ip = cfg
                .secure_client_port_address
                .or(cfg.client_port_address)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            Some(listen(SocketAddr::new(ip, port), backlog)?)
        }
        _ => None,
    };
    let secure_local = match &secure {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let mut cfg = cfg;
    // 0: no plain port (only secureClientPort was given).
    cfg.client_port = plain_local.map_or(0, |a| a.port());
    let local = plain_local
        .or(secure_local)
        .expect("a plain or a secure client port");
    if let Some(a) = secure_local {
        cfg.secure_client_port = Some(a.port());
    }

    let shared = Arc::new(Shared::new(cfg, tree, last_zxid));

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
    let mut listener = listener;
    let mut secure = secure;
    for (i, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
        let reactor = Reactor::new(
            i,
            poll,
            shared.clone(),
            inbox,
            to_writer.clone(),
            crate::net::Listeners {
                plain: if i == 0 { listener.take() } else { None },
                secure: if i == 0 { secure.take() } else { None },
                tls: tls.clone(),
            },
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
        crate::server::writer::Recovered {
            sessions,
            idx,
            last_zxid,
            snap_dir: data_v2,
            snapshot_soon,
            ens,
            recent,
            clock: crate::server::Clock::Real,
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
    match (plain_local, secure_local) {
        (Some(p), Some(s)) => log::info!("serving on {p} and TLS on {s} ({n} reactor threads)"),
        (Some(p), None) => log::info!("serving on {p} ({n} reactor threads)"),
        (None, Some(s)) => log::info!(
            "serving TLS only on {s} ({n} reactor threads; no plain client port: clientPort is not set)"
        ),
        (None, None) => unreachable!("a plain or a secure client port"),
    }
    Ok(Running {
        addr: local,
        secure_addr: secure_local,
        writer,
        _lock: lock,
        _data_lock: data_lock,
    })
}
