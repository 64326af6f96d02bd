//! What the quorum thread does with an election's decision: a leader listens on its
//! quorum port and accepts learners; a follower or observer connects to its leader.
//! Either way the writer, which runs the ZAB core, hears of it as `QuorumEvent`s.
//!
//! Holds: only a leader listens on the quorum port; the listener closes when the leader
//! looks again. A learner that cannot reach its leader within the init limit reports
//! `Unreachable`, and the writer starts the next election.

use super::links::{self, Link, LinkEvent};
use crate::zab::election::{PeerState, Vote};
use crate::zab::packet::LearnerInfo;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the quorum side tells the writer.
pub enum QuorumEvent {
    /// This server leads; learners connect on its quorum port.
    Lead {
        vote: Vote,
    },
    /// This server follows (or observes) `leader`; `Learn` or `Unreachable` comes next.
    Follow {
        leader: i64,
    },
    /// This server follows (or observes) `leader`, connected on `link`.
    Learn {
        leader: i64,
        link: Link,
    },
    /// The leader of the last decision could not be reached within the init limit.
    Unreachable {
        leader: i64,
    },
    /// Leader side: learner `sid` connected on `link`; its packets follow.
    Learner {
        sid: i64,
        link: Link,
    },
    Link(LinkEvent),
}

pub type Events = Arc<dyn Fn(QuorumEvent) -> bool + Send + Sync>;

/// The quorum thread's state around decisions.
pub struct Roles {
    pub my_id: i64,
    /// Each server's quorum port address.
    pub quorum_addrs: HashMap<i64, SocketAddr>,
    /// Where this server listens when it leads.
    pub bind: SocketAddr,
    pub init_limit: Duration,
    /// Largest packet data a learner accepts (a SNAP carries the whole snapshot).
    pub snap_bytes_max: usize,
    pub packet_bytes_max: usize,
    pub events: Events,
    /// `sslQuorum`: learner connections over TLS.
    pub tls: Option<Arc<super::tls::QuorumTls>>,
    acceptor: Option<Arc<AtomicBool>>,
}

impl Roles {
    pub fn new(
        my_id: i64,
        quorum_addrs: HashMap<i64, SocketAddr>,
        bind: SocketAddr,
        init_limit: Duration,
        packet_bytes_max: usize,
        events: Events,
    ) -> Roles {
        Roles {
            my_id,
            quorum_addrs,
            bind,
            init_limit,
            snap_bytes_max: usize::MAX >> 1,
            packet_bytes_max,
            events,
            tls: None,
            acceptor: None,
        }
    }

    /// The election decided.
    pub fn decided(&mut self, state: PeerState, vote: Vote) {
        self.relook();
        match state {
            PeerState::Leading => self.lead(vote),
            PeerState::Following | PeerState::Observing => self.learn(vote.leader),
            PeerState::Looking => {}
        }
    }

    /// A new election starts: a leader's listener closes.
    pub fn relook(&mut self) {
        if let Some(stop) = self.acceptor.take() {
            stop.store(true, Ordering::Relaxed);
        }
    }

    fn lead(&mut self, vote: Vote) {
        // The previous term's listener may still be closing: try for a moment.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.bind) {
                Ok(l) => break l,
                Err(e) if tries < 20 => {
                    tries += 1;
                    log::debug!("quorum port {}: {e}; trying again", self.bind);
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    log::error!("cannot listen on the quorum port {}: {e}", self.bind);
                    (self.events)(QuorumEvent::Unreachable { leader: self.my_id });
                    return;
                }
            }
        };
        if listener.set_nonblocking(true).is_err() {
            return;
        }
        log::info!("leading: listening for learners on {}", self.bind);
        (self.events)(QuorumEvent::Lead { vote });
        let stop = Arc::new(AtomicBool::new(false));
        self.acceptor = Some(stop.clone());
        let events = self.events.clone();
        let (timeout, max) = (self.init_limit, self.packet_bytes_max);
        let my_id = self.my_id;
        let tls = self.tls.clone();
        let _ = std::thread::Builder::new()
            .name(format!("quorum-accept-{my_id}"))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, from)) => {
                            let events = events.clone();
                            let tls = tls.clone();
                            let _ = std::thread::Builder::new()
                                .name("quorum-handshake".into())
                                .spawn(move || {
                                    let _ = s.set_nonblocking(false);
                                    let s = match &tls {
                                        Some(t) => match t.accept(s, from.ip(), timeout) {
                                            Ok(s) => s,
                                            Err(e) => {
                                                log::warn!(
                                                    "quorum port: refused a learner connection from {from}: {e}"
                                                );
                                                return;
                                            }
                                        },
                                        None => s,
                                    };
                                    accept_learner(s, from, timeout, max, events)
                                });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => {
                            log::warn!("quorum port: accept failed: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
                log::info!("quorum port closed");
            });
    }

    fn learn(&mut self, leader: i64) {
        let Some(&addr) = self.quorum_addrs.get(&leader) else {
            (self.events)(QuorumEvent::Unreachable { leader });
            return;
        };
        let events = self.events.clone();
        let deadline = Instant::now() + self.init_limit;
        let max = self.snap_bytes_max;
        let tls = self.tls.clone();
        let _ =
            std::thread::Builder::new()
                .name(format!("quorum-connect-{leader}"))
                .spawn(move || loop {
                    let connected = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                        .and_then(|s| match &tls {
                            Some(t) => t.connect(s, addr.ip(), Duration::from_secs(5)),
                            None => Ok(s),
                        });
                    match connected {
                        Ok(s) => {
                            let ev = events.clone();
                            let announce = |link: &Link| {
                                events(QuorumEvent::Learn {
                                    leader,
                                    link: link.clone(),
                                });
                            };
                            let opened = links::open(
                                s,
                                &format!("leader-{leader}"),
                                Vec::new(),
                                max,
                                announce,
                                move |e| ev(QuorumEvent::Link(e)),
                            );
                            if opened.is_ok() {
                                return;
                            }
                        }
                        Err(e) => log::debug!("connecting to leader {leader} at {addr}: {e}"),
                    }
                    if Instant::now() >= deadline {
                        log::warn!("leader {leader} at {addr} unreachable within the init limit");
                        events(QuorumEvent::Unreachable { leader });
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                });
    }
}

/// A learner connected: its first packet names it; then its link runs.
fn accept_learner(
    mut s: TcpStream,
    from: SocketAddr,
    timeout: Duration,
    max: usize,
    events: Events,
) {
    let _ = s.set_nonblocking(false);
    let (first, rest) = match links::read_first(&mut s, timeout) {
        Ok(x) => x,
        Err(e) => {
            log::warn!("learner connection from {from}: {e}");
            return;
        }
    };
    let sid = match first.data.as_deref().map(LearnerInfo::decode) {
        Some(Ok(info)) => info.server_id,
        _ => {
            log::warn!("learner connection from {from}: unreadable learner info");
            return;
        }
    };
    let ev = events.clone();
    let announce = |link: &Link| {
        events(QuorumEvent::Learner {
            sid,
            link: link.clone(),
        });
        events(QuorumEvent::Link(LinkEvent::Packets {
            link: link.id,
            pkts: vec![first.clone()],
        }));
    };
    if let Err(e) = links::open(
        s,
        &format!("learner-{sid}"),
        rest,
        max,
        announce,
        move |e| ev(QuorumEvent::Link(e)),
    ) {
        log::warn!("learner {sid}: {e}");
    }
}
