//! The server: state shared between threads, the messages they exchange, start-up.
//!
//! Threads (ARCHITECTURE.md): reactors own sockets and run reads; the writer alone changes
//! the tree, sessions and watches and owns the txn log. They talk over crossbeam channels;
//! a reactor is woken with its `mio::Waker`.

pub mod reads;
pub mod recovery;
pub mod writer;

use crate::config::Config;
use crate::proto::records::{ConnectRequest, Id, Request};
use crate::tree::DataTree;
use crate::types::{ConnId, SessionId, Zxid};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed,
};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Reactor → writer.
pub enum ToWriter {
    Connect {
        conn: ConnId,
        req: ConnectRequest,
        /// The connection's figures, where the writer counts the bytes it queues for it.
        info: Arc<ConnInfo>,
    },
    Request {
        conn: ConnId,
        session: SessionId,
        xid: i32,
        op: i32,
        req: Request,
        ids: Arc<[Id]>,
        /// The request's bytes, kept only on a learner, which forwards writes as they came.
        raw: Option<Vec<u8>>,
    },
    /// Sessions with traffic since the last report, each with the time (ms since the
    /// epoch) of its latest packet.
    Touch(Vec<(SessionId, u64)>),
    /// A connection's auth ids changed (addauth, answered by the reactor): the writer
    /// checks watch events against them.
    Auth {
        conn: ConnId,
        session: SessionId,
        ids: Arc<[crate::proto::records::Id]>,
    },
    /// The connection is gone (the session lives on until it expires).
    Closed { conn: ConnId, session: SessionId },
    /// A four-letter word the writer answers (it owns what most of them report).
    Admin { conn: ConnId, cmd: String },
    /// Several of the above, in order: what one reactor turn produced.
    Batch(Vec<ToWriter>),
    /// From the quorum side: a decision, a learner link, a packet.
    Quorum(crate::quorum::role::QuorumEvent),
}

/// Writer → reactor.
pub enum ToReactor {
    NewConn(mio::net::TcpStream, SocketAddr),
    /// Bytes for the client. `reply` = answers the oldest request sent to the writer.
    Frame {
        conn: ConnId,
        bytes: Vec<u8>,
        reply: bool,
    },
    Connected {
        conn: ConnId,
        session: SessionId,
        timeout_ms: i32,
        ok: bool,
        /// The applied zxid as the session began (its createSession txn's, for a new
        /// one): `cons` shows it as the connection's lzxid.
        zxid: Zxid,
    },
    /// Close once what is queued has been written.
    Close {
        conn: ConnId,
    },
    /// Close now: more is queued for the connection than its hard limit, and the writer
    /// has dropped what it had for it (ConnInfo::overflowed). The session lives on; its
    /// client may reconnect.
    Overflow {
        conn: ConnId,
    },
    /// A four-letter word's data from the writer; the reactor formats it (admin/), so
    /// the writer never calls into admin.
    Admin {
        conn: ConnId,
        cmd: String,
        report: Box<WriterReport>,
    },
}

impl ToReactor {
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            ToReactor::NewConn(..) => None,
            ToReactor::Frame { conn, .. }
            | ToReactor::Connected { conn, .. }
            | ToReactor::Close { conn }
            | ToReactor::Overflow { conn }
            | ToReactor::Admin { conn, .. } => Some(*conn),
        }
    }
}

/// What the writer knows that four-letter words report, copied out for one word.
#[derive(Default)]
pub struct WriterReport {
    /// Standalone or leading: the sessions' expiry buckets are this server's.
    pub owns_sessions: bool,
    /// wchs: sessions watching, paths watched and watches, in the data table.
    pub watch_summary: (usize, usize, usize),
    /// wchc/wchp: the data table's paths by session.
    pub data_watches: Vec<(SessionId, Vec<String>)>,
    /// dump: the expiry buckets (when, ms since the epoch; their sessions, sorted).
    pub session_buckets: Vec<(u64, Vec<SessionId>)>,
    /// dump: every session and its timeout, sorted.
    pub sessions: Vec<(SessionId, i32)>,
    /// dump: each session's ephemerals, sorted by session.
    pub ephemerals: Vec<(SessionId, Vec<String>)>,
}

/// A reactor's inbox, as the other threads see it.
#[derive(Clone)]
pub struct ReactorHandle {
    pub tx: crossbeam_channel::Sender<ToReactor>,
    pub waker: Arc<mio::Waker>,
}

impl ReactorHandle {
    /// A handle whose inbox is read by the caller instead of a reactor thread (the
    /// simulator): the handle, the inbox, and what its waker needs kept alive.
    #[allow(clippy::type_complexity)]
    pub fn detached() -> std::io::Result<(
        ReactorHandle,
        crossbeam_channel::Receiver<ToReactor>,
        Box<dyn std::any::Any>,
    )> {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(
            poll.registry(),
            mio::Token(usize::MAX - 1),
        )?);
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok((ReactorHandle { tx, waker }, rx, Box::new(poll)))
    }
}

/// Milliseconds on the monotonic clock (CLOCK_MONOTONIC, as Java's nanoTime), which
/// ZooKeeper's `cons` prints as a connection's last response time (`lresp`).
pub fn elapsed_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

/// Per-connection figures for `cons`/`stat`, written by the owning reactor only; and the
/// connection's outbound account, shared with the writer.
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub established_ms: i64,
    pub session: AtomicI64,
    pub timeout_ms: AtomicI32,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub queued: AtomicU64,
    pub last_op: AtomicI32,
    pub last_cxid: AtomicI32,
    pub last_zxid: AtomicI64,
    pub last_response_ms: AtomicI64,
    /// When its latest packet was read (ms since the epoch): `dump` buckets connections
    /// by when they would expire from then.
    pub last_packet_ms: AtomicI64,
    pub last_latency_ms: AtomicU64,
    pub latency: Latency,
    /// Bytes the writer has sent toward the client that its reactor has not yet taken
    /// into its buffer: the writer adds what it sends, the reactor takes off what it
    /// takes. With the reactor's buffer and its reservations, what the connection owes
    /// its client, against one budget (net/: `Conn::owed`). Local replies touch no
    /// atomic.
    pub unsent: AtomicUsize,
    /// Set by the writer when `unsent` would pass the hard limit: from then on it drops
    /// what it has for the connection, and the reactor closes it.
    pub overflowed: AtomicBool,
}

impl ConnInfo {
    pub fn new(remote: SocketAddr) -> Self {
        ConnInfo {
            remote,
            established_ms: now_ms(),
            session: AtomicI64::new(0),
            timeout_ms: AtomicI32::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            last_op: AtomicI32::new(-999),
            last_cxid: AtomicI32::new(-1),
            last_zxid: AtomicI64::new(-1),
            last_response_ms: AtomicI64::new(0),
            last_packet_ms: AtomicI64::new(now_ms()),
            last_latency_ms: AtomicU64::new(0),
            latency: Latency::default(),
            unsent: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
        }
    }
    pub fn reset(&self) {
        self.received.store(0, Relaxed);
        self.sent.store(0, Relaxed);
        self.latency.reset();
        self.last_op.store(-999, Relaxed);
        self.last_cxid.store(-1, Relaxed);
        self.last_zxid.store(-1, Relaxed);
        self.last_response_ms.store(0, Relaxed);
        self.last_latency_ms.store(0, Relaxed);
    }
}

/// Min/avg/max of request latencies in ms, as `srvr` reports them.
pub struct Latency {
    pub min: AtomicU64,
    pub max: AtomicU64,
    pub sum: AtomicU64,
    pub count: AtomicU64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Latency {
    pub fn record(&self, ms: u64) {
        self.min.fetch_min(ms, Relaxed);
        self.max.fetch_max(ms, Relaxed);
        self.sum.fetch_add(ms, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }
    pub fn reset(&self) {
        self.min.store(u64::MAX, Relaxed);
        self.max.store(0, Relaxed);
        self.sum.store(0, Relaxed);
        self.count.store(0, Relaxed);
    }
    /// (min, avg, max); zeros before the first request.
    pub fn get(&self) -> (u64, f64, u64) {
        let n = self.count.load(Relaxed);
        if n == 0 {
            return (0, 0.0, 0);
        }
        // Rounded half up to 4 places, as ZooKeeper's AvgMinMaxCounter.getAvg.
        let avg = self.sum.load(Relaxed) as f64 / n as f64;
        (
            self.min.load(Relaxed),
            (avg * 10_000.0).round() / 10_000.0,
            self.max.load(Relaxed),
        )
    }
}

/// Server-wide counters; merged views for `mntr`/`srvr`.
#[derive(Default)]
pub struct ServerStats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub latency: Latency,
    /// Published by the writer after each group commit.
    pub watch_count: AtomicU64,
    pub ephemerals_count: AtomicU64,
    pub data_bytes: AtomicU64,
    pub sessions: AtomicU64,
    pub fsyncs: AtomicU64,
    pub fsync_ms: Latency,
    /// Messages the writer takes from a long queue per group commit (`part_size`).
    pub writer_part: AtomicU64,
    pub txns: AtomicU64,
    pub auth_failed: AtomicU64,
    /// Connections closed for a large request over largeRequestMaxBytes.
    pub large_requests_rejected: AtomicU64,
    pub last_response_bytes: AtomicU64,
    pub max_response_bytes: AtomicU64,
    pub min_response_bytes: AtomicU64,
    /// Snapshots written, and how long the writer paused for the last fork.
    pub snapshots: AtomicU64,
    pub snapshot_fork_us: AtomicU64,
    /// Writes refused because the txn log had no space.
    pub refused_writes: AtomicU64,
    /// A leader's learners: connected, synced followers, synced observers, and
    /// forwarded syncs waiting for their commit.
    pub learners: AtomicU64,
    pub synced_followers: AtomicU64,
    pub synced_observers: AtomicU64,
    pub pending_syncs: AtomicU64,
}

/// What every thread may read. The tree is changed only by the writer.
pub struct Shared {
    pub cfg: Config,
    pub tree: DataTree,
    /// Last applied zxid, for reply headers.
    pub last_zxid: AtomicI64,
    /// standalone, looking, leading, following, observing (`writer::role::mode`).
    pub mode: AtomicU8,
    /// Clients are served: standalone, or an ensemble member that is synced.
    pub serving: AtomicBool,
    /// An ensemble member without a quorum serves read-only clients
    /// (`readonlymode.enabled`): reads only, writes get NotReadOnly.
    pub read_only: AtomicBool,
    pub stats: ServerStats,
    /// Requests sent to the writer and not yet answered (globalOutstandingLimit).
    pub outstanding: AtomicUsize,
    /// Bytes of large requests (cfg.large_request_threshold) from their length prefix
    /// until they are answered, on every reactor (largeRequestMaxBytes).
    pub large_requests: AtomicUsize,
    /// The txn log has no space: writes are refused (SystemError) until it has again.
    /// `ruok` does not answer imok meanwhile, and `srvr`/`stat` say why.
    pub writes_refused: AtomicBool,
    pub conns: Mutex<HashMap<ConnId, Arc<ConnInfo>>>,
    pub per_ip: Mutex<HashMap<IpAddr, u32>>,
    pub started: Instant,
}

impl Shared {
    /// What a server starts with: `tree` as recovered, applied up to `last_zxid`; an
    /// ensemble member starts looking (not serving), a standalone server serving.
    pub fn new(cfg: Config, tree: DataTree, last_zxid: Zxid) -> Shared {
        let ensemble = cfg.quorum.is_some();
        let stats = ServerStats::default();
        stats.min_response_bytes.store(u64::MAX, Relaxed);
        Shared {
            tree,
            last_zxid: AtomicI64::new(last_zxid),
            mode: AtomicU8::new(if ensemble {
                writer::role::mode::LOOKING
            } else {
                writer::role::mode::STANDALONE
            }),
            serving: AtomicBool::new(!ensemble),
            read_only: AtomicBool::new(false),
            stats,
            outstanding: AtomicUsize::new(0),
            large_requests: AtomicUsize::new(0),
            writes_refused: AtomicBool::new(false),
            conns: Mutex::new(Default::default()),
            per_ip: Mutex::new(Default::default()),
            started: Instant::now(),
            cfg,
        }
    }

    /// The mode's name as `srvr` and `mntr` print it.
    pub fn mode_name(&self) -> &'static str {
        use writer::role::mode;
        match self.mode.load(Relaxed) {
            mode::STANDALONE => "standalone",
            mode::LEADING => "leader",
            mode::FOLLOWING => "follower",
            mode::OBSERVING => "observer",
            _ if self.read_only() => "read-only",
            _ => "looking",
        }
    }
    pub fn serving(&self) -> bool {
        self.serving.load(Relaxed)
    }
    pub fn read_only(&self) -> bool {
        self.read_only.load(Relaxed)
    }
    pub fn is_standalone(&self) -> bool {
        self.mode.load(Relaxed) == writer::role::mode::STANDALONE
    }
    /// A learner forwards writes and needs their bytes.
    pub fn is_learner(&self) -> bool {
        use writer::role::mode;
        matches!(self.mode.load(Relaxed), mode::FOLLOWING | mode::OBSERVING)
    }
    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid.load(std::sync::atomic::Ordering::Acquire)
    }
    pub fn node_count(&self) -> usize {
        // ZooKeeper's map holds the root twice ("" and "/").
        self.tree.len() + 1
    }
}

/// The writer's time: the real clocks, or a simulated one (testing/), so that the
/// simulator runs the real writer deterministically.
#[derive(Clone, Default)]
pub enum Clock {
    #[default]
    Real,
    /// Milliseconds since the epoch, set by the simulator; it never goes back.
    Sim(Arc<AtomicI64>),
}

impl Clock {
    /// Wall-clock milliseconds since the epoch: txn times, session deadlines.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::Real => now_ms(),
            Clock::Sim(t) => t.load(Relaxed),
        }
    }
    /// Monotonic milliseconds: ticks, waits, the ZAB core's clock.
    pub fn mono_ms(&self) -> u64 {
        match self {
            Clock::Real => elapsed_ms() as u64,
            Clock::Sim(t) => t.load(Relaxed) as u64,
        }
    }
    pub fn simulated(&self) -> bool {
        matches!(self, Clock::Sim(_))
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
