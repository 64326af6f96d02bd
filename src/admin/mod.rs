//! Four-letter words (client port), with Apache ZooKeeper 3.8's output formats.

use crate::config::Config;
use crate::stats::{ConnInfo, ServerStats, WriterReport};
use crate::types::ConnId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What four-letter words read of the server (`Shared::view`): admin/ sees this, never
/// the server's shared state itself.
pub struct View<'a> {
    pub cfg: &'a Config,
    pub stats: &'a ServerStats,
    pub conns: &'a Mutex<HashMap<ConnId, Arc<ConnInfo>>>,
    pub outstanding: &'a AtomicUsize,
    pub writes_refused: &'a AtomicBool,
    pub started: Instant,
    pub mode: &'static str,
    pub serving: bool,
    pub read_only: bool,
    pub last_zxid: i64,
    pub node_count: usize,
}

impl View<'_> {
    pub fn mode_name(&self) -> &'static str {
        self.mode
    }
    pub fn serving(&self) -> bool {
        self.serving
    }
    pub fn read_only(&self) -> bool {
        self.read_only
    }
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }
    pub fn node_count(&self) -> usize {
        self.node_count
    }
}
use crate::types::SessionId;
use std::collections::{BTreeMap, BTreeSet};
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

/// Does this word need the writer's view?
pub fn needs_writer(cmd: &str) -> bool {
    matches!(cmd, "wchs" | "wchc" | "wchp" | "dump")
}

fn version_line() -> String {
    format!("Zookeeper version: {FULL_VERSION}")
}

fn srvr_body(s: &View<'_>, out: &mut String) {
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

fn conn_lines(s: &View<'_>, full: bool, out: &mut String) {
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
                ",sid=0x{:x},lop={},est={},to={}",
                sid,
                crate::proto::ops::op::cons_name(c.last_op.load(Relaxed)),
                c.established_ms,
                c.timeout_ms.load(Relaxed),
            );
            // ZooKeeper leaves out a connection's last cxid until it has a real one.
            let cxid = c.last_cxid.load(Relaxed);
            if cxid >= 0 {
                let _ = write!(out, ",lcxid=0x{cxid:x}");
            }
            let _ = write!(
                out,
                ",lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
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

/// `envi`: ZooKeeper's 18 lines in its order. The java.* lines have no Java to report:
/// `<NA>`, or the nearest thing Paddock has (its binary's directory for java.home, the
/// library path, the temp dir). os.memory.* are the process's resident memory (total),
/// what the machine has available (free) and its memory (max), in MB as ZooKeeper prints
/// its heap's.
fn envi(out: &mut String) {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let meminfo_mb = |key: &str| {
        read("/proc/meminfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix(key)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb / 1024)
    };
    let rss_mb = read("/proc/self/status")
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb / 1024);
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_else(|| "<NA>".into());
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let (user, home) = user_and_home();
    let lines: [(&str, String); 18] = [
        ("zookeeper.version", FULL_VERSION.to_string()),
        ("host.name", canonical_host_name()),
        (
            "java.version",
            format!("<NA> (Paddock {})", env!("CARGO_PKG_VERSION")),
        ),
        ("java.vendor", "<NA>".into()),
        ("java.home", exe_dir),
        ("java.class.path", "<NA>".into()),
        (
            "java.library.path",
            std::env::var("LD_LIBRARY_PATH").unwrap_or_else(|_| "<NA>".into()),
        ),
        (
            "java.io.tmpdir",
            std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into()),
        ),
        ("java.compiler", "<NA>".into()),
        (
            "os.name",
            if cfg!(target_os = "linux") {
                "Linux".into()
            } else {
                std::env::consts::OS.into()
            },
        ),
        (
            "os.arch",
            if cfg!(target_arch = "x86_64") {
                "amd64".into()
            } else {
                std::env::consts::ARCH.into()
            },
        ),
        ("os.version", read("/proc/sys/kernel/osrelease")),
        ("user.name", user),
        ("user.home", home),
        ("user.dir", cwd),
        (
            "os.memory.free",
            format!("{}MB", meminfo_mb("MemAvailable:")),
        ),
        ("os.memory.max", format!("{}MB", meminfo_mb("MemTotal:"))),
        ("os.memory.total", format!("{rss_mb}MB")),
    ];
    out.push_str("Environment:\n");
    for (k, v) in lines {
        let _ = writeln!(out, "{k}={v}");
    }
}

/// The effective user's name and home, from the password database (as Java's
/// user.name and user.home), falling back to $USER and $HOME.
fn user_and_home() -> (String, String) {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; strings are read only when found.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() {
        let s = |p: *const libc::c_char| {
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        };
        return (s(pw.pw_name), s(pw.pw_dir));
    }
    (
        std::env::var("USER").unwrap_or_default(),
        std::env::var("HOME").unwrap_or_default(),
    )
}

/// Java's `InetAddress.getLocalHost().getCanonicalHostName()`: the host name's first
/// address, looked up back to a name (`localhost` where /etc/hosts maps the host name
/// to 127.0.0.1); the plain host name when either lookup fails.
fn canonical_host_name() -> String {
    use std::net::ToSocketAddrs;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let Some(addr) = (host.as_str(), 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    else {
        return host;
    };
    let mut name = vec![0 as libc::c_char; 1025];
    let lookup = |sa: *const libc::sockaddr, len: usize, name: &mut [libc::c_char]| {
        // SAFETY: the address and the buffer are valid for their given lengths.
        unsafe {
            libc::getnameinfo(
                sa,
                len as libc::socklen_t,
                name.as_mut_ptr(),
                name.len() as libc::socklen_t,
                std::ptr::null_mut(),
                0,
                libc::NI_NAMEREQD,
            )
        }
    };
    let rc = match addr {
        std::net::SocketAddr::V4(a) => {
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            lookup(
                (&sin as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>(),
                &mut name,
            )
        }
        std::net::SocketAddr::V6(a) => {
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.ip().octets();
            lookup(
                (&sin6 as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>(),
                &mut name,
            )
        }
    };
    if rc != 0 {
        return host;
    }
    unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// ZooKeeper's connection expiry queue as `dump` prints it: each connection in the
/// 10 s bucket (sessionlessCnxnTimeout) where it would expire, counted from its latest
/// packet by its session's timeout (10 s without a session).
fn connection_sets(s: &View<'_>, out: &mut String) {
    const INTERVAL: i64 = 10_000;
    let mut buckets: BTreeMap<i64, Vec<(String, i64)>> = BTreeMap::new();
    let conns = s.conns.lock().unwrap();
    for c in conns.values() {
        let sid = c.session.load(Relaxed);
        let timeout = if sid != 0 {
            c.timeout_ms.load(Relaxed) as i64
        } else {
            INTERVAL
        };
        let at = (c.last_packet_ms.load(Relaxed) + timeout) / INTERVAL * INTERVAL + INTERVAL;
        buckets
            .entry(at)
            .or_default()
            .push((format!("/{}", c.remote), sid));
    }
    let _ = writeln!(
        out,
        "Connections Sets ({})/({}):",
        buckets.len(),
        conns.len()
    );
    for (at, mut cs) in buckets {
        cs.sort();
        let _ = writeln!(out, "{} expire at {}:", cs.len(), java_date(at as u64));
        for (remote, sid) in cs {
            let _ = writeln!(out, "\tip: {remote} sessionId: 0x{sid:x}");
        }
    }
}

/// A time (ms since the epoch) as Java's `Date.toString` prints it, in local time:
/// `Mon Dec 07 18:02:47 UTC 2026`.
fn java_date(ms: u64) -> String {
    let t = (ms / 1000) as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let mut buf = [0u8; 64];
    // SAFETY: valid pointers; strftime writes at most buf.len() bytes and returns how many.
    let n = unsafe {
        if libc::localtime_r(&t, &mut tm).is_null() {
            return ms.to_string();
        }
        libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%a %b %d %H:%M:%S %Z %Y".as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
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

fn mntr(s: &View<'_>) -> String {
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
        |m: &mut Vec<(&str, String)>, names: [&'static str; 5], l: &crate::stats::Latency| {
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
pub fn answer(s: &View<'_>, cmd: &str, view: Option<&WriterReport>) -> String {
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
            let secure = cfg.secure_client_port.map_or(-1, i32::from);
            let _ = writeln!(out, "secureClientPort={secure}");
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
            if let Some(t) = &cfg.client_tls {
                // Paddock's lines (ZooKeeper's conf shows none of its TLS settings): the
                // stores' files and types, never their passwords.
                for (what, store) in [("keyStore", &t.key_store), ("trustStore", &t.trust_store)] {
                    if let Some(st) = store {
                        let _ = writeln!(out, "ssl.{what}.location={}", st.location.display());
                        if let Some(k) = st.kind {
                            let _ = writeln!(out, "ssl.{what}.type={k:?}");
                        }
                    }
                }
                let _ = writeln!(out, "ssl.clientAuth={:?}", t.client_auth);
                let _ = writeln!(out, "ssl.enabledProtocols={:?}", t.protocols);
                let _ = writeln!(out, "client.portUnification={}", cfg.port_unification);
            }
        }
        "envi" => envi(&mut out),
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
            let (c, p, t) = view.map_or((0, 0, 0), |v| v.watch_summary);
            let _ = writeln!(out, "{c} connections watching {p} paths\nTotal watches:{t}");
        }
        "wchc" | "wchp" => {
            if let Some(v) = view {
                let mut by_path: BTreeMap<&str, BTreeSet<SessionId>> = BTreeMap::new();
                let mut by_sess: BTreeMap<SessionId, BTreeSet<&str>> = BTreeMap::new();
                // ZooKeeper shows its data watches only (DataTree.dumpWatches).
                for (s, set) in &v.data_watches {
                    for p in set {
                        by_path.entry(p).or_default().insert(*s);
                        by_sess.entry(*s).or_default().insert(p);
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
            // ZooKeeper's WatchCommand ends with a blank line, also when there is none.
            out.push('\n');
        }
        "dump" => {
            if let Some(v) = view {
                out.push_str("SessionTracker dump:\n");
                if v.owns_sessions {
                    // ZooKeeper's SessionTrackerImpl: its expiry queue's buckets.
                    let _ = writeln!(
                        out,
                        "Session Sets ({})/({}):",
                        v.session_buckets.len(),
                        v.sessions.len()
                    );
                    for (at, ids) in &v.session_buckets {
                        let _ = writeln!(out, "{} expire at {}:", ids.len(), java_date(*at));
                        for id in ids {
                            let _ = writeln!(out, "\t0x{id:x}");
                        }
                    }
                } else {
                    // A learner's (LearnerSessionTracker): every session and its timeout.
                    let _ = writeln!(out, "Global Sessions({}):", v.sessions.len());
                    for (id, to) in &v.sessions {
                        let _ = writeln!(out, "0x{id:x}\t{to}ms");
                    }
                }
                let _ = writeln!(
                    out,
                    "ephemeral nodes dump:\nSessions with Ephemerals ({}):",
                    v.ephemerals.len()
                );
                for (s, ps) in &v.ephemerals {
                    let _ = writeln!(out, "0x{s:x}:");
                    for p in ps {
                        let _ = writeln!(out, "\t{p}");
                    }
                }
                out.push_str("Connections dump:\n");
                connection_sets(s, &mut out);
            }
        }
        "gtmk" => out.push_str("306\n"),
        "stmk" => out.push_str("306\n"),
        "hash" => {}
        _ => {}
    }
    out
}
