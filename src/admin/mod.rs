//! Four-letter words (client port), with Apache ZooKeeper 3.8's output formats.

use crate::server::Shared;
use crate::session::SessionTracker;
use crate::types::SessionId;
use crate::watch::WatchTable;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

pub const VERSION: &str = concat!("3.8.0-paddock-", env!("CARGO_PKG_VERSION"));
/// What ZooKeeper prints as its version everywhere (`srvr`, `mntr`, `envi`).
pub const FULL_VERSION: &str = concat!(
    "3.8.0-paddock-",
    env!("CARGO_PKG_VERSION"),
    ", built on 1970-01-01 00:00 UTC"
);

/// Every word ZooKeeper knows; a known but disabled word gets the whitelist message.
pub const KNOWN: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro", "mntr", "ruok", "srst",
    "srvr", "stat", "stmk", "wchc", "wchp", "wchs",
];

/// Is the first 4 bytes of a connection a four-letter word?
pub fn word(first4: &[u8]) -> Option<&'static str> {
    KNOWN.iter().copied().find(|w| w.as_bytes() == first4)
}

/// What the writer knows that four-letter words report.
pub struct WriterView<'a> {
    pub watches: &'a WatchTable,
    pub sessions: &'a SessionTracker,
    pub ephemerals: &'a HashMap<SessionId, BTreeSet<String>>,
}

/// Does this word need the writer's view?
pub fn needs_writer(cmd: &str) -> bool {
    matches!(cmd, "wchs" | "wchc" | "wchp" | "dump")
}

fn version_line() -> String {
    format!("Zookeeper version: {FULL_VERSION}")
}

fn srvr_body(s: &Shared, out: &mut String) {
    if s.writes_refused.load(Relaxed) {
        out.push_str("Refusing writes: no space left for the txn log\n");
    }
    let (min, avg, max) = s.stats.latency.get();
    let _ = writeln!(out, "Latency min/avg/max: {min}/{avg:?}/{max}");
    let _ = writeln!(out, "Received: {}", s.stats.packets_received.load(Relaxed));
    let _ = writeln!(out, "Sent: {}", s.stats.packets_sent.load(Relaxed));
    let _ = writeln!(out, "Connections: {}", s.conns.lock().unwrap().len());
    let _ = writeln!(out, "Outstanding: {}", s.outstanding.load(Relaxed));
    let _ = writeln!(out, "Zxid: 0x{:x}", s.last_zxid());
    let _ = writeln!(out, "Mode: {}", s.mode_name());
    let _ = writeln!(out, "Node count: {}", s.node_count());
}

fn conn_lines(s: &Shared, full: bool, out: &mut String) {
    let conns = s.conns.lock().unwrap();
    let mut v: Vec<_> = conns.values().collect();
    v.sort_by_key(|c| c.established_ms);
    for c in v {
        // ZooKeeper prints the selector's interest ops: 1 (read) for a session, 0 for the
        // connection asking.
        let ops = u8::from(c.session.load(Relaxed) != 0);
        let _ = write!(
            out,
            " /{}[{ops}](queued={},recved={},sent={}",
            c.remote,
            c.queued.load(Relaxed),
            c.received.load(Relaxed),
            c.sent.load(Relaxed)
        );
        let sid = c.session.load(Relaxed);
        if full && sid != 0 {
            let (min, avg, max) = c.latency.get();
            let _ = write!(
                out,
                ",sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
                sid,
                crate::proto::ops::op::name(c.last_op.load(Relaxed)).to_uppercase().get(..4).unwrap_or("NA"),
                c.established_ms,
                c.timeout_ms.load(Relaxed),
                c.last_cxid.load(Relaxed),
                c.last_zxid.load(Relaxed),
                c.last_response_ms.load(Relaxed),
                c.last_latency_ms.load(Relaxed),
                min,
                avg as u64,
                max
            );
        }
        out.push_str(")\n");
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn mntr(s: &Shared) -> String {
    let mut m: Vec<(&str, String)> = Vec::new();
    let (min, avg, max) = s.stats.latency.get();
    m.push(("version", FULL_VERSION.to_owned()));
    m.push(("server_state", s.mode_name().into()));
    m.push(("avg_latency", format!("{avg:?}")));
    m.push(("max_latency", max.to_string()));
    m.push(("min_latency", min.to_string()));
    m.push((
        "packets_received",
        s.stats.packets_received.load(Relaxed).to_string(),
    ));
    m.push((
        "packets_sent",
        s.stats.packets_sent.load(Relaxed).to_string(),
    ));
    m.push((
        "num_alive_connections",
        s.conns.lock().unwrap().len().to_string(),
    ));
    m.push((
        "outstanding_requests",
        s.outstanding.load(Relaxed).to_string(),
    ));
    m.push(("uptime", s.started.elapsed().as_millis().to_string()));
    m.push(("znode_count", s.node_count().to_string()));
    // Published by the writer after each batch: mntr never stops the writer.
    let (watch_count, eph) = (
        s.stats.watch_count.load(Relaxed),
        s.stats.ephemerals_count.load(Relaxed),
    );
    m.push(("watch_count", watch_count.to_string()));
    m.push(("ephemerals_count", eph.to_string()));
    m.push((
        "approximate_data_size",
        s.stats.data_bytes.load(Relaxed).to_string(),
    ));
    m.push((
        "global_sessions",
        s.stats.sessions.load(Relaxed).to_string(),
    ));
    m.push(("local_sessions", "0".into()));
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    m.push(("open_file_descriptor_count", fds.to_string()));
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    m.push(("max_file_descriptor_count", lim.rlim_cur.to_string()));
    m.push(("connection_drop_probability", "0.0".into()));
    m.push((
        "last_client_response_size",
        s.stats.last_response_bytes.load(Relaxed).to_string(),
    ));
    m.push((
        "max_client_response_size",
        s.stats.max_response_bytes.load(Relaxed).to_string(),
    ));
    let minr = s.stats.min_response_bytes.load(Relaxed);
    m.push((
        "min_client_response_size",
        if minr == u64::MAX || minr == 0 {
            "-1".into()
        } else {
            minr.to_string()
        },
    ));
    m.push(("outstanding_tls_handshake", "0".into()));
    m.push((
        "auth_failed_count",
        s.stats.auth_failed.load(Relaxed).to_string(),
    ));
    m.push((
        "large_requests_rejected",
        s.stats.large_requests_rejected.load(Relaxed).to_string(),
    ));
    m.push(("non_mtls_remote_conn_count", "0".into()));
    m.push(("non_mtls_local_conn_count", "0".into()));
    // Summaries expand as ZooKeeper's do: avg, min, max, cnt, sum.
    let summary =
        |m: &mut Vec<(&str, String)>, names: [&'static str; 5], l: &crate::server::Latency| {
            let (min, avg, max) = l.get();
            m.push((names[0], format!("{avg:?}")));
            m.push((names[1], min.to_string()));
            m.push((names[2], max.to_string()));
            m.push((names[3], l.count.load(Relaxed).to_string()));
            m.push((names[4], l.sum.load(Relaxed).to_string()));
        };
    summary(
        &mut m,
        [
            "avg_fsynctime",
            "min_fsynctime",
            "max_fsynctime",
            "cnt_fsynctime",
            "sum_fsynctime",
        ],
        &s.stats.fsync_ms,
    );
    summary(
        &mut m,
        [
            "avg_updatelatency",
            "min_updatelatency",
            "max_updatelatency",
            "cnt_updatelatency",
            "sum_updatelatency",
        ],
        &s.stats.latency,
    );
    // Paddock's own: group commits and the txns they carried.
    m.push((
        "paddock_group_commits",
        s.stats.fsyncs.load(Relaxed).to_string(),
    ));
    m.push(("paddock_txns", s.stats.txns.load(Relaxed).to_string()));
    m.push((
        "paddock_writer_part",
        s.stats.writer_part.load(Relaxed).to_string(),
    ));
    m.push((
        "paddock_writes_refused",
        u8::from(s.writes_refused.load(Relaxed)).to_string(),
    ));
    if s.mode_name() == "leader" {
        // As ZooKeeper 3.8's leader adds them.
        let st = &s.stats;
        m.push(("learners", st.learners.load(Relaxed).to_string()));
        m.push((
            "synced_followers",
            st.synced_followers.load(Relaxed).to_string(),
        ));
        m.push(("synced_non_voting_followers", "0".into()));
        m.push((
            "synced_observers",
            st.synced_observers.load(Relaxed).to_string(),
        ));
        m.push(("pending_syncs", st.pending_syncs.load(Relaxed).to_string()));
    }
    let mut out = String::new();
    for (k, v) in m {
        let _ = writeln!(out, "zk_{k}\t{v}");
    }
    out
}

/// The answer to a four-letter word; `view` is present when the writer answers.
pub fn answer(s: &Shared, cmd: &str, view: Option<WriterView>) -> String {
    let cfg = &s.cfg;
    if !cfg.four_letter_word_enabled(cmd) {
        return format!("{cmd} is not executed because it is not in the whitelist.\n");
    }
    let mut out = String::new();
    if !s.serving() && !s.read_only() && !matches!(cmd, "ruok" | "conf" | "envi" | "dirs" | "isro")
    {
        // ZooKeeper's answer while its server is down for an election.
        return "This ZooKeeper instance is not currently serving requests\n".into();
    }
    let refusing = s.writes_refused.load(Relaxed);
    match cmd {
        // A health check must not pass while writes fail (ZooKeeper would have exited).
        "ruok" if refusing => {}
        "ruok" => out.push_str("imok"),
        "isro" => out.push_str(if s.read_only() && !s.serving() {
            "ro"
        } else {
            "rw"
        }),
        "srvr" => {
            out.push_str(&version_line());
            out.push('\n');
            srvr_body(s, &mut out);
        }
        "stat" => {
            out.push_str(&version_line());
            out.push_str("\nClients:\n");
            conn_lines(s, false, &mut out);
            out.push('\n');
            srvr_body(s, &mut out);
        }
        "cons" => {
            conn_lines(s, true, &mut out);
            out.push('\n');
        }
        "crst" => {
            for c in s.conns.lock().unwrap().values() {
                c.reset();
            }
            out.push_str("Connection stats reset.\n");
        }
        "srst" => {
            s.stats.latency.reset();
            s.stats.packets_received.store(0, Relaxed);
            s.stats.packets_sent.store(0, Relaxed);
            out.push_str("Server stats reset.\n");
        }
        "conf" => {
            let _ = writeln!(out, "clientPort={}", cfg.client_port);
            let _ = writeln!(out, "secureClientPort=-1");
            let _ = writeln!(out, "dataDir={}", cfg.data_dir.join("version-2").display());
            let _ = writeln!(
                out,
                "dataDirSize={}",
                dir_size(&cfg.data_dir.join("version-2"))
            );
            let _ = writeln!(
                out,
                "dataLogDir={}",
                cfg.data_log_dir.join("version-2").display()
            );
            let _ = writeln!(
                out,
                "dataLogSize={}",
                dir_size(&cfg.data_log_dir.join("version-2"))
            );
            let _ = writeln!(out, "tickTime={}", cfg.tick_ms);
            let _ = writeln!(out, "maxClientCnxns={}", cfg.max_client_cnxns);
            let _ = writeln!(out, "minSessionTimeout={}", cfg.session_timeout_ms_min);
            let _ = writeln!(out, "maxSessionTimeout={}", cfg.session_timeout_ms_max);
            let _ = writeln!(
                out,
                "clientPortListenBacklog={}",
                cfg.client_port_listen_backlog
            );
            let _ = writeln!(out, "serverId={}", 0);
        }
        "envi" => {
            out.push_str("Environment:\n");
            let read = |p: &str| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            };
            let _ = writeln!(out, "zookeeper.version={FULL_VERSION}");
            let _ = writeln!(out, "host.name={}", read("/proc/sys/kernel/hostname"));
            let _ = writeln!(
                out,
                "java.version=<NA> (Paddock {})",
                env!("CARGO_PKG_VERSION")
            );
            let _ = writeln!(
                out,
                "os.name={}",
                if cfg!(target_os = "linux") {
                    "Linux"
                } else {
                    std::env::consts::OS
                }
            );
            let _ = writeln!(
                out,
                "os.arch={}",
                if cfg!(target_arch = "x86_64") {
                    "amd64"
                } else {
                    std::env::consts::ARCH
                }
            );
            let _ = writeln!(out, "os.version={}", read("/proc/sys/kernel/osrelease"));
            let _ = writeln!(
                out,
                "user.name={}",
                std::env::var("USER").unwrap_or_default()
            );
            let _ = writeln!(
                out,
                "user.home={}",
                std::env::var("HOME").unwrap_or_default()
            );
            let cwd = std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let _ = writeln!(out, "user.dir={cwd}");
        }
        "dirs" => {
            let _ = writeln!(
                out,
                "datadir_size: {}",
                dir_size(&cfg.data_dir.join("version-2"))
            );
            let _ = writeln!(
                out,
                "logdir_size: {}",
                dir_size(&cfg.data_log_dir.join("version-2"))
            );
        }
        "mntr" => out = mntr(s),
        "wchs" => {
            let (c, p, t) = view
                .as_ref()
                .map(|v| v.watches.summary())
                .unwrap_or((0, 0, 0));
            let _ = writeln!(out, "{c} connections watching {p} paths\nTotal watches:{t}");
        }
        "wchc" | "wchp" => {
            if let Some(v) = &view {
                let mut by_path: BTreeMap<&str, BTreeSet<SessionId>> = BTreeMap::new();
                let mut by_sess: BTreeMap<SessionId, BTreeSet<&str>> = BTreeMap::new();
                // ZooKeeper shows its data watches only (DataTree.dumpWatches).
                for (s, set) in v.watches.data_by_session() {
                    for p in set {
                        by_path.entry(p).or_default().insert(s);
                        by_sess.entry(s).or_default().insert(p);
                    }
                }
                if cmd == "wchc" {
                    for (s, ps) in by_sess {
                        let _ = writeln!(out, "0x{s:x}");
                        for p in ps {
                            let _ = writeln!(out, "\t{p}");
                        }
                    }
                } else {
                    for (p, ss) in by_path {
                        let _ = writeln!(out, "{p}");
                        for s in ss {
                            let _ = writeln!(out, "\t0x{s:x}");
                        }
                    }
                }
            }
        }
        "dump" => {
            if let Some(v) = &view {
                out.push_str("SessionTracker dump:\n");
                let _ = writeln!(out, "Global Sessions({}):", v.sessions.len());
                let mut ids: Vec<_> = v
                    .sessions
                    .iter()
                    .map(|(id, s)| (*id, s.timeout_ms))
                    .collect();
                ids.sort();
                for (id, to) in ids {
                    let _ = writeln!(out, "0x{id:x}\t{to}ms");
                }
                let _ = writeln!(
                    out,
                    "ephemeral nodes dump:\nSessions with Ephemerals ({}):",
                    v.ephemerals.len()
                );
                for (s, ps) in v.ephemerals {
                    let _ = writeln!(out, "0x{s:x}:");
                    for p in ps {
                        let _ = writeln!(out, "\t{p}");
                    }
                }
                out.push_str("Connections dump:\nConnections Sets (0)/(0):\n");
            }
        }
        "gtmk" => out.push_str("306\n"),
        "stmk" => out.push_str("306\n"),
        "hash" => {}
        _ => {}
    }
    out
}
