//! The server: state shared between threads, the messages they exchange, start-up.
//!
//! Threads (ARCHITECTURE.md): reactors own sockets and run reads; the writer alone changes
//! the tree, sessions and watches and owns the txn log. They talk over crossbeam channels;
//! a reactor is woken with its `mio::Waker`.

pub mod reads;
pub mod recovery;
pub mod writer;

pub use crate::stats::{elapsed_ms, now_ms, ConnInfo, Latency, ServerStats, WriterReport};

use crate::config::Config;
use crate::proto::records::{ConnectRequest, Id, Request};
use crate::tree::DataTree;
use crate::types::{ConnId, SessionId, Zxid};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicUsize, Ordering::Relaxed};
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
    /// An accepted connection; `true`: from the secure (TLS) port.
    NewConn(mio::net::TcpStream, SocketAddr, bool),
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
    Close { conn: ConnId },
    /// Close now: more is queued for the connection than its hard limit, and the writer
    /// has dropped what it had for it (ConnInfo::overflowed). The session lives on; its
    /// client may reconnect.
    Overflow { conn: ConnId },
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
    /// What four-letter words read of the server, as admin/ sees it.
    pub fn view(&self) -> crate::admin::View<'_> {
        crate::admin::View {
            cfg: &self.cfg,
            stats: &self.stats,
            conns: &self.conns,
            outstanding: &self.outstanding,
            writes_refused: &self.writes_refused,
            started: self.started,
            mode: self.mode_name(),
            serving: self.serving(),
            read_only: self.read_only(),
            last_zxid: self.last_zxid(),
            node_count: self.node_count(),
        }
    }

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
