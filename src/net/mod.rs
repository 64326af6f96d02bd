//! Client reactors: one `mio` loop per thread, pinned to a core, owning its connections.
//!
//! A connection goes Handshake → (Waiting for the writer) → Ready. In Ready, each request
//! is decoded here; reads without watches run here against the published tree, everything
//! else goes to the writer. `pending` keeps the session's order: a read waits until every
//! earlier request of the session has been answered by the writer (read-your-writes).
//!
//! Holds (ARCHITECTURE.md invariants 3, 5, 6, 7):
//! - responses leave in request order;
//! - after a read runs and before its response is queued, the inbox is drained, so a watch
//!   event the writer queued before publishing a change precedes any response showing it;
//! - a connection reads no more requests while it has `outstanding_per_connection_max` in
//!   flight, while the server has `globalOutstandingLimit` at the writer, or while it
//!   owes its client `outbound_bytes_max` (one budget: bytes queued by the reactor or the
//!   writer and not yet written, plus room reserved for replies the writer has yet to
//!   make); past 4x that it is disconnected;
//! - a malformed or oversize frame closes that connection with a log line, nothing else.

mod stream;

use crate::admin;
use crate::proto::frame::{next_frame, Frame};
use crate::proto::ops::{op, xid, ZkError};
use crate::proto::records::{reply_frame, ConnectRequest, Id, Request};
use crate::proto::Reader;
use crate::sasl::digest_md5::{DigestServer, Outcome};
use crate::server::{elapsed_ms, reads, ConnInfo, ReactorHandle, Shared, ToReactor, ToWriter};
use crate::types::{ConnId, SessionId};
use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stream::{Stream, TlsFailed};

/// Why a connection closes: logged at debug when it does (the flood-prone ones are also
/// logged at warn, rate-limited, where they are found).
#[derive(Debug)]
enum Closed {
    ByClient,
    ReadFailed(io::Error),
    WriteFailed(io::Error),
    WroteZero,
    BadFrameLength(i32),
    LargeRequestRejected,
    NotServing,
    StoppedServing,
    MalformedConnect(crate::proto::DecodeError),
    NotReadOnlyClient,
    ShortHeader,
    MalformedPacket(crate::proto::DecodeError),
    NoConnectRequest,
    SlowReader,
    OverHardLimit,
    Tls(String),
    Done,
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::ByClient => write!(f, "client closed the connection"),
            Closed::ReadFailed(e) => write!(f, "read error: {e}"),
            Closed::WriteFailed(e) => write!(f, "write error: {e}"),
            Closed::WroteZero => write!(f, "write returned 0"),
            Closed::BadFrameLength(len) => write!(f, "bad frame length {len}"),
            Closed::LargeRequestRejected => write!(f, "large request rejected"),
            Closed::NotServing => write!(f, "this server is not serving (no leader yet)"),
            Closed::StoppedServing => write!(f, "this server stopped serving (no leader)"),
            Closed::MalformedConnect(e) => write!(f, "malformed ConnectRequest: {e}"),
            Closed::NotReadOnlyClient => {
                write!(f, "read-only mode: the client did not ask for read-only")
            }
            Closed::ShortHeader => write!(f, "short request header"),
            Closed::MalformedPacket(e) => write!(f, "malformed request: {e}"),
            Closed::NoConnectRequest => write!(f, "no ConnectRequest in time"),
            Closed::SlowReader => write!(f, "slow reader"),
            Closed::OverHardLimit => write!(f, "slow reader (over the hard limit)"),
            Closed::Tls(e) => write!(f, "{e}"),
            Closed::Done => write!(f, "closed after reply"),
        }
    }
}

pub const WAKER: Token = Token(0);
pub const LISTENER: Token = Token(1);
/// The secure client port's listener (connection tokens count up from 2).
pub const SECURE_LISTENER: Token = Token(usize::MAX - 1);
const READ_CHUNK: usize = 64 * 1024;
/// What one connection may have read per visit, and all of them per loop turn: many
/// connections sending bulk frames cannot hold a turn (and everyone's answers, events
/// and session touches behind it) for long; the ones not read go first next turn.
const VISIT_READ_BUDGET: usize = 2 * READ_CHUNK;
const TURN_READ_BUDGET: usize = 16 * READ_CHUNK;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Waiting,
    Ready(SessionId),
    /// A four-letter word waits for the writer's answer: read nothing more.
    Admin,
    /// Answering a four-letter word or closing: read nothing more.
    Closing,
}

struct Queued {
    xid: i32,
    op: i32,
    req: Request,
    local: bool,
    /// The request's bytes, on a learner, for forwarding to the leader.
    raw: Option<Vec<u8>>,
    /// The request's size, from which a write's reply is estimated.
    body_len: usize,
    /// What it holds of `Shared::large_requests`, until it is answered.
    large: usize,
}

/// A request with the writer.
struct AtWriter {
    sent: Instant,
    /// Bytes reserved of the outbound budget for its reply.
    reserved: usize,
    /// What it holds of `Shared::large_requests`.
    large: usize,
}

/// Owned by one reactor thread; never crosses cores.
struct Conn {
    id: ConnId,
    sock: Stream,
    remote: SocketAddr,
    /// A TLS connection whose client certificate has not been looked at yet.
    tls_unchecked: bool,
    /// The SASL exchange under way (or done), once the client starts one.
    sasl: Option<Box<DigestServer>>,
    state: State,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    ids: Arc<[Id]>,
    pending: VecDeque<Queued>,
    /// Requests with the writer, oldest first.
    at_writer: VecDeque<AtWriter>,
    /// The sum of `at_writer`'s reservations: with `info.unsent`, what the connection
    /// owes its client.
    reserved: usize,
    /// What the frame being read holds of `Shared::large_requests` (a large request
    /// counts from its length prefix on).
    large: usize,
    read_only: Option<bool>,
    paused: bool,
    eof: bool,
    /// When its latest packet was read (ms since the epoch), if not yet reported to the
    /// writer: expiry is credited from then.
    touched_ms: u64,
    /// When it was accepted: a connection still without a ConnectRequest (or a
    /// four-letter word) `HANDSHAKE_TIMEOUT` later is closed.
    accepted: Instant,
    info: Arc<ConnInfo>,
}

impl Conn {
    /// Queues one reply or event frame. `jute.maxbuffer` bounds requests, not replies, as
    /// in ZooKeeper: what the server accepted (a node's data up to the limit, however many
    /// children) can be read back, even when its reply is larger than the limit. The
    /// connection's outbound budget bounds what waits for a slow reader.
    fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.info.sent.fetch_add(1, Relaxed);
    }
    /// Takes bytes the writer sent: they leave `info.unsent` for `out`.
    fn take_from_writer(&mut self, bytes: &[u8]) {
        self.info.unsent.fetch_sub(bytes.len(), Relaxed);
        self.out.extend_from_slice(bytes);
        self.info.sent.fetch_add(1, Relaxed);
    }
    /// What the connection owes its client (queued anywhere, or reserved for replies the
    /// writer has yet to make), against `outbound_bytes_max`.
    fn owed(&self) -> usize {
        self.info.unsent.load(Relaxed) + self.out_len() + self.reserved
    }
    fn out_len(&self) -> usize {
        self.out.len() - self.out_pos
    }
    fn inflight(&self) -> usize {
        self.pending.len() + self.at_writer.len()
    }
}

/// The listeners a reactor accepts on (the first reactor has them) and the TLS
/// configuration every reactor's connections use.
pub struct Listeners {
    pub plain: Option<TcpListener>,
    pub secure: Option<TcpListener>,
    pub tls: Option<Arc<crate::tls::Reloading>>,
}

pub struct Reactor {
    index: usize,
    poll: Poll,
    shared: Arc<Shared>,
    inbox: Receiver<ToReactor>,
    to_writer: Sender<ToWriter>,
    listener: Option<TcpListener>,
    secure_listener: Option<TcpListener>,
    /// The client port's TLS configuration (secure port or unified plain port).
    tls: Option<Arc<crate::tls::Reloading>>,
    peers: Vec<ReactorHandle>,
    next_peer: usize,
    conns: HashMap<Token, Conn>,
    next_seq: u64,
    dirty: Vec<Token>,
    to_read: Vec<Token>,
    /// Connections that used their visit's read budget with more to read: read again
    /// next turn, after the ones with fresh events.
    read_more: Vec<Token>,
    scratch: Box<[u8]>,
    /// Messages for the writer, sent as one batch per loop turn (one channel operation and
    /// at most one wake-up of the writer, however many requests the turn decoded).
    outbox: Vec<ToWriter>,
    /// When this loop turn began (ms since the epoch): the time of the packets it reads.
    turn_ms: u64,
    /// This loop turn's start on the monotonic clock (ms): `cons` shows it as the time
    /// of the responses the turn sent.
    turn_elapsed_ms: i64,
    /// Bytes read so far this turn (TURN_READ_BUDGET).
    turn_read: usize,
    /// Accepting failed for want of descriptors (or memory): when to try again. The
    /// listener is edge-triggered, so connections left in its backlog would otherwise
    /// wait for the next one to arrive.
    accept_retry: Option<Instant>,
    logs: LogRates,
}

/// Log lines of one kind that a flood could repeat (refused connections, failed accepts,
/// misbehaving clients): at most `LOG_LINES_PER_WINDOW` per `LOG_WINDOW` per reactor;
/// the rest are counted and summed up in one line when the window has passed.
struct LogRate {
    /// What the summary line calls the held-back lines.
    what: &'static str,
    window_start: Instant,
    lines: u32,
    suppressed: u64,
}

const LOG_WINDOW: Duration = Duration::from_secs(10);
const LOG_LINES_PER_WINDOW: u32 = 5;

/// How long a connection may take to send its ConnectRequest: ZooKeeper's default for
/// sessionless connections (zookeeper.nio.sessionlessCnxnTimeout).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long accepting pauses when the process is out of descriptors (ZooKeeper's
/// AcceptThread pauses 10 ms).
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

impl LogRate {
    fn new(what: &'static str) -> LogRate {
        LogRate {
            what,
            window_start: Instant::now(),
            lines: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may go out now.
    fn admit(&mut self) -> bool {
        self.roll();
        if self.lines < LOG_LINES_PER_WINDOW {
            self.lines += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Once the window has passed: sums up what it held back, and starts a new one.
    fn roll(&mut self) {
        if self.window_start.elapsed() < LOG_WINDOW {
            return;
        }
        if self.suppressed > 0 {
            log::warn!(
                "{} more like this in the last {} s: {}",
                std::mem::take(&mut self.suppressed),
                LOG_WINDOW.as_secs(),
                self.what
            );
        }
        self.window_start = Instant::now();
        self.lines = 0;
    }
}

/// The kinds of flood-prone lines a reactor rate-limits.
struct LogRates {
    refused: LogRate,
    accept_failed: LogRate,
    bad_client: LogRate,
    tls_failed: LogRate,
}

impl LogRates {
    fn new() -> LogRates {
        LogRates {
            refused: LogRate::new("connections refused (maxClientCnxns)"),
            accept_failed: LogRate::new("accepts failed"),
            bad_client: LogRate::new("connections closed for bad input"),
            tls_failed: LogRate::new("TLS handshakes failed"),
        }
    }

    /// Sums up a flood that has stopped (no later line would report it).
    fn roll(&mut self) {
        self.refused.roll();
        self.accept_failed.roll();
        self.bad_client.roll();
        self.tls_failed.roll();
    }
}

fn token_of(conn: ConnId) -> Token {
    Token((conn & 0xFFFF_FFFF_FFFF) as usize)
}

impl Reactor {
    pub fn new(
        index: usize,
        poll: Poll,
        shared: Arc<Shared>,
        inbox: Receiver<ToReactor>,
        to_writer: Sender<ToWriter>,
        listeners: Listeners,
        peers: Vec<ReactorHandle>,
    ) -> io::Result<Reactor> {
        let Listeners {
            mut plain,
            mut secure,
            tls,
        } = listeners;
        if let Some(l) = plain.as_mut() {
            poll.registry().register(l, LISTENER, Interest::READABLE)?;
        }
        if let Some(l) = secure.as_mut() {
            poll.registry()
                .register(l, SECURE_LISTENER, Interest::READABLE)?;
        }
        Ok(Reactor {
            index,
            poll,
            shared,
            inbox,
            to_writer,
            listener: plain,
            secure_listener: secure,
            tls,
            peers,
            next_peer: 0,
            conns: HashMap::new(),
            next_seq: 2,
            dirty: Vec::new(),
            to_read: Vec::new(),
            read_more: Vec::new(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            outbox: Vec::new(),
            turn_ms: 0,
            turn_elapsed_ms: 0,
            turn_read: 0,
            accept_retry: None,
            logs: LogRates::new(),
        })
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        // Often enough that a session's traffic reaches the writer well within the
        // shortest timeout a session may have (the writer credits it from the packet's
        // own time): half a tick, or a quarter of minSessionTimeout when that is less.
        let cfg = &self.shared.cfg;
        let touch_every_ms = (cfg.tick_ms as u64 / 2).min(cfg.session_timeout_ms_min as u64 / 4);
        let touch_every = Duration::from_millis(touch_every_ms.max(1));
        let mut last_touch = Instant::now();
        loop {
            let any_paused = self.conns.values().any(|c| c.paused);
            let timeout =
                if !self.to_read.is_empty() || !self.read_more.is_empty() || !self.dirty.is_empty()
                {
                    Duration::ZERO
                } else if any_paused {
                    Duration::from_millis(5)
                } else {
                    touch_every
                };
            let timeout = match self.accept_retry {
                Some(at) => timeout.min(at.saturating_duration_since(Instant::now())),
                None => timeout,
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("reactor {}: poll failed: {e}", self.index);
                    return;
                }
            }
            self.turn_ms = crate::server::now_ms() as u64;
            self.turn_elapsed_ms = elapsed_ms();
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    LISTENER => self.accept(false),
                    SECURE_LISTENER => self.accept(true),
                    t => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.to_read.push(t);
                        }
                        if ev.is_writable() {
                            self.dirty.push(t);
                        }
                    }
                }
            }
            if self.accept_retry.is_some_and(|at| at <= Instant::now()) {
                self.accept_retry = None;
                self.accept(false);
                self.accept(true);
            }
            self.to_read.append(&mut self.read_more);
            self.drain_inbox(None);
            self.turn_read = 0;
            let mut reads = std::mem::take(&mut self.to_read).into_iter();
            while let Some(t) = reads.next() {
                if self.turn_read >= TURN_READ_BUDGET {
                    let rest: Vec<Token> = std::iter::once(t).chain(reads).collect();
                    self.to_read.splice(0..0, rest);
                    break;
                }
                self.read_conn(t);
            }
            if any_paused {
                let paused: Vec<Token> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.paused)
                    .map(|(t, _)| *t)
                    .collect();
                for t in paused {
                    self.read_conn(t);
                }
            }
            if !self.flush_outbox() {
                log::error!("reactor {}: the writer is gone; stopping", self.index);
                return;
            }
            self.flush_dirty();
            if last_touch.elapsed() >= touch_every {
                last_touch = Instant::now();
                self.logs.roll();
                self.close_stalled_handshakes();
                let touched: Vec<(SessionId, u64)> = self
                    .conns
                    .values_mut()
                    .filter_map(|c| match (std::mem::take(&mut c.touched_ms), c.state) {
                        (at, State::Ready(s)) if at > 0 => Some((s, at)),
                        _ => None,
                    })
                    .collect();
                if !touched.is_empty() {
                    self.outbox.push(ToWriter::Touch(touched));
                }
            }
        }
    }

    /// Sends what this turn produced for the writer; false when the writer is gone.
    fn flush_outbox(&mut self) -> bool {
        match self.outbox.len() {
            0 => true,
            1 => self.to_writer.send(self.outbox.pop().unwrap()).is_ok(),
            _ => {
                let batch = std::mem::replace(&mut self.outbox, Vec::with_capacity(64));
                self.to_writer.send(ToWriter::Batch(batch)).is_ok()
            }
        }
    }

    fn accept(&mut self, secure: bool) {
        let mut failures = 0;
        loop {
            let l = if secure {
                &self.secure_listener
            } else {
                &self.listener
            };
            let Some(l) = l.as_ref() else {
                return;
            };
            match l.accept() {
                Ok((sock, addr)) => {
                    let max = self.shared.cfg.max_client_cnxns;
                    if max > 0 {
                        let mut per_ip = self.shared.per_ip.lock().unwrap();
                        let n = per_ip.entry(addr.ip()).or_insert(0);
                        if *n >= max {
                            if self.logs.refused.admit() {
                                log::warn!(
                                    "too many connections from {} - max is {max}",
                                    addr.ip()
                                );
                            }
                            continue;
                        }
                        *n += 1;
                    }
                    let peer = self.next_peer % self.peers.len();
                    self.next_peer += 1;
                    if peer == self.index {
                        self.register(sock, addr, secure);
                    } else {
                        let h = &self.peers[peer];
                        let _ = h.tx.send(ToReactor::NewConn(sock, addr, secure));
                        let _ = h.waker.wake();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.logs.accept_failed.admit() {
                        log::warn!("accept failed: {e}");
                    }
                    failures += 1;
                    if failures >= 16
                        || matches!(
                            e.raw_os_error(),
                            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                        )
                    {
                        // Out of descriptors: try again in a while, or as soon as a
                        // connection closes, as ZooKeeper pauses accepting for 10 ms.
                        self.accept_retry = Some(Instant::now() + ACCEPT_RETRY);
                        return;
                    }
                    // Anything else concerns that one connection (ECONNABORTED,
                    // EPERM from a firewall): the next one may be fine (but an error
                    // that repeats is not spun on).
                }
            }
        }
    }

    fn register(&mut self, mut sock: TcpStream, remote: SocketAddr, secure: bool) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let id: ConnId = ((self.index as u64) << 48) | seq;
        let token = token_of(id);
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
        {
            log::warn!("cannot register connection from {remote}: {e}");
            self.release_ip(remote);
            return;
        }
        let _ = sock.set_nodelay(true);
        let sock = match (&self.tls, secure, self.shared.cfg.port_unification) {
            (Some(tls), true, _) => match Stream::tls(sock, tls.get()) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("cannot start TLS with {remote}: {e}");
                    self.release_ip(remote);
                    return;
                }
            },
            (Some(tls), false, true) => Stream::Sniff(sock, tls.get()),
            _ => Stream::Plain(sock),
        };
        let tls_unchecked = secure || self.shared.cfg.port_unification;
        let info = Arc::new(ConnInfo::new(remote));
        self.shared.conns.lock().unwrap().insert(id, info.clone());
        let ids: Arc<[Id]> = Arc::from(vec![Id::new("ip", &remote.ip().to_string())]);
        self.conns.insert(
            token,
            Conn {
                id,
                sock,
                remote,
                tls_unchecked,
                sasl: None,
                state: State::Handshake,
                inbuf: Vec::new(),
                out: Vec::new(),
                out_pos: 0,
                ids,
                pending: VecDeque::new(),
                at_writer: VecDeque::new(),
                reserved: 0,
                large: 0,
                read_only: None,
                paused: false,
                eof: false,
                touched_ms: 0,
                accepted: Instant::now(),
                info,
            },
        );
        // Bytes may already be waiting.
        self.to_read.push(token);
    }

    fn release_ip(&self, remote: SocketAddr) {
        if self.shared.cfg.max_client_cnxns > 0 {
            let mut per_ip = self.shared.per_ip.lock().unwrap();
            if let Some(n) = per_ip.get_mut(&remote.ip()) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_ip.remove(&remote.ip());
                }
            }
        }
    }

    /// Closes connections that never sent a ConnectRequest (or a four-letter word)
    /// within `HANDSHAKE_TIMEOUT`: they hold a maxClientCnxns slot and maybe a partial
    /// frame.
    fn close_stalled_handshakes(&mut self) {
        let stalled: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.state == State::Handshake && c.accepted.elapsed() >= HANDSHAKE_TIMEOUT
            })
            .map(|(t, _)| *t)
            .collect();
        for t in stalled {
            if self.logs.bad_client.admit() {
                if let Some(c) = self.conns.get(&t) {
                    log::warn!(
                        "closing {}: no ConnectRequest within {} s",
                        c.remote,
                        HANDSHAKE_TIMEOUT.as_secs()
                    );
                }
            }
            self.close(t, Closed::NoConnectRequest);
        }
    }

    fn close(&mut self, token: Token, why: Closed) {
        if let Some(mut c) = self.conns.remove(&token) {
            self.finish_close(&mut c, &why);
        }
    }

    fn finish_close(&mut self, c: &mut Conn, why: &Closed) {
        log::debug!("closing connection {} ({why})", c.remote);
        let _ = self.poll.registry().deregister(c.sock.socket_mut());
        c.sock.shutdown();
        self.shared.conns.lock().unwrap().remove(&c.id);
        self.shared
            .outstanding
            .fetch_sub(c.at_writer.len(), Relaxed);
        let large = c.large
            + c.at_writer.iter().map(|w| w.large).sum::<usize>()
            + c.pending.iter().map(|q| q.large).sum::<usize>();
        self.shared.large_requests.fetch_sub(large, Relaxed);
        self.release_ip(c.remote);
        if self.accept_retry.is_some() {
            // A descriptor is free now.
            self.accept_retry = Some(Instant::now());
        }
        if let State::Ready(s) = c.state {
            self.outbox.push(ToWriter::Closed {
                conn: c.id,
                session: s,
            });
        }
    }

    /// Applies writer messages. `current` is a connection the caller holds outside the map.
    fn drain_inbox(&mut self, mut current: Option<&mut Conn>) {
        let now = self.turn_elapsed_ms;
        while let Ok(m) = self.inbox.try_recv() {
            if let ToReactor::NewConn(sock, addr, secure) = m {
                self.register(sock, addr, secure);
                continue;
            }
            let id = m.conn().expect("only NewConn has no connection");
            let token = token_of(id);
            let conn = match current.as_deref_mut() {
                Some(c) if c.id == id => c,
                _ => match self.conns.get_mut(&token) {
                    Some(c) if c.id == id => c,
                    _ => continue,
                },
            };
            let shared = &self.shared;
            match m {
                ToReactor::Frame { bytes, reply, .. } => {
                    conn.take_from_writer(&bytes);
                    shared.stats.packets_sent.fetch_add(1, Relaxed);
                    if reply {
                        if bytes.len() >= 16 {
                            // The reply's header zxid (after length and xid).
                            let z = i64::from_be_bytes(bytes[8..16].try_into().unwrap());
                            conn.info.last_zxid.store(z, Relaxed);
                        }
                        if let Some(w) = conn.at_writer.pop_front() {
                            conn.reserved -= w.reserved;
                            shared.large_requests.fetch_sub(w.large, Relaxed);
                            shared.outstanding.fetch_sub(1, Relaxed);
                            let ms = w.sent.elapsed().as_millis() as u64;
                            shared.stats.latency.record(ms);
                            conn.info.latency.record(ms);
                            conn.info.last_latency_ms.store(ms, Relaxed);
                            conn.info.last_response_ms.store(now, Relaxed);
                        }
                        conn.info.queued.store(conn.inflight() as u64, Relaxed);
                        self.to_read.push(token);
                    }
                }
                ToReactor::Connected {
                    session,
                    timeout_ms,
                    ok,
                    zxid,
                    ..
                } => {
                    if ok {
                        conn.state = State::Ready(session);
                        conn.info.session.store(session, Relaxed);
                        conn.info.timeout_ms.store(timeout_ms, Relaxed);
                        // As ZooKeeper's cons shows a new session: its createSession.
                        conn.info.last_op.store(op::CREATE_SESSION, Relaxed);
                        conn.info.last_cxid.store(0, Relaxed);
                        conn.info.last_zxid.store(zxid, Relaxed);
                        conn.info.last_response_ms.store(now, Relaxed);
                        // Requests pipelined behind the handshake are in inbuf.
                        self.to_read.push(token);
                    } else {
                        conn.state = State::Closing;
                    }
                }
                // The session is gone or moved: the writer needs no Closed for this one.
                ToReactor::Close { .. } => conn.state = State::Closing,
                // `flush_dirty` closes it (ConnInfo::overflowed).
                ToReactor::Overflow { .. } => {}
                ToReactor::Admin { cmd, report, .. } => {
                    let text = admin::answer(&shared.view(), &cmd, Some(&report));
                    conn.queue(text.as_bytes());
                    shared.stats.packets_sent.fetch_add(1, Relaxed);
                    conn.state = State::Closing;
                }
                ToReactor::NewConn(..) => unreachable!(),
            }
            self.dirty.push(token);
        }
    }

    fn read_conn(&mut self, token: Token) {
        let Some(mut c) = self.conns.remove(&token) else {
            return;
        };
        let keep = self.service(&mut c);
        match keep {
            Ok(()) => {
                self.dirty.push(token);
                self.conns.insert(token, c);
            }
            Err(why) => self.finish_close(&mut c, &why),
        }
    }

    fn limits_reached(&self, c: &Conn) -> bool {
        let cfg = &self.shared.cfg;
        c.inflight() >= cfg.outstanding_per_connection_max
            || self.shared.outstanding.load(Relaxed) >= cfg.global_outstanding_limit
            || c.owed() >= cfg.outbound_bytes_max
    }

    /// Reads what the socket has, runs complete requests. `Err` closes the connection.
    fn service(&mut self, c: &mut Conn) -> Result<(), Closed> {
        if c.state == State::Closing || c.state == State::Admin {
            return Ok(());
        }
        self.drive(c)?;
        c.paused = self.limits_reached(c);
        if !c.paused && !c.eof {
            let max_frame = self.shared.cfg.jute_maxbuffer + 4;
            let mut budget = VISIT_READ_BUDGET;
            // Read through the reactor's scratch buffer: an idle connection keeps no
            // read buffer of its own.
            let scratch = &mut self.scratch;
            loop {
                match c.sock.read(&mut scratch[..]) {
                    Ok(0) => {
                        c.eof = true;
                        break;
                    }
                    Ok(n) => {
                        c.inbuf.extend_from_slice(&scratch[..n]);
                        budget = budget.saturating_sub(n);
                        self.turn_read += n;
                        if budget == 0 || c.inbuf.len() > 2 * max_frame {
                            // Fairness: others get a turn; mio will not re-notify, so come back.
                            self.read_more.push(token_of(c.id));
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.read_failed(c, e)),
                }
            }
        }
        if c.tls_unchecked && !c.sock.handshaking() {
            c.tls_unchecked = false;
            self.tls_ready(c);
        }
        self.process_frames(c)?;
        if c.eof && !matches!(c.state, State::Closing | State::Admin) {
            return Err(Closed::ByClient);
        }
        Ok(())
    }

    fn process_frames(&mut self, c: &mut Conn) -> Result<(), Closed> {
        let maxbuf = self.shared.cfg.jute_maxbuffer;
        let mut start = 0;
        let result = loop {
            if matches!(c.state, State::Closing | State::Waiting | State::Admin)
                || self.limits_reached(c)
            {
                c.paused = matches!(c.state, State::Handshake | State::Ready(_));
                break Ok(());
            }
            let buf = &c.inbuf[start..];
            if c.state == State::Handshake && buf.len() >= 4 {
                if let Some(w) = admin::word(&buf[..4]) {
                    self.four_letter(c, w);
                    start = c.inbuf.len();
                    break Ok(());
                }
            }
            if c.large == 0 && buf.len() >= 4 {
                if let Err(e) = self.admit_large(c, start) {
                    break Err(e);
                }
            }
            let buf = &c.inbuf[start..];
            match next_frame(buf, maxbuf) {
                Frame::Partial => break Ok(()),
                Frame::BadLength(len) => {
                    // A TLS record header (0x16 0x03) where a length should be.
                    let tls_hello = c.state == State::Handshake
                        && !c.sock.is_tls()
                        && buf.starts_with(&[crate::tls::TLS_HANDSHAKE, 0x03]);
                    if self.logs.bad_client.admit() {
                        if tls_hello {
                            log::warn!(
                                "closing {}: a TLS hello on the plain client port (use the secureClientPort, or set client.portUnification=true)",
                                c.remote
                            );
                        } else {
                            log::warn!(
                                "closing {}: Len error {len} (jute.maxbuffer is {maxbuf})",
                                c.remote
                            );
                        }
                    }
                    break Err(Closed::BadFrameLength(len));
                }
                Frame::Complete { start: s, end } => {
                    // Decode straight from the buffer, lent out of the connection.
                    let inbuf = std::mem::take(&mut c.inbuf);
                    let r = self.on_frame(c, &inbuf[start + s..start + end]);
                    c.inbuf = inbuf;
                    // A frame that queued no request (a handshake, a bad one) holds
                    // nothing once it is read.
                    self.shared
                        .large_requests
                        .fetch_sub(std::mem::take(&mut c.large), Relaxed);
                    start += end;
                    if let Err(e) = r {
                        break Err(e);
                    }
                }
            }
        };
        if start == c.inbuf.len() {
            c.inbuf.clear();
            if c.inbuf.capacity() > READ_CHUNK {
                c.inbuf = Vec::new();
            }
        } else {
            c.inbuf.drain(..start);
        }
        result
    }

    /// A frame longer than `largeRequestThreshold` counts against `largeRequestMaxBytes`
    /// in total from its length prefix until it is answered, as in ZooKeeper
    /// (checkRequestSize): past that the connection is closed. One alone always fits, so
    /// every frame `jute.maxbuffer` allows can be sent. Its buffer is sized for it once.
    fn admit_large(&mut self, c: &mut Conn, start: usize) -> Result<(), Closed> {
        let cfg = &self.shared.cfg;
        let Some(threshold) = cfg.large_request_threshold else {
            return Ok(());
        };
        let len = i32::from_be_bytes(c.inbuf[start..start + 4].try_into().unwrap());
        if len < 0 || len as usize <= threshold || len as usize > cfg.jute_maxbuffer {
            return Ok(()); // small, or a bad length next_frame reports
        }
        let len = len as usize;
        let total = &self.shared.large_requests;
        let before = total.fetch_add(len, Relaxed);
        if before > 0 && before + len > cfg.large_request_max_bytes {
            total.fetch_sub(len, Relaxed);
            self.shared
                .stats
                .large_requests_rejected
                .fetch_add(1, Relaxed);
            if self.logs.bad_client.admit() {
                log::warn!(
                    "closing {}: rejecting a large request of {len} bytes: {before} bytes of \
                     large requests are being read or answered (largeRequestMaxBytes is {})",
                    c.remote,
                    cfg.large_request_max_bytes
                );
            }
            return Err(Closed::LargeRequestRejected);
        }
        c.large = len;
        let want = start + 4 + len;
        if want > c.inbuf.capacity() {
            c.inbuf.reserve_exact(want - c.inbuf.len());
        }
        Ok(())
    }

    fn four_letter(&mut self, c: &mut Conn, w: &'static str) {
        c.state = State::Admin;
        // A packet in and one out, as ZooKeeper counts a four-letter word (the answer
        // shows the one in, not yet the one out).
        self.shared.stats.packets_received.fetch_add(1, Relaxed);
        c.info.received.fetch_add(1, Relaxed);
        if !admin::needs_writer(w) || !self.shared.cfg.four_letter_word_enabled(w) {
            let text = admin::answer(&self.shared.view(), w, None);
            c.queue(text.as_bytes());
            self.shared.stats.packets_sent.fetch_add(1, Relaxed);
            c.state = State::Closing;
        } else {
            self.outbox.push(ToWriter::Admin {
                conn: c.id,
                cmd: w.to_owned(),
            });
        }
    }

    fn on_frame(&mut self, c: &mut Conn, body: &[u8]) -> Result<(), Closed> {
        self.shared.stats.packets_received.fetch_add(1, Relaxed);
        c.info.received.fetch_add(1, Relaxed);
        c.touched_ms = self.turn_ms;
        c.info.last_packet_ms.store(self.turn_ms as i64, Relaxed);
        let read_only = !self.shared.serving() && self.shared.read_only();
        if !self.shared.serving() && !read_only {
            // An ensemble member between terms serves nobody; the client tries another.
            return Err(Closed::NotServing);
        }
        if c.state == State::Handshake {
            let req = ConnectRequest::decode(body).map_err(|e| {
                if self.logs.bad_client.admit() {
                    log::warn!("closing {}: malformed ConnectRequest: {e}", c.remote);
                }
                Closed::MalformedConnect(e)
            })?;
            if read_only && req.read_only != Some(true) {
                // Without a quorum only clients that accept read-only sessions are served.
                return Err(Closed::NotReadOnlyClient);
            }
            c.read_only = req.read_only;
            c.state = State::Waiting;
            self.outbox.push(ToWriter::Connect {
                conn: c.id,
                req,
                info: c.info.clone(),
            });
            return Ok(());
        }
        let mut r = Reader::new(body);
        let (xid_, opcode) = match (r.read_i32(), r.read_i32()) {
            (Ok(x), Ok(o)) => (x, o),
            _ => {
                if self.logs.bad_client.admit() {
                    log::warn!("closing {}: request shorter than its header", c.remote);
                }
                return Err(Closed::ShortHeader);
            }
        };
        let body = r.rest();
        let req = match Request::decode(opcode, body) {
            Ok(r) => r,
            Err(crate::proto::DecodeError::Invalid("unknown opcode")) => {
                if self.logs.bad_client.admit() {
                    log::warn!("closing {}: unknown opcode {opcode}", c.remote);
                }
                // ZooKeeper's UnimplementedRequestProcessor answers with zxid -1.
                let f = reply_frame(xid_, -1, ZkError::Unimplemented.code(), |_| {});
                c.queue(&f);
                c.state = State::Closing;
                return Ok(());
            }
            Err(e) if matches!(opcode, op::AUTH | op::SASL) => {
                // ZooKeeper reads these before its pipeline: a bad one ends the connection.
                if self.logs.bad_client.admit() {
                    log::warn!(
                        "closing {}: malformed {} packet: {e}",
                        c.remote,
                        op::name(opcode)
                    );
                }
                return Err(Closed::MalformedPacket(e));
            }
            Err(e) => {
                // As ZooKeeper: MarshallingError for this request (an error txn for a
                // write), in the session's order; the connection stays.
                if self.logs.bad_client.admit() {
                    log::warn!(
                        "answering MarshallingError to {}: malformed {} request: {e}",
                        c.remote,
                        op::name(opcode)
                    );
                }
                Request::Refused {
                    write: op::is_write(opcode),
                    err: ZkError::MarshallingError,
                }
            }
        };
        c.info.last_op.store(opcode, Relaxed);
        if xid_ > 0 {
            c.info.last_cxid.store(xid_, Relaxed);
        }
        let local = req.is_plain_read()
            || matches!(
                req,
                Request::Ping | Request::Auth { .. } | Request::Check { .. } | Request::Sasl { .. }
            );
        let forwarded = req.is_write() || matches!(req, Request::Sync { .. } | Request::Reconfig);
        let raw = (forwarded && self.shared.is_learner()).then(|| body.to_vec());
        c.pending.push_back(Queued {
            xid: xid_,
            op: opcode,
            req,
            local,
            raw,
            body_len: body.len(),
            large: std::mem::take(&mut c.large),
        });
        self.drive(c)
    }

    /// Moves the session's queue forward as far as order allows.
    fn drive(&mut self, c: &mut Conn) -> Result<(), Closed> {
        let State::Ready(session) = c.state else {
            return Ok(());
        };
        // Standalone, a plain read behind this session's writes, with more writes queued
        // behind it, goes to the writer, which answers it right after the last earlier
        // write applies: the writes behind it go on to the same group commit instead of
        // waiting for the read. (In an ensemble it waits here, as every local request
        // does, until the writes are answered.)
        let defer_reads = self.shared.is_standalone();
        let budget = self.shared.cfg.outbound_bytes_max;
        while let Some(front) = c.pending.front() {
            if c.owed() >= budget {
                // The rest waits until the client has read some of what it is owed.
                break;
            }
            let behind_writes = !c.at_writer.is_empty();
            // Only when a request for the writer waits behind the read: otherwise waiting
            // here costs the writer nothing, and answering here is cheaper.
            let to_writer = !front.local
                || (behind_writes
                    && defer_reads
                    && front.req.is_plain_read()
                    && c.pending.iter().skip(1).any(|q| !q.local));
            if front.local && behind_writes && !to_writer {
                break;
            }
            let mut q = c.pending.pop_front().unwrap();
            if !self.may_run(c, &q.req) {
                // ZooKeeper 3.8's AuthenticationHelper: the error, no body, then close
                // (the session lives on until it expires).
                self.shared
                    .large_requests
                    .fetch_sub(std::mem::take(&mut q.large), Relaxed);
                let code = ZkError::SessionClosedRequireSaslAuth.code();
                let f = reply_frame(q.xid, 0, code, |_| {});
                c.queue(&f);
                c.state = State::Closing;
                if self.logs.bad_client.admit() {
                    log::warn!(
                        "closing {}: {} before authenticating with any of {:?}",
                        c.remote,
                        op::name(q.op),
                        self.shared.cfg.enforce_auth
                    );
                }
                return Ok(());
            }
            if to_writer {
                self.send_to_writer(c, session, q);
                continue;
            }
            // Answered here and now (or by the writer with nothing held, when Busy).
            self.shared
                .large_requests
                .fetch_sub(std::mem::take(&mut q.large), Relaxed);
            let mut zxid = self.shared.last_zxid();
            let frame = match &q.req {
                Request::Ping => reply_frame(xid::PING, zxid, 0, |_| {}),
                Request::Auth { scheme, auth } => {
                    match self.authenticate(c, scheme, auth.as_deref()) {
                        Ok(()) => {
                            // The writer delivers watch events by the session's ids as they
                            // stand now, not as of its last request to the writer.
                            self.outbox.push(ToWriter::Auth {
                                conn: c.id,
                                session,
                                ids: c.ids.clone(),
                            });
                            reply_frame(q.xid, 0, 0, |_| {})
                        }
                        Err(e) => {
                            self.shared.stats.auth_failed.fetch_add(1, Relaxed);
                            let f = reply_frame(q.xid, 0, e.code(), |_| {});
                            c.queue(&f);
                            c.state = State::Closing;
                            return Ok(());
                        }
                    }
                }
                Request::Sasl { token } => {
                    match self.sasl_step(c, session, q.xid, token.as_deref()) {
                        Ok(frame) => frame,
                        Err(frame) => {
                            c.queue(&frame);
                            c.state = State::Closing;
                            return Ok(());
                        }
                    }
                }
                Request::Check { .. } => {
                    // Standalone check outside multi: rejected as ZooKeeper 3.8.5+ does.
                    let f = reply_frame(q.xid, zxid, ZkError::Unimplemented.code(), |_| {});
                    c.queue(&f);
                    c.state = State::Closing;
                    return Ok(());
                }
                r => {
                    let shared = &self.shared;
                    match reads::reply_consistent(
                        &shared.tree,
                        &shared.last_zxid,
                        || shared.serving() || shared.read_only(),
                        &shared.cfg,
                        &c.ids,
                        q.xid,
                        r,
                    ) {
                        reads::Consistent::Answered { frame, zxid: view } => {
                            zxid = view;
                            frame
                        }
                        reads::Consistent::Busy => {
                            // Answered by the writer, in this session's order.
                            self.send_to_writer(c, session, q);
                            continue;
                        }
                        reads::Consistent::NotServing => {
                            return Err(Closed::StoppedServing);
                        }
                    }
                }
            };
            // Invariant 5: events queued before the data we just read was published go first.
            self.drain_inbox(Some(c));
            c.queue(&frame);
            self.shared.stats.packets_sent.fetch_add(1, Relaxed);
            c.info.last_zxid.store(zxid, Relaxed);
            c.info.last_response_ms.store(self.turn_elapsed_ms, Relaxed);
        }
        c.info.queued.store(c.inflight() as u64, Relaxed);
        Ok(())
    }

    /// Sends a request to the writer; the session's later requests wait behind it.
    fn send_to_writer(&mut self, c: &mut Conn, session: SessionId, q: Queued) {
        self.shared.outstanding.fetch_add(1, Relaxed);
        let budget = self.shared.cfg.outbound_bytes_max;
        let reserve = reads::reply_estimate(&self.shared.tree, &q.req, q.body_len, budget);
        c.reserved += reserve;
        c.at_writer.push_back(AtWriter {
            sent: Instant::now(),
            reserved: reserve,
            large: q.large,
        });
        self.outbox.push(ToWriter::Request {
            conn: c.id,
            session,
            xid: q.xid,
            op: q.op,
            req: q.req,
            ids: c.ids.clone(),
            raw: q.raw,
        });
    }

    /// Enforced authentication: may this request run on this connection yet?
    fn may_run(&self, c: &Conn, req: &Request) -> bool {
        let schemes = &self.shared.cfg.enforce_auth;
        schemes.is_empty()
            || matches!(req, Request::Auth { .. } | Request::Sasl { .. })
            || c.ids.iter().any(|id| schemes.contains(&id.scheme))
    }

    /// One SASL packet: `Ok` the reply; `Err` the reply after which the connection closes.
    fn sasl_step(
        &mut self,
        c: &mut Conn,
        session: SessionId,
        xid: i32,
        token: Option<&[u8]>,
    ) -> Result<Vec<u8>, Vec<u8>> {
        // SetSASLResponse follows the header even on an error (ZooKeeper's processSasl
        // sends a null token with AuthFailed), and the zxid is 0.
        let reply = |xid: i32, err: i32, token: Option<&[u8]>| {
            let mut w = crate::proto::Writer::frame();
            w.i32(xid).i64(0).i32(err).opt_buffer(&token);
            w.finish_frame()
        };
        let cfg = &self.shared.cfg;
        let Some(sasl) = &cfg.sasl else {
            // No SASL server: ZooKeeper answers OK with a null token and keeps the
            // connection (the Java client then fails by itself).
            return Ok(reply(xid, 0, None));
        };
        if c.sasl.is_none() {
            let Some(nonce) = crate::sasl::nonce() else {
                log::error!(
                    "SASL: the system's random source failed; refusing {}",
                    c.remote
                );
                let err = ZkError::AuthFailed.code();
                return Err(reply(xid, err, None));
            };
            c.sasl = Some(Box::new(DigestServer::new(nonce)));
        }
        let server = c.sasl.as_mut().expect("just set");
        match server.step(token.unwrap_or(&[]), |u| sasl.password(u)) {
            Ok(Outcome::Continue(t)) => Ok(reply(xid, 0, Some(&t))),
            Ok(Outcome::Complete { token, user }) => {
                let id = sasl.authorized_id(&user);
                // In ZooKeeper's order (whoAmI lists ids in insertion order within a
                // hash bucket): the sasl id, then super.
                let mut ids = c.ids.to_vec();
                let sasl_id = Id::new("sasl", &id);
                if !ids.contains(&sasl_id) {
                    ids.push(sasl_id);
                }
                if sasl.is_super(&id) {
                    ids.push(Id::new("super", ""));
                }
                c.ids = Arc::from(ids);
                log::info!("{}: SASL DIGEST-MD5 authenticated as {id}", c.remote);
                self.outbox.push(ToWriter::Auth {
                    conn: c.id,
                    session,
                    ids: c.ids.clone(),
                });
                Ok(reply(xid, 0, Some(&token)))
            }
            Err(e) => {
                self.shared.stats.auth_failed.fetch_add(1, Relaxed);
                if self.logs.bad_client.admit() {
                    log::warn!("SASL authentication failed for {}: {e}", c.remote);
                }
                let required = cfg.enforce_auth.iter().any(|s| s == "sasl");
                if cfg.allow_sasl_failed_clients && !required {
                    return Ok(reply(xid, 0, None));
                }
                let err = if required {
                    ZkError::SessionClosedRequireSaslAuth
                } else {
                    ZkError::AuthFailed
                };
                Err(reply(xid, err.code(), None))
            }
        }
    }

    fn authenticate(&self, c: &mut Conn, scheme: &str, auth: Option<&[u8]>) -> Result<(), ZkError> {
        let mut ids: Vec<Id> = c.ids.to_vec();
        match scheme {
            "digest" => {
                // A null digest fails, as ZooKeeper's `new String(null)` throws.
                let auth = auth.ok_or(ZkError::AuthFailed)?;
                // As ZooKeeper's `new String(authData)`: bytes that are not UTF-8 become
                // U+FFFD, and the digest is of that text.
                let text = String::from_utf8_lossy(auth);
                let digest = crate::acl::digest(&text);
                if self.shared.cfg.super_digest.as_deref() == Some(digest.as_str()) {
                    ids.push(Id::new("super", ""));
                }
                let id = Id::new("digest", &digest);
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            "ip" => {
                let id = Id::new("ip", &c.remote.ip().to_string());
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            _ => {
                log::warn!(
                    "authentication with unknown scheme {scheme:?} from {} failed",
                    c.remote
                );
                return Err(ZkError::AuthFailed);
            }
        }
        c.ids = Arc::from(ids);
        Ok(())
    }

    /// Why a read failed, logged where it says something about the client.
    fn read_failed(&mut self, c: &Conn, e: io::Error) -> Closed {
        match e.get_ref().and_then(|i| i.downcast_ref::<TlsFailed>()) {
            Some(t) => {
                let why = if c.sock.handshaking() {
                    format!("TLS handshake failed: {}", t.0)
                } else {
                    format!("TLS failed: {}", t.0)
                };
                if self.logs.tls_failed.admit() {
                    log::warn!("closing {}: {why}", c.remote);
                }
                Closed::Tls(why)
            }
            None => Closed::ReadFailed(e),
        }
    }

    /// A TLS handshake is done: a verified client certificate gives the connection the
    /// `x509` id of its subject (and `super` if it is `X509AuthenticationProvider.superUser`),
    /// as ZooKeeper's X509AuthenticationProvider does when the handshake completes.
    fn tls_ready(&mut self, c: &mut Conn) {
        let Some(leaf) = c.sock.peer_certificates().and_then(|chain| chain.first()) else {
            return;
        };
        let Some(dn) = crate::tls::subject_dn(leaf) else {
            log::warn!(
                "{}: client certificate subject unreadable; no x509 id",
                c.remote
            );
            return;
        };
        let mut ids = c.ids.to_vec();
        if self.shared.cfg.x509_super_user.as_deref() == Some(dn.as_str()) {
            ids.push(Id::new("super", &dn));
        }
        log::debug!("{}: TLS client certificate {dn}", c.remote);
        ids.push(Id::new("x509", &dn));
        c.ids = Arc::from(ids);
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for t in dirty {
            let Some(c) = self.conns.get_mut(&t) else {
                continue;
            };
            let mut failed = None;
            while c.out_pos < c.out.len() {
                match c.sock.write(&c.out[c.out_pos..]) {
                    Ok(0) => {
                        failed = Some(Closed::WroteZero);
                        break;
                    }
                    Ok(n) => c.out_pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(Closed::WriteFailed(e));
                        break;
                    }
                }
            }
            if failed.is_none() {
                if let Err(e) = c.sock.flush() {
                    failed = Some(Closed::WriteFailed(e));
                }
            }
            if c.out_pos == c.out.len() {
                c.out.clear();
                c.out_pos = 0;
                if c.out.capacity() > READ_CHUNK {
                    // A burst is over: an idle connection keeps a small buffer.
                    c.out = Vec::new();
                }
            } else if c.out_pos > (1 << 20) {
                c.out.drain(..c.out_pos);
                c.out_pos = 0;
            }
            if failed.is_none() && c.out_len() > 4 * self.shared.cfg.outbound_bytes_max {
                if self.logs.bad_client.admit() {
                    log::warn!(
                        "closing {}: {} bytes queued and not read by the client",
                        c.remote,
                        c.out_len()
                    );
                }
                failed = Some(Closed::SlowReader);
            }
            if failed.is_none() && c.info.overflowed.load(Relaxed) {
                if self.logs.bad_client.admit() {
                    log::warn!(
                        "closing {}: over 4x paddock.outboundBytesMax queued and not read by the client",
                        c.remote
                    );
                }
                failed = Some(Closed::OverHardLimit);
            }
            let done = c.state == State::Closing && c.out_len() == 0 && !c.sock.unsent();
            if let Some(why) = failed {
                self.close(t, why);
            } else if done {
                self.close(t, Closed::Done);
            }
        }
    }
}
