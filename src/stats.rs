//! What the server counts and reports: per-connection and server-wide figures, the
//! writer's report for a four-letter word, the clocks they are taken with. The server
//! records into these; admin/ reads them through a `View` (it never sees `Shared`).

use crate::types::SessionId;
use std::net::SocketAddr;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed,
};

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

/// Milliseconds since the epoch (wall clock).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
