//! ZooKeeper client sessions over non-blocking sockets, all driven by one mio event loop.
//!
//! A `Session` is one TCP connection: connect, ConnectRequest handshake, then pipelined
//! requests whose replies come back in request order (a FIFO of what is in flight). A `Pool`
//! owns the poll and the sessions, turns socket events into `Ev`s for the workload, sends
//! pings on idle sessions, and turns every failure into a clear `SessError`.

use crate::hist::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use paddock::proto::frame::{next_frame, Frame};
use paddock::proto::ops::{op, xid as special_xid, ZkError};
use paddock::proto::{ConnectRequest, DecodeError, Reader, Stat, Writer};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Largest reply frame accepted (jute.maxbuffer plus headroom).
const MAX_FRAME: usize = 4 << 20;
/// How long a TCP connect plus handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The name of a ZooKeeper error code, e.g. "NONODE (-101)".
pub fn err_name(code: i32) -> String {
    match ZkError::from_code(code) {
        Some(e) => format!("{e:?} ({code})"),
        None => format!("error {code}"),
    }
}

/// What a request was, so its reply can be decoded and accounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// create of the key prefix node.
    CreateParent,
    /// create of key i during setup.
    Create(u32),
    /// setData of key i during setup (it already existed).
    Reset(u32),
    Get,
    Set,
    /// create of churn node n; its delete follows the reply.
    ChurnCreate(u64),
    ChurnDelete(u64),
    /// create of an ephemeral sequential node.
    SeqCreate,
    /// getChildren of the wide node.
    Children,
    /// multi of setData ops.
    Multi,
    /// create of a session's ephemeral node (session churn).
    EphCreate,
    /// getData that sets a watch (watch fan-out).
    WatchGet,
    /// setData of the watched node (watch fan-out).
    WatchSet,
    Close,
}

#[derive(Debug)]
pub struct Pending {
    pub xid: i32,
    pub kind: Kind,
    pub sent: Instant,
}

/// What a session hands to the workload.
pub enum Ev {
    /// The handshake finished: the session is ready for requests.
    Connected,
    /// A reply to a request of ours; `size` is a getData value's length or a
    /// getChildren list's length. A multi whose header says OK but whose results hold an
    /// error reports that error in `err`.
    Reply {
        kind: Kind,
        sent: Instant,
        err: i32,
        size: Option<usize>,
    },
    /// A watch notification (WatcherEvent type).
    Notification { etype: i32 },
}

#[derive(Debug)]
pub enum SessError {
    Refused(SocketAddr),
    Connect(SocketAddr, io::Error),
    /// The server closed the connection (orderly EOF).
    Closed {
        session: i64,
        in_flight: usize,
        handshaking: bool,
        /// How long nothing had come from the server, when that exceeds the session
        /// timeout (the server has then most likely expired the session).
        silent: Option<Duration>,
    },
    /// The connection broke (reset, broken pipe, ...).
    Broken {
        session: i64,
        err: io::Error,
    },
    /// The server answered the ConnectRequest with timeout 0: session refused or expired.
    HandshakeRefused,
    /// A reply carried SESSIONEXPIRED.
    Expired(i64),
    Protocol {
        session: i64,
        what: String,
    },
    Timeout {
        session: i64,
        what: String,
    },
}

impl SessError {
    /// A short label to group errors by.
    pub fn label(&self) -> &'static str {
        match self {
            SessError::Refused(_) => "connection refused",
            SessError::Connect(..) => "connect failed",
            SessError::Closed {
                handshaking: true, ..
            } => "server closed the connection during the handshake",
            SessError::Closed {
                silent: Some(_), ..
            } => "session expired (server closed the connection)",
            SessError::Closed { .. } => "server closed the connection",
            SessError::Broken { .. } => "connection broken",
            SessError::HandshakeRefused => "session refused at handshake",
            SessError::Expired(_) => "session expired",
            SessError::Protocol { .. } => "protocol error",
            SessError::Timeout { .. } => "timeout",
        }
    }
}

impl fmt::Display for SessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessError::Refused(a) => write!(
                f,
                "connection refused by {a}: is a ZooKeeper server listening there?"
            ),
            SessError::Connect(a, e) => write!(f, "cannot connect to {a}: {e}"),
            SessError::Closed {
                session,
                in_flight,
                handshaking,
                silent,
            } => {
                if let Some(quiet) = silent {
                    write!(
                        f,
                        "the server closed the connection of session 0x{session:x} after \
                         {:.1} s without traffic, longer than the session timeout: the session \
                         has most likely expired (was this client stalled?)",
                        quiet.as_secs_f64()
                    )
                } else if *handshaking {
                    write!(
                        f,
                        "the server closed the connection before answering the ConnectRequest \
                         (is it still starting up? too many connections from this address, \
                         maxClientCnxns?)"
                    )
                } else {
                    write!(
                        f,
                        "the server closed the connection of session 0x{session:x} \
                         with {in_flight} request(s) unanswered"
                    )
                }
            }
            SessError::Broken { session: 0, err } => write!(
                f,
                "the connection broke before the server answered the ConnectRequest: {err} \
                 (is it still starting up? too many connections from this address, \
                 maxClientCnxns?)"
            ),
            SessError::Broken { session, err } => {
                write!(f, "the connection of session 0x{session:x} broke: {err}")
            }
            SessError::HandshakeRefused => write!(
                f,
                "the server refused the session (ConnectResponse with timeout 0: \
                 session expired or invalid)"
            ),
            SessError::Expired(s) => write!(
                f,
                "session 0x{s:x} expired (the server answered SESSIONEXPIRED, -112)"
            ),
            SessError::Protocol { session, what } => {
                write!(f, "protocol error on session 0x{session:x}: {what}")
            }
            SessError::Timeout { session, what } => {
                write!(f, "session 0x{session:x}: {what}")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Handshaking,
    Ready,
    /// closeSession sent; waiting for its reply or the server's close.
    Closing,
    Closed,
    Dead,
}

pub struct Session {
    /// None once the session is dead or closed (its descriptor is released).
    stream: Option<TcpStream>,
    pub state: State,
    pub id: i64,
    /// Negotiated session timeout.
    pub timeout: Duration,
    /// This session's share of the ping interval, 0.75..1.0 of a third of the timeout, so
    /// that sessions opened together do not all ping in the same instant.
    ping_frac: f64,
    /// When the TCP connect started.
    pub started: Instant,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    pub pending: VecDeque<Pending>,
    next_xid: i32,
    last_send: Instant,
    last_recv: Instant,
    ping_sent: Option<Instant>,
    /// Ping round trips.
    pub pings: u64,
    last_pong_rtt: Option<Duration>,
}

enum ReadStatus {
    Data,
    WouldBlock,
    Eof,
}

impl Session {
    fn new(stream: TcpStream, now: Instant, rbuf: usize) -> Session {
        Session::new_with(Some(stream), now, rbuf)
    }

    fn new_with(stream: Option<TcpStream>, now: Instant, rbuf: usize) -> Session {
        Session {
            stream,
            state: State::Connecting,
            id: 0,
            timeout: Duration::ZERO,
            ping_frac: 1.0,
            started: now,
            rbuf: vec![0; rbuf.max(64)],
            rstart: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            pending: VecDeque::new(),
            next_xid: 1,
            last_send: now,
            last_recv: now,
            ping_sent: None,
            pings: 0,
            last_pong_rtt: None,
        }
    }

    /// A session that never got a socket (the connect call itself failed).
    fn new_dead(now: Instant) -> Session {
        let mut s = Session::new_with(None, now, 64);
        s.state = State::Dead;
        s
    }

    fn sock(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "session is closed"))
    }

    fn xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid = if x == i32::MAX { 1 } else { x + 1 };
        x
    }

    /// Appends one request frame: header (xid, opcode) and a body written by `body`.
    fn request(&mut self, kind: Kind, opcode: i32, now: Instant, body: impl FnOnce(&mut Writer)) {
        let xid = self.xid();
        let mut w = Writer {
            buf: std::mem::take(&mut self.wbuf),
        };
        let start = w.buf.len();
        w.i32(0).i32(xid).i32(opcode);
        body(&mut w);
        let len = (w.buf.len() - start - 4) as i32;
        w.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self.wbuf = w.buf;
        self.pending.push_back(Pending {
            xid,
            kind,
            sent: now,
        });
        self.last_send = now;
    }

    pub fn get_data(&mut self, kind: Kind, path: &str, watch: bool, now: Instant) {
        self.request(kind, op::GET_DATA, now, |w| {
            w.string(path).bool(watch);
        });
    }

    pub fn set_data(&mut self, kind: Kind, path: &str, data: &[u8], now: Instant) {
        self.request(kind, op::SET_DATA, now, |w| {
            w.string(path).buffer(data).i32(-1);
        });
    }

    /// A node open to everyone (world:anyone, all permissions); `flags` is the create
    /// mode (0 persistent, 1 ephemeral, 2 sequential, 3 ephemeral sequential).
    pub fn create(
        &mut self,
        kind: Kind,
        path: &str,
        data: Option<&[u8]>,
        flags: i32,
        now: Instant,
    ) {
        self.request(kind, op::CREATE, now, |w| {
            w.string(path).opt_buffer(&data);
            w.i32(1)
                .i32(paddock::proto::ops::perm::ALL)
                .string("world")
                .string("anyone");
            w.i32(flags);
        });
    }

    /// delete of any version.
    pub fn delete(&mut self, kind: Kind, path: &str, now: Instant) {
        self.request(kind, op::DELETE, now, |w| {
            w.string(path).i32(-1);
        });
    }

    pub fn get_children(&mut self, kind: Kind, path: &str, now: Instant) {
        self.request(kind, op::GET_CHILDREN, now, |w| {
            w.string(path).bool(false);
        });
    }

    /// One multi of a setData (any version) per path.
    pub fn multi_set<'p>(
        &mut self,
        kind: Kind,
        paths: impl Iterator<Item = &'p str>,
        data: &[u8],
        now: Instant,
    ) {
        self.request(kind, op::MULTI, now, |w| {
            for p in paths {
                w.i32(op::SET_DATA).bool(false).i32(-1);
                w.string(p).buffer(data).i32(-1);
            }
            w.i32(-1).bool(true).i32(-1);
        });
    }

    pub fn close_session(&mut self, now: Instant) {
        self.request(Kind::Close, op::CLOSE_SESSION, now, |_| {});
        self.state = State::Closing;
    }

    fn ping(&mut self, now: Instant) {
        let mut w = Writer {
            buf: std::mem::take(&mut self.wbuf),
        };
        w.i32(8).i32(special_xid::PING).i32(op::PING);
        self.wbuf = w.buf;
        self.ping_sent = Some(now);
        self.last_send = now;
    }

    fn broken(&self, err: io::Error) -> SessError {
        SessError::Broken {
            session: self.id,
            err,
        }
    }

    fn protocol(&self, what: String) -> SessError {
        SessError::Protocol {
            session: self.id,
            what,
        }
    }

    /// Writes what is buffered until done or the socket is full.
    pub fn flush(&mut self) -> Result<(), SessError> {
        if matches!(self.state, State::Connecting | State::Dead | State::Closed) {
            return Ok(());
        }
        while self.wpos < self.wbuf.len() {
            let (wpos, buf) = (self.wpos, std::mem::take(&mut self.wbuf));
            let res = self.sock().and_then(|s| s.write(&buf[wpos..]));
            self.wbuf = buf;
            match res {
                Ok(0) => return Err(self.broken(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.broken(e)),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Ok(())
    }

    fn read_some(&mut self) -> io::Result<ReadStatus> {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        } else if self.rend == self.rbuf.len() && self.rstart > 0 {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if self.rend == self.rbuf.len() {
            // One partial frame fills the buffer: make room for more of it.
            let n = self.rbuf.len() * 2;
            self.rbuf.resize(n, 0);
        }
        loop {
            let (rend, mut buf) = (self.rend, std::mem::take(&mut self.rbuf));
            let res = self.sock().and_then(|s| s.read(&mut buf[rend..]));
            self.rbuf = buf;
            return match res {
                Ok(0) => Ok(ReadStatus::Eof),
                Ok(n) => {
                    self.rend += n;
                    Ok(ReadStatus::Data)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadStatus::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Decodes the next whole frame in the read buffer, if any.
    fn next_ev(&mut self) -> Result<Option<Ev>, SessError> {
        loop {
            let (start, end) = match next_frame(&self.rbuf[self.rstart..self.rend], MAX_FRAME) {
                Frame::Partial => return Ok(None),
                Frame::BadLength(n) => {
                    return Err(self.protocol(format!("reply frame with length {n}")))
                }
                Frame::Complete { start, end } => (self.rstart + start, self.rstart + end),
            };
            self.rstart = end;
            // Borrow the frame out of the buffer without holding `self`.
            let body = std::mem::take(&mut self.rbuf);
            let res = self.decode(&body[start..end]);
            self.rbuf = body;
            match res {
                Ok(Some(ev)) => return Ok(Some(ev)),
                Ok(None) => continue, // ping reply or notification
                Err(e) => return Err(e),
            }
        }
    }

    fn decode(&mut self, frame: &[u8]) -> Result<Option<Ev>, SessError> {
        let mut r = Reader::new(frame);
        if self.state == State::Handshaking {
            let parsed = (|| -> Result<(i32, i64), DecodeError> {
                let _proto = r.read_i32()?;
                let timeout = r.read_i32()?;
                let sid = r.read_i64()?;
                let _passwd = r.read_buffer()?;
                Ok((timeout, sid))
            })();
            let (timeout, sid) =
                parsed.map_err(|e| self.protocol(format!("malformed ConnectResponse: {e}")))?;
            if timeout <= 0 || sid == 0 {
                return Err(SessError::HandshakeRefused);
            }
            self.id = sid;
            self.timeout = Duration::from_millis(timeout as u64);
            self.state = State::Ready;
            return Ok(Some(Ev::Connected));
        }
        let (xid, _zxid, err) = (|| -> Result<(i32, i64, i32), DecodeError> {
            Ok((r.read_i32()?, r.read_i64()?, r.read_i32()?))
        })()
        .map_err(|e| self.protocol(format!("malformed reply header: {e}")))?;
        match xid {
            special_xid::PING => {
                if let Some(sent) = self.ping_sent.take() {
                    self.pings += 1;
                    self.last_pong_rtt = Some(Instant::now().duration_since(sent));
                }
                return Ok(None);
            }
            special_xid::NOTIFICATION => {
                let etype = r
                    .read_i32()
                    .map_err(|e| self.protocol(format!("malformed notification: {e}")))?;
                return Ok(Some(Ev::Notification { etype }));
            }
            _ => {}
        }
        let Some(p) = self.pending.pop_front() else {
            return Err(self.protocol(format!("reply with xid {xid} but nothing in flight")));
        };
        if p.xid != xid {
            return Err(self.protocol(format!(
                "reply with xid {xid} where xid {} ({:?}) was expected next (replies out of order)",
                p.xid, p.kind
            )));
        }
        if err == ZkError::SessionExpired.code() {
            return Err(SessError::Expired(self.id));
        }
        let mut size = None;
        let mut err = err;
        if err == 0 {
            let body = (|| -> Result<(Option<usize>, i32), DecodeError> {
                match p.kind {
                    Kind::Get | Kind::WatchGet => {
                        let d = r.read_buffer_opt()?;
                        Stat::read(&mut r)?;
                        Ok((Some(d.map_or(0, <[u8]>::len)), 0))
                    }
                    Kind::Set | Kind::Reset(_) | Kind::WatchSet => {
                        Stat::read(&mut r)?;
                        Ok((None, 0))
                    }
                    Kind::Create(_)
                    | Kind::CreateParent
                    | Kind::ChurnCreate(_)
                    | Kind::SeqCreate
                    | Kind::EphCreate => {
                        r.read_string()?;
                        Ok((None, 0))
                    }
                    Kind::Children => {
                        // Counted, not collected: a wide list would cost the client more
                        // than the server.
                        let n = r.read_count(4)?;
                        for _ in 0..n {
                            r.read_string()?;
                        }
                        Ok((Some(n), 0))
                    }
                    Kind::Multi => {
                        // MultiHeader (type, done, err) and a result per op, until done.
                        let mut first_err = 0;
                        loop {
                            let (t, done, e) = (r.read_i32()?, r.read_bool()?, r.read_i32()?);
                            if done {
                                break;
                            }
                            match t {
                                op::SET_DATA => {
                                    Stat::read(&mut r)?;
                                }
                                op::ERROR => {
                                    let e = r.read_i32()?;
                                    if first_err == 0 {
                                        first_err = e;
                                    }
                                }
                                op::CREATE => {
                                    r.read_string()?;
                                }
                                op::DELETE | op::CHECK => {}
                                _ if e != 0 && first_err == 0 => first_err = e,
                                _ => {
                                    return Err(DecodeError::Invalid(
                                        "a multi result of a type loadgen does not send",
                                    ))
                                }
                            }
                        }
                        Ok((None, first_err))
                    }
                    Kind::ChurnDelete(_) | Kind::Close => Ok((None, 0)),
                }
            })();
            let (n, e) =
                body.map_err(|e| self.protocol(format!("malformed reply to {:?}: {e}", p.kind)))?;
            size = n;
            err = e;
        }
        if p.kind == Kind::Close {
            self.state = State::Closed;
        }
        Ok(Some(Ev::Reply {
            kind: p.kind,
            sent: p.sent,
            err,
            size,
        }))
    }

    /// Handles one readiness event: finishes a connect, reads and decodes replies (handing
    /// each to `h`), and writes what is buffered.
    fn on_ready(
        &mut self,
        readable: bool,
        (idx, addr): (usize, SocketAddr),
        timeout_ms: i32,
        now: Instant,
        h: &mut dyn FnMut(&mut Session, usize, Ev, Instant),
        pongs: &mut Histogram,
    ) -> Result<(), SessError> {
        if self.state == State::Connecting {
            let sock = self.sock().map_err(|e| connect_error(addr, e))?;
            if let Ok(Some(e)) | Err(e) = sock.take_error() {
                return Err(connect_error(addr, e));
            }
            match sock.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(connect_error(addr, e)),
            }
            let _ = sock.set_nodelay(true);
            self.state = State::Handshaking;
            let req = ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout_ms,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: Some(false),
            };
            self.wbuf.extend_from_slice(&req.encode());
            self.last_send = now;
        }
        if readable {
            loop {
                let status = self.read_some().map_err(|e| self.broken(e))?;
                if matches!(status, ReadStatus::Data) {
                    self.last_recv = now;
                }
                while let Some(ev) = self.next_ev()? {
                    h(self, idx, ev, now);
                }
                if let Some(rtt) = self.last_pong_rtt.take() {
                    pongs.record(rtt.as_nanos() as u64);
                }
                match status {
                    ReadStatus::Data => {}
                    ReadStatus::WouldBlock => break,
                    ReadStatus::Eof => {
                        if matches!(self.state, State::Closing | State::Closed) {
                            self.state = State::Closed;
                            return Ok(());
                        }
                        let quiet = now.duration_since(self.last_recv);
                        return Err(SessError::Closed {
                            session: self.id,
                            in_flight: self.pending.len(),
                            handshaking: self.state == State::Handshaking,
                            silent: (self.state == State::Ready && quiet > self.timeout)
                                .then_some(quiet),
                        });
                    }
                }
                if self.state == State::Closed {
                    return Ok(());
                }
            }
        }
        // Whatever woke us (readable or writable), write what is buffered.
        self.flush()
    }
}

fn connect_error(addr: SocketAddr, e: io::Error) -> SessError {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        SessError::Refused(addr)
    } else {
        SessError::Connect(addr, e)
    }
}

/// Errors grouped by label, with the first message of each kind kept in full.
#[derive(Default)]
pub struct ErrorLog {
    pub by_label: BTreeMap<&'static str, (u64, String)>,
}

impl ErrorLog {
    pub fn add(&mut self, e: &SessError) {
        let entry = self
            .by_label
            .entry(e.label())
            .or_insert_with(|| (0, e.to_string()));
        entry.0 += 1;
    }
    pub fn first(&self) -> Option<String> {
        self.by_label.values().next().map(|v| v.1.clone())
    }
    /// Lines like "  3 x server closed the connection: the server closed ...".
    pub fn lines(&self) -> Vec<String> {
        self.by_label
            .iter()
            .map(|(label, (n, msg))| format!("{n} x {label}, e.g.: {msg}"))
            .collect()
    }
}

/// All sessions and the event loop that drives them.
pub struct Pool {
    poll: Poll,
    events: Events,
    ready: Vec<(usize, bool)>,
    /// Session i connects to addrs[(first + stride * i) % len] (threads share a list).
    pub addrs: Vec<SocketAddr>,
    first: usize,
    stride: usize,
    timeout_ms: i32,
    rbuf: usize,
    pub sessions: Vec<Session>,
    /// Handshakes completed.
    pub opened: usize,
    /// Sessions that never got ready.
    pub failed: usize,
    /// Ready sessions that died.
    pub lost: usize,
    /// Requests in flight on sessions that died.
    pub lost_requests: u64,
    pub errors: ErrorLog,
    /// Ping round trips (send to reply), for `sessions`.
    pub ping_rtt: Histogram,
    last_tick: Instant,
    timer: Option<Timer>,
}

/// The timer's token: no session has it.
const TIMER: Token = Token(usize::MAX);

/// A one-shot monotonic timerfd in the poll, for waits shorter than epoll's millisecond.
struct Timer(std::os::fd::OwnedFd);

impl Timer {
    fn new(poll: &Poll) -> io::Result<Timer> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: timerfd_create returns a new descriptor or -1.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is ours and open.
        let t = Timer(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        poll.registry().register(
            &mut mio::unix::SourceFd(&t.0.as_raw_fd()),
            TIMER,
            Interest::READABLE,
        )?;
        Ok(t)
    }

    fn arm(&self, after: Duration) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos().max(1) as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd and itimerspec.
        if unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads the expirations, so that the next arming makes a new edge.
    fn clear(&self) {
        use std::os::fd::AsRawFd;
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into n; EAGAIN when it has not expired is fine.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
    }
}

/// The servers sessions go to: session i to server i mod n (an ensemble's members).
#[derive(Debug, Clone)]
pub struct Servers(pub Vec<SocketAddr>);

impl std::fmt::Display for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<String> = self.0.iter().map(|a| a.to_string()).collect();
        f.write_str(&all.join(","))
    }
}

impl Servers {
    /// For a CSV cell: the addresses joined by ';'.
    pub fn csv(&self) -> String {
        self.to_string().replace(',', ";")
    }
}

impl Pool {
    pub fn new(servers: &Servers, timeout_ms: i32, rbuf: usize) -> io::Result<Pool> {
        assert!(!servers.0.is_empty(), "at least one server");
        Ok(Pool {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            ready: Vec::new(),
            addrs: servers.0.clone(),
            first: 0,
            stride: 1,
            timeout_ms,
            rbuf,
            sessions: Vec::new(),
            opened: 0,
            failed: 0,
            lost: 0,
            lost_requests: 0,
            errors: ErrorLog::default(),
            ping_rtt: Histogram::new(),
            last_tick: Instant::now(),
            timer: None,
        })
    }

    /// This pool's session i is session `first + stride * i` of a run split over
    /// `stride` pools: it goes to that session's server.
    pub fn spread(mut self, first: usize, stride: usize) -> Pool {
        self.first = first;
        self.stride = stride.max(1);
        self
    }

    fn addr(&self, idx: usize) -> SocketAddr {
        self.addrs[(self.first + self.stride * idx) % self.addrs.len()]
    }

    /// Sessions connecting or handshaking.
    pub fn connecting(&self) -> usize {
        self.sessions
            .iter()
            .filter(|s| matches!(s.state, State::Connecting | State::Handshaking))
            .count()
    }

    pub fn ready_count(&self) -> usize {
        self.sessions
            .iter()
            .filter(|s| s.state == State::Ready)
            .count()
    }

    /// Starts one more session's TCP connect.
    pub fn connect_one(&mut self, now: Instant) {
        let idx = self.sessions.len();
        let s = self.open(idx, now, Vec::new());
        self.sessions.push(s);
    }

    /// Replaces session `idx` (closed or dead) by a new connection to the same server:
    /// session churn reuses its slot, token and read buffer.
    pub fn reopen(&mut self, idx: usize, now: Instant) {
        self.release(idx);
        let rbuf = std::mem::take(&mut self.sessions[idx].rbuf);
        self.sessions[idx] = self.open(idx, now, rbuf);
    }

    fn open(&mut self, idx: usize, now: Instant, mut rbuf: Vec<u8>) -> Session {
        let addr = self.addr(idx);
        let res = TcpStream::connect(addr).and_then(|mut stream| {
            self.poll.registry().register(
                &mut stream,
                Token(idx),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        match res {
            Ok(stream) => {
                let mut s = if rbuf.len() >= self.rbuf.max(64) {
                    let mut s = Session::new_with(Some(stream), now, 0);
                    s.rbuf = std::mem::take(&mut rbuf);
                    s
                } else {
                    Session::new(stream, now, self.rbuf)
                };
                let h = (idx as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                s.ping_frac = 0.75 + 0.25 * (h as f64 / (1u64 << 24) as f64);
                s
            }
            Err(e) => {
                self.failed += 1;
                self.errors.add(&connect_error(addr, e));
                Session::new_dead(now)
            }
        }
    }

    fn kill(&mut self, idx: usize, e: SessError) {
        let s = &mut self.sessions[idx];
        match s.state {
            State::Connecting | State::Handshaking => self.failed += 1,
            State::Ready => {
                self.lost += 1;
                self.lost_requests += s.pending.len() as u64;
            }
            State::Closing => {
                // The session ended one way or another.
                s.state = State::Closed;
                self.release(idx);
                return;
            }
            State::Closed | State::Dead => return,
        }
        s.state = State::Dead;
        s.pending.clear();
        self.release(idx);
        self.errors.add(&e);
    }

    /// Drops the socket of session `idx`.
    fn release(&mut self, idx: usize) {
        if let Some(mut sock) = self.sessions[idx].stream.take() {
            let _ = self.poll.registry().deregister(&mut sock);
        }
    }

    fn timer(&mut self) -> io::Result<&Timer> {
        if self.timer.is_none() {
            self.timer = Some(Timer::new(&self.poll)?);
        }
        Ok(self.timer.as_ref().unwrap())
    }

    /// Flushes session `idx` after the workload queued requests on it outside an event.
    pub fn flush(&mut self, idx: usize) {
        if let Err(e) = self.sessions[idx].flush() {
            self.kill(idx, e);
        }
    }

    /// Waits up to `timeout` for socket events and handles them, then does the periodic
    /// work (pings, stall detection) if it is due.
    pub fn poll_once(
        &mut self,
        timeout: Duration,
        h: &mut dyn FnMut(&mut Session, usize, Ev, Instant),
    ) -> io::Result<()> {
        // epoll waits in whole milliseconds: a shorter wait (an open loop's next request)
        // is a timerfd's, which wakes the same poll.
        if !timeout.is_zero() && timeout < Duration::from_millis(1) {
            self.timer()?.arm(timeout)?;
        }
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| {
            (
                e.token().0,
                e.is_readable() || e.is_read_closed() || e.is_error(),
            )
        }));
        let now = Instant::now();
        for &(idx, readable) in &ready {
            if idx == TIMER.0 {
                if let Some(t) = &self.timer {
                    t.clear();
                }
                continue;
            }
            let Some(s) = self.sessions.get_mut(idx) else {
                continue;
            };
            if matches!(s.state, State::Dead | State::Closed) {
                continue;
            }
            let was = s.state;
            let addr = self.addrs[(self.first + self.stride * idx) % self.addrs.len()];
            let res = s.on_ready(
                readable,
                (idx, addr),
                self.timeout_ms,
                now,
                h,
                &mut self.ping_rtt,
            );
            if was == State::Handshaking && s.state != State::Handshaking {
                self.opened += 1;
            }
            match res {
                Err(e) => self.kill(idx, e),
                Ok(()) if s.state == State::Closed => self.release(idx),
                Ok(()) => {}
            }
        }
        self.ready = ready;
        if now.duration_since(self.last_tick) >= Duration::from_millis(100) {
            self.last_tick = now;
            self.tick(now);
        }
        Ok(())
    }

    /// Pings sessions idle for a third of their timeout; gives up on connects, pings and
    /// requests that went unanswered too long.
    fn tick(&mut self, now: Instant) {
        for idx in 0..self.sessions.len() {
            let s = &mut self.sessions[idx];
            let err = match s.state {
                State::Connecting | State::Handshaking
                    if now.duration_since(s.started) > CONNECT_TIMEOUT =>
                {
                    Some(SessError::Timeout {
                        session: 0,
                        what: format!(
                            "no {} within {CONNECT_TIMEOUT:?}",
                            if s.state == State::Connecting {
                                "TCP connection"
                            } else {
                                "ConnectResponse"
                            }
                        ),
                    })
                }
                State::Ready => {
                    let rtt_limit = s.timeout * 2 / 3;
                    if let Some(sent) = s.ping_sent {
                        if now.duration_since(sent) > rtt_limit {
                            Some(SessError::Timeout {
                                session: s.id,
                                what: format!("no answer to a ping within {rtt_limit:?}"),
                            })
                        } else {
                            None
                        }
                    } else if let Some(p) = s.pending.front() {
                        let waited = now.duration_since(p.sent);
                        if waited > s.timeout {
                            Some(SessError::Timeout {
                                session: s.id,
                                what: format!(
                                    "no reply to {:?} (xid {}) for {waited:?}: the server stopped answering",
                                    p.kind, p.xid
                                ),
                            })
                        } else {
                            None
                        }
                    } else if now.duration_since(s.last_send)
                        >= (s.timeout / 3).mul_f64(s.ping_frac)
                    {
                        s.ping(Instant::now());
                        s.flush().err()
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some(e) = err {
                self.kill(idx, e);
            }
        }
    }

    /// Sends closeSession on every ready session and waits (at most `limit`) for the
    /// replies or closes. Returns how many did not end cleanly in time.
    pub fn close_all(&mut self, limit: Duration) -> io::Result<usize> {
        let now = Instant::now();
        for idx in 0..self.sessions.len() {
            if self.sessions[idx].state == State::Ready {
                self.sessions[idx].close_session(now);
                self.flush(idx);
            }
        }
        let deadline = now + limit;
        loop {
            let closing = self
                .sessions
                .iter()
                .filter(|s| s.state == State::Closing)
                .count();
            let now = Instant::now();
            if closing == 0 || now >= deadline {
                return Ok(closing);
            }
            self.poll_once(
                (deadline - now).min(Duration::from_millis(50)),
                &mut |_, _, _, _| {},
            )?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions go to the servers in turn: 4 sessions over 2 listeners, 2 each.
    #[test]
    fn sessions_are_spread_over_the_servers_in_turn() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let servers = Servers(vec![a.local_addr().unwrap(), b.local_addr().unwrap()]);
        assert_eq!(
            servers.to_string(),
            format!("{},{}", servers.0[0], servers.0[1])
        );
        assert!(!servers.csv().contains(','));
        let mut pool = Pool::new(&servers, 10_000, 4096).unwrap();
        let now = Instant::now();
        for _ in 0..4 {
            pool.connect_one(now);
        }
        let count = |l: &std::net::TcpListener| {
            l.set_nonblocking(true).unwrap();
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            let mut n = 0;
            while n < 2 && Instant::now() < deadline {
                match l.accept() {
                    Ok(_) => n += 1,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
            n
        };
        assert_eq!((count(&a), count(&b)), (2, 2));
        assert_eq!(pool.failed, 0);
    }
}
