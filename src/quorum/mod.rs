//! The election port's connections (the shell around `zab::election`).
//!
//! Main type: `ElectionNet`, one server's listener and connections on its election port.
//!
//! Holds, as ZooKeeper's QuorumCnxManager:
//! - One connection per pair of servers, kept by the higher id: a server dials every
//!   server with a lower id; a connection from a lower id is closed and the higher side
//!   dials it back at once. A server also dials the higher ids it has no connection with,
//!   only to be dialled back: so a server that starts is heard by the higher ones within a
//!   round trip, not at their next dial round. Both sides send on the one connection.
//! - A connection starts with the connection start of `zab::wire`; then frames of
//!   notifications. A malformed byte closes that connection, never the server.
//! - The latest message to a server with no connection waits for one (one per server).
//!
//! Threads: an acceptor (it lives as long as the process: the election port stays open,
//! as ZooKeeper's does), one reader per connection; `run_election` drives the election on
//! the caller's thread and is the only writer of the connections it holds.
//! `run_forever` is the quorum thread's loop; `links` holds the learner connections on
//! the quorum port, `role` what the quorum thread does with a decision.

pub mod links;
pub mod role;
pub mod tls;

use crate::zab::election::{Election, Notification, Output, PeerState, Timing, Vote};
use crate::zab::wire;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Conns = Arc<Mutex<HashMap<i64, TcpStream>>>;

/// One server's election port: who it is, where the others are.
pub struct ElectionNet {
    my_id: i64,
    dialer: Arc<Dialer>,
    inbox: Receiver<Notification>,
    /// The server list in ZooKeeper's text form, sent with every notification.
    config: Vec<u8>,
}

/// What dials need, shared by the election's thread and the acceptor (which dials back a
/// lower id that dialled in).
struct Dialer {
    my_id: i64,
    /// This server's connection start (its id and election address).
    hello: Vec<u8>,
    peers: HashMap<i64, SocketAddr>,
    conns: Conns,
    to_inbox: Sender<Notification>,
    /// Connect timeout of a dial (zoo.cfg's cnxTimeout, 5 s by default as ZooKeeper's).
    cnx_timeout: Duration,
    /// Peers being dialled now: one dial each at a time, off the election's thread.
    dialing: Mutex<std::collections::HashSet<i64>>,
    /// `sslQuorum`: every connection is TLS (accepted ones may be plain too with
    /// portUnification).
    tls: Option<Arc<tls::QuorumTls>>,
}

fn reader(sid: i64, mut s: TcpStream, conns: Conns, inbox: Sender<Notification>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        loop {
            match wire::decode_frame(&buf) {
                Ok(Some((payload, used))) => {
                    match wire::decode_notification(sid, payload) {
                        Ok((n, _config)) => {
                            if inbox.send(n).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            log::warn!("election: bad notification from server {sid}: {e}");
                            conns.lock().unwrap().remove(&sid);
                            return;
                        }
                    }
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!("election: bad frame from server {sid}: {e}");
                    conns.lock().unwrap().remove(&sid);
                    return;
                }
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let mut c = conns.lock().unwrap();
                // Forget it only if it is still this connection's entry.
                if c.get(&sid)
                    .is_some_and(|t| t.peer_addr().ok() == s.peer_addr().ok())
                {
                    c.remove(&sid);
                }
                return;
            }
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

impl Dialer {
    /// Keeps `s` as the connection with `sid` and starts its reader.
    fn keep(&self, sid: i64, s: TcpStream) {
        let Ok(w) = s.try_clone() else { return };
        self.conns.lock().unwrap().insert(sid, w);
        let (conns, tx) = (self.conns.clone(), self.to_inbox.clone());
        let _ = std::thread::Builder::new()
            .name(format!("election-read-{}-{sid}", self.my_id))
            .spawn(move || reader(sid, s, conns, tx));
    }

    /// Dials `sid` if there is no connection with it, on a thread of its own so that a
    /// peer that does not answer (up to cnxTimeout) never stalls the election; a failed
    /// dial is tried again later. A lower id's connection is kept; a higher id closes
    /// ours and dials back, so to a higher id the dial only says "dial me".
    fn dial_one(self: &Arc<Self>, sid: i64) {
        let Some(&addr) = self.peers.get(&sid) else {
            return;
        };
        if self.conns.lock().unwrap().contains_key(&sid) {
            return;
        }
        if !self.dialing.lock().unwrap().insert(sid) {
            return; // one dial at a time per peer
        }
        let d = self.clone();
        let timeout = self.cnx_timeout;
        let spawned = std::thread::Builder::new()
            .name(format!("election-dial-{}-{sid}", self.my_id))
            .spawn(move || {
                let connected = TcpStream::connect_timeout(&addr, timeout)
                    .and_then(|s| match &d.tls {
                        Some(t) => t.connect(s, addr.ip(), timeout),
                        None => Ok(s),
                    })
                    .map_err(|e| log::debug!("election: dialling server {sid} at {addr}: {e}"))
                    .ok()
                    .and_then(|mut s| {
                        let _ = s.set_nodelay(true);
                        s.write_all(&d.hello).ok()?;
                        Some(s)
                    });
                // A higher id closes this one once it has read who we are.
                if let Some(s) = connected.filter(|_| sid < d.my_id) {
                    d.keep(sid, s);
                }
                d.dialing.lock().unwrap().remove(&sid);
            });
        if spawned.is_err() {
            self.dialing.lock().unwrap().remove(&sid);
        }
    }
}

impl Dialer {
    /// An accepted election connection: TLS if configured, then the connection start;
    /// kept if the peer's id is higher, else closed (and a lower id dialled back).
    fn incoming(self: &Arc<Self>, s: TcpStream) {
        let my_id = self.my_id;
        let mut s = s;
        if let Some(t) = &self.tls {
            let peer = s.peer_addr().map(|a| a.ip());
            let peer = peer.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
            s = match t.accept(s, peer, Duration::from_secs(5)) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("election: refused a connection from {peer}: {e}");
                    return;
                }
            };
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        let initial = loop {
            match wire::decode_initial(&buf) {
                Ok(Some((i, used))) => break Some((i, used)),
                Ok(None) => {}
                Err(e) => {
                    log::warn!("election: bad connection start: {e}");
                    break None;
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break None,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        let Some((initial, _)) = initial else {
            return;
        };
        if initial.sid <= my_id {
            // The higher id keeps the connection: we dial that one back now.
            drop(s);
            if initial.sid < my_id {
                self.dial_one(initial.sid);
            }
            return;
        }
        let _ = s.set_read_timeout(None);
        self.keep(initial.sid, s);
    }
}

impl ElectionNet {
    /// Listens on `listener` (already bound: the election port) as server `my_id`;
    /// dials give up after `cnx_timeout` (zoo.cfg's cnxTimeout).
    pub fn start(
        my_id: i64,
        listener: TcpListener,
        peers: HashMap<i64, SocketAddr>,
        config: Vec<u8>,
        cnx_timeout: Duration,
    ) -> std::io::Result<ElectionNet> {
        ElectionNet::start_with_tls(my_id, listener, peers, config, cnx_timeout, None)
    }

    /// As `start`, with every connection over TLS when `tls` is given (`sslQuorum`).
    pub fn start_with_tls(
        my_id: i64,
        listener: TcpListener,
        peers: HashMap<i64, SocketAddr>,
        config: Vec<u8>,
        cnx_timeout: Duration,
        tls: Option<Arc<tls::QuorumTls>>,
    ) -> std::io::Result<ElectionNet> {
        let my_addr = listener.local_addr()?;
        let (to_inbox, inbox) = channel();
        let dialer = Arc::new(Dialer {
            my_id,
            hello: wire::encode_initial(my_id, &my_addr.to_string()),
            peers,
            conns: Conns::default(),
            to_inbox,
            cnx_timeout,
            dialing: Mutex::default(),
            tls,
        });
        let d2 = dialer.clone();
        std::thread::Builder::new()
            .name(format!("election-accept-{my_id}"))
            .spawn(move || {
                for s in listener.incoming() {
                    let Ok(s) = s else { continue };
                    // Each on a thread of its own: a peer slow to finish its TLS
                    // handshake or its connection start holds up nobody else.
                    let d = d2.clone();
                    let _ = std::thread::Builder::new()
                        .name(format!("election-incoming-{my_id}"))
                        .spawn(move || d.incoming(s));
                }
            })?;
        Ok(ElectionNet {
            my_id,
            dialer,
            inbox,
            config,
        })
    }

    /// Dials every peer with no connection (see `Dialer::dial_one`).
    fn dial(&self) {
        let d = &self.dialer;
        for &sid in d.peers.keys() {
            if sid != self.my_id {
                d.dial_one(sid);
            }
        }
    }

    /// Sends on the connection to `to`; false when there is none (yet).
    fn send(&self, to: i64, n: &Notification) -> bool {
        let frame = wire::frame(&wire::encode_notification(n, &self.config));
        let mut conns = self.dialer.conns.lock().unwrap();
        let Some(s) = conns.get_mut(&to) else {
            return false;
        };
        if s.write_all(&frame).is_ok() {
            return true;
        }
        conns.remove(&to);
        false
    }

    /// Runs one election to its decision (or `None` at `deadline`), with this server's
    /// last logged zxid and current epoch. After deciding it goes on answering for
    /// `linger`, as a decided server answers LOOKING ones, so late servers find the leader.
    pub fn run_election(
        &self,
        voters: Vec<i64>,
        observers: Vec<i64>,
        last_zxid: i64,
        current_epoch: i64,
        deadline: Instant,
        linger: Duration,
    ) -> Option<(PeerState, Vote)> {
        let mut d = Driver::new(self);
        let mut election = Election::new(self.my_id, voters, observers, Timing::default());
        let mut outs = election.start(d.ms(), last_zxid, current_epoch);
        let mut decided: Option<((PeerState, Vote), Instant)> = None;
        loop {
            if let Some(v) = d.perform(std::mem::take(&mut outs)) {
                decided = Some((v, Instant::now() + linger));
            }
            if let Some((v, until)) = decided {
                if Instant::now() >= until {
                    return Some(v);
                }
            } else if Instant::now() >= deadline {
                return None;
            }
            outs = d.step(&mut election)?;
        }
    }

    /// Runs elections for the life of the server (the quorum thread). Each decision goes
    /// to `decided`; a decided server goes on answering LOOKING ones; a message on
    /// `relook` (last logged zxid, current epoch) starts the next election.
    pub fn run_forever(
        &self,
        voters: Vec<i64>,
        observers: Vec<i64>,
        first: (i64, i64),
        relook: &crossbeam_channel::Receiver<(i64, i64)>,
        mut decided: impl FnMut(PeerState, Vote),
    ) {
        let mut d = Driver::new(self);
        let mut election = Election::new(self.my_id, voters, observers, Timing::default());
        let mut outs = election.start(d.ms(), first.0, first.1);
        loop {
            if let Some((state, vote)) = d.perform(std::mem::take(&mut outs)) {
                log::info!(
                    "election: {state:?}, leader {} (zxid 0x{:x}, epoch {})",
                    vote.leader,
                    vote.zxid,
                    vote.peer_epoch
                );
                decided(state, vote);
            }
            if let Ok((zxid, epoch)) = relook.try_recv() {
                log::info!("election: looking again (last zxid 0x{zxid:x}, epoch {epoch})");
                outs = election.start(d.ms(), zxid, epoch);
                continue;
            }
            match d.step(&mut election) {
                Some(o) => outs = o,
                None => return,
            }
        }
    }
}

/// The loop around one `Election`: sends what it asks (queueing for servers with no
/// connection yet), dials lower ids every 100 ms, feeds it notifications and ticks.
struct Driver<'a> {
    net: &'a ElectionNet,
    started: Instant,
    last_dial: Instant,
    /// The latest notification for a server with no connection yet: sent when one is
    /// up, as ZooKeeper queues them (one per server).
    waiting: HashMap<i64, Notification>,
}

impl<'a> Driver<'a> {
    fn new(net: &'a ElectionNet) -> Driver<'a> {
        net.dial();
        Driver {
            net,
            started: Instant::now(),
            last_dial: Instant::now(),
            waiting: HashMap::new(),
        }
    }

    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Sends what the election asked for; the decision, if it made one.
    fn perform(&mut self, outs: Vec<Output>) -> Option<(PeerState, Vote)> {
        let net = self.net;
        self.waiting.retain(|&to, msg| !net.send(to, msg));
        let mut decided = None;
        for o in outs {
            match o {
                Output::Send { to, msg } => {
                    if !net.send(to, &msg) {
                        self.waiting.insert(to, msg);
                    }
                }
                Output::Decided { state, vote, .. } => decided = Some((state, vote)),
            }
        }
        decided
    }

    /// Waits up to 10 ms for a notification and hands it (or a tick) to the election;
    /// `None` once the inbox is gone.
    fn step(&mut self, election: &mut Election) -> Option<Vec<Output>> {
        if self.last_dial.elapsed() >= Duration::from_millis(100) {
            self.net.dial();
            self.last_dial = Instant::now();
        }
        let outs = match self.net.inbox.recv_timeout(Duration::from_millis(10)) {
            Ok(n) => election.on_notification(self.ms(), n),
            Err(RecvTimeoutError::Timeout) => election.on_tick(self.ms()),
            Err(RecvTimeoutError::Disconnected) => return None,
        };
        Some(if outs.is_empty() {
            election.on_tick(self.ms())
        } else {
            outs
        })
    }
}
