//! The writer's side of an ensemble: it runs the ZAB core (`zab::broadcast`) for the
//! role the election gave this server and carries out the core's effects against the
//! real log, tree and links.
//!
//! - Leader: every txn the writer appends is proposed to the followers; after the
//!   writer's own sync the core hears `persisted`; `Apply` applies the pending txns up to
//!   a zxid and answers their clients. Requests learners forward (REQUEST packets) are
//!   staged like local ones; a forwarded `sync` is answered (SYNC packet) once every
//!   proposal before it is committed.
//! - Follower / observer: client writes, connects, closes and syncs go to the leader as
//!   REQUEST packets and are answered when their txn commits here; proposals are logged
//!   and acked after the writer's sync; committed txns are applied in order.
//! - Between terms (LOOKING, connecting) no client is served: connections close, as
//!   ZooKeeper closes them when its server shuts down for an election.
//!
//! Files: `acceptedEpoch` and `currentEpoch` in dataDir/version-2, one decimal number
//! each, written to a temporary name, fsynced and renamed, as ZooKeeper writes them.

use super::*;
use crate::quorum::links::{Link, LinkEvent};
use crate::quorum::role::QuorumEvent;
use crate::server::recovery::Epochs;
use crate::zab::broadcast::{
    epoch_of, make_zxid, Effect, Leader, LeaderPhase, Learner, Limits, Msg,
};
use crate::zab::packet::{kind, LearnerInfo, QuorumPacket, PROTOCOL_VERSION};
use std::collections::VecDeque;
use std::path::PathBuf;

/// Why a learner could not take its leader's TRUNC or SNAP (the data directory may be
/// half changed: the caller stops, and recovery starts from disk).
#[derive(Debug, thiserror::Error)]
pub enum SyncFailed {
    #[error("txn log: {0}")]
    Log(#[from] crate::log::LogError),
    #[error("{}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("recovery: {0}")]
    Recover(#[from] Box<crate::server::recovery::StartError>),
}

/// What the writer needs to take part in an ensemble.
pub struct Ensemble {
    pub my_id: i64,
    pub voters: Vec<i64>,
    pub observer: bool,
    pub limits: Limits,
    /// Starts the next election: (last logged zxid, current epoch).
    pub relook: crossbeam_channel::Sender<(i64, i64)>,
    pub epochs: Epochs,
    /// The zero of the core's clock.
    pub started: Instant,
}

/// What this server is in its ensemble now.
pub enum Role {
    Standalone,
    Looking,
    Connecting { leader: i64 },
    Leading(Box<LeaderTerm>),
    Learning(Box<LearnerTerm>),
}

pub struct LeaderTerm {
    core: Leader<Arc<[u8]>>,
    links: HashMap<i64, Link>,
    link_of: HashMap<u64, i64>,
    /// Forwarded syncs: (learner, answer once this zxid is committed, the data to echo).
    syncs: Vec<(i64, Zxid, Vec<u8>)>,
    /// The server each session is attached to (a learner's id, or this server's), as
    /// ZooKeeper's session owner: a write from anywhere else gets SessionMoved. Set by
    /// the session's creation, a revalidation, or (unknown since this term began) its
    /// first request.
    owners: HashMap<SessionId, i64>,
}

pub struct LearnerTerm {
    core: Learner,
    leader: i64,
    link: Link,
    /// Acks that go out after the next sync.
    after_sync: Vec<QuorumPacket>,
    /// Logged, not yet committed.
    unapplied: VecDeque<(TxnHeader, Txn)>,
    /// Requests this server forwarded, by (session, cxid), with their order:: tickets.
    forwarded: HashMap<(SessionId, i32), (Forwarded, u64)>,
    /// Sessions with traffic since the last ping (id → timeout), for the leader.
    touched: HashMap<SessionId, i32>,
    /// Reconnects waiting for the leader to revalidate the session (REVALIDATE).
    revalidating: HashMap<SessionId, (ConnId, i32, Option<bool>)>,
}

pub(super) enum Forwarded {
    Waiter(Waiter),
    Sync {
        conn: ConnId,
        xid: i32,
        path: String,
    },
}

/// Server modes as `Shared::mode` holds them.
pub mod mode {
    pub const STANDALONE: u8 = 0;
    pub const LOOKING: u8 = 1;
    pub const LEADING: u8 = 2;
    pub const FOLLOWING: u8 = 3;
    pub const OBSERVING: u8 = 4;
}

fn packet<T: AsRef<[u8]>>(msg: Msg<T>, my_id: i64, observer: bool) -> QuorumPacket {
    let p = QuorumPacket::new;
    let bytes = |t: T| Some(t.as_ref().to_vec());
    match msg {
        Msg::LearnerInfo { accepted_epoch, .. } => {
            let info = LearnerInfo {
                server_id: my_id,
                protocol_version: PROTOCOL_VERSION,
                config_version: 0,
            };
            let k = if observer {
                kind::OBSERVERINFO
            } else {
                kind::FOLLOWERINFO
            };
            p(k, make_zxid(accepted_epoch, 0), Some(info.encode()))
        }
        Msg::LeaderInfo { epoch } => p(
            kind::LEADERINFO,
            make_zxid(epoch, 0),
            Some(PROTOCOL_VERSION.to_be_bytes().to_vec()),
        ),
        Msg::AckEpoch {
            current_epoch,
            last_zxid,
        } => p(
            kind::ACKEPOCH,
            last_zxid,
            Some((current_epoch as i32).to_be_bytes().to_vec()),
        ),
        Msg::Diff { zxid } => p(kind::DIFF, zxid, None),
        Msg::Trunc { zxid } => p(kind::TRUNC, zxid, None),
        Msg::Snap { zxid } => p(kind::SNAP, zxid, None),
        Msg::Proposal { zxid, txn } => p(kind::PROPOSAL, zxid, bytes(txn)),
        Msg::Commit { zxid } => p(kind::COMMIT, zxid, None),
        Msg::Inform { zxid, txn } => p(kind::INFORM, zxid, bytes(txn)),
        Msg::NewLeader { zxid } => p(kind::NEWLEADER, zxid, None),
        Msg::Ack { zxid } => p(kind::ACK, zxid, None),
        Msg::UpToDate => p(kind::UPTODATE, -1, None),
        Msg::Ping | Msg::PingReply => p(kind::PING, 0, None),
    }
}

/// A packet the core handles, as its message (`from_leader`: which side received it).
fn message(pkt: &QuorumPacket, from_leader: bool) -> Option<Msg<Arc<[u8]>>> {
    let z = pkt.zxid;
    let data = || Arc::<[u8]>::from(pkt.data.as_deref().unwrap_or(&[]));
    let i32_data = || {
        pkt.data
            .as_deref()
            .filter(|d| d.len() >= 4)
            .map(|d| i32::from_be_bytes(d[..4].try_into().unwrap()))
    };
    Some(match pkt.kind {
        kind::FOLLOWERINFO | kind::OBSERVERINFO if !from_leader => Msg::LearnerInfo {
            accepted_epoch: epoch_of(z),
            last_zxid: 0,
            observer: pkt.kind == kind::OBSERVERINFO,
        },
        kind::LEADERINFO if from_leader => Msg::LeaderInfo { epoch: epoch_of(z) },
        kind::ACKEPOCH if !from_leader => Msg::AckEpoch {
            current_epoch: i64::from(i32_data()?),
            last_zxid: z,
        },
        kind::DIFF if from_leader => Msg::Diff { zxid: z },
        kind::TRUNC if from_leader => Msg::Trunc { zxid: z },
        kind::SNAP if from_leader => Msg::Snap { zxid: z },
        kind::PROPOSAL if from_leader => Msg::Proposal {
            zxid: z,
            txn: data(),
        },
        kind::COMMIT if from_leader => Msg::Commit { zxid: z },
        kind::INFORM if from_leader => Msg::Inform {
            zxid: z,
            txn: data(),
        },
        kind::NEWLEADER if from_leader => Msg::NewLeader { zxid: z },
        kind::ACK if !from_leader => Msg::Ack { zxid: z },
        kind::UPTODATE if from_leader => Msg::UpToDate,
        kind::PING if from_leader => Msg::Ping,
        kind::PING => Msg::PingReply,
        _ => return None,
    })
}

/// A forwarded request's data: session · cxid · type · the request's own bytes.
fn request_data(session: SessionId, cxid: i32, opcode: i32, body: &[u8]) -> Vec<u8> {
    let mut w = Jute::new();
    w.i64(session).i32(cxid).i32(opcode);
    w.buf.extend_from_slice(body);
    w.buf
}

impl<L: TxnLog> WriterLoop<L> {
    fn core_ms(&self) -> u64 {
        self.ens
            .as_ref()
            .map_or(0, |e| e.started.elapsed().as_millis() as u64)
    }

    /// Clients are served (standalone, or a leader or learner that is up to date).
    pub(super) fn serving(&self) -> bool {
        self.shared.serving.load(Relaxed)
    }

    fn set_mode(&self, m: u8, serving: bool) {
        self.shared.mode.store(m, Relaxed);
        self.shared.serving.store(serving, Relaxed);
    }

    pub(super) fn is_learner(&self) -> bool {
        matches!(self.role, Role::Learning(_))
    }

    /// In its role for good: standalone, a leader whose quorum is synced, a learner the
    /// leader said is up to date. (Clients may still be turned away: `leaderServes=no`.)
    pub(super) fn established(&self) -> bool {
        match &self.role {
            Role::Standalone => true,
            Role::Leading(t) => t.core.phase() == LeaderPhase::Broadcast,
            Role::Learning(t) => t.core.phase() == crate::zab::broadcast::LearnerPhase::Serving,
            Role::Looking | Role::Connecting { .. } => false,
        }
    }

    /// The leader's (or standalone server's) own work: expiry, containers.
    pub(super) fn owns_sessions(&self) -> bool {
        matches!(self.role, Role::Standalone | Role::Leading(_)) && self.established()
    }

    pub(super) fn quorum_event(&mut self, ev: QuorumEvent) {
        let now = self.core_ms();
        match ev {
            QuorumEvent::Lead { .. } => {
                if !matches!(self.role, Role::Looking) {
                    return;
                }
                self.end_read_only();
                let Some(ens) = &self.ens else { return };
                let history: Vec<(Zxid, Arc<[u8]>)> = self.recent.txns.iter().cloned().collect();
                let mut core = Leader::new(
                    ens.my_id,
                    ens.voters.clone(),
                    ens.epochs.accepted,
                    ens.epochs.current,
                    self.recent.from,
                    history,
                    now,
                    ens.limits,
                );
                log::info!(
                    "leading: discovery starts (last zxid 0x{:x}, epochs {}/{})",
                    self.next_zxid - 1,
                    ens.epochs.accepted,
                    ens.epochs.current
                );
                let first = core.start();
                self.role = Role::Leading(Box::new(LeaderTerm {
                    core,
                    links: HashMap::new(),
                    link_of: HashMap::new(),
                    syncs: Vec::new(),
                    owners: HashMap::new(),
                }));
                self.set_mode(mode::LEADING, false);
                self.perform(first, None);
            }
            QuorumEvent::Follow { leader } => {
                if matches!(self.role, Role::Looking) {
                    log::info!("following leader {leader}: connecting");
                    self.connecting(leader);
                }
            }
            QuorumEvent::Learn { leader, link } => {
                if !matches!(self.role, Role::Connecting { leader: l } if l == leader) {
                    return; // a stale connection: dropping the handle closes it
                }
                self.end_read_only();
                let Some(ens) = &self.ens else { return };
                let core = Learner::new(
                    leader,
                    ens.observer,
                    ens.epochs.accepted,
                    ens.epochs.current,
                    self.next_zxid - 1,
                    now,
                    ens.limits,
                );
                let first = core.start();
                self.role = Role::Learning(Box::new(LearnerTerm {
                    core,
                    leader,
                    link,
                    after_sync: Vec::new(),
                    unapplied: VecDeque::new(),
                    forwarded: HashMap::new(),
                    touched: HashMap::new(),
                    revalidating: HashMap::new(),
                }));
                let m = if ens.observer {
                    mode::OBSERVING
                } else {
                    mode::FOLLOWING
                };
                self.set_mode(m, false);
                self.perform(first, None);
            }
            QuorumEvent::Unreachable { leader } => {
                if matches!(self.role, Role::Connecting { leader: l } if l == leader)
                    || matches!(self.role, Role::Looking)
                {
                    self.abandon("the leader is unreachable");
                }
            }
            QuorumEvent::Learner { sid, link } => {
                let Role::Leading(t) = &mut self.role else {
                    return;
                };
                if let Some(old) = t.links.insert(sid, link.clone()) {
                    t.link_of.remove(&old.id);
                    t.core.disconnected(sid);
                }
                t.link_of.insert(link.id, sid);
            }
            QuorumEvent::Link(LinkEvent::Closed { link }) => match &mut self.role {
                Role::Leading(t) => {
                    if let Some(sid) = t.link_of.remove(&link) {
                        log::info!("learner {sid} disconnected");
                        t.links.remove(&sid);
                        t.core.disconnected(sid);
                    }
                }
                Role::Learning(t) if t.link.id == link => {
                    self.abandon("the connection to the leader closed");
                }
                _ => {}
            },
            QuorumEvent::Link(LinkEvent::Packets { link, pkts }) => {
                for pkt in pkts {
                    self.packet(now, link, pkt);
                }
            }
        }
    }

    fn packet(&mut self, now: u64, link: u64, pkt: QuorumPacket) {
        match &mut self.role {
            Role::Leading(t) => {
                let Some(&sid) = t.link_of.get(&link) else {
                    return;
                };
                if pkt.kind == kind::REQUEST {
                    self.forwarded_request(sid, &pkt);
                    return;
                }
                if pkt.kind == kind::REVALIDATE {
                    self.revalidate(sid, pkt.data.as_deref().unwrap_or(&[]));
                    return;
                }
                if pkt.kind == kind::PING {
                    self.touch_from_learner(sid, pkt.data.as_deref().unwrap_or(&[]));
                }
                let Some(msg) = message(&pkt, false) else {
                    log::warn!("learner {sid}: unexpected packet type {}", pkt.kind);
                    return;
                };
                let Role::Leading(t) = &mut self.role else {
                    return;
                };
                let effects = t.core.on_message(now, sid, msg);
                self.perform(effects, None);
            }
            Role::Learning(t) if t.link.id == link => {
                if pkt.kind == kind::SYNC {
                    self.sync_answered(pkt.data.as_deref().unwrap_or(&[]));
                    return;
                }
                if pkt.kind == kind::REVALIDATE {
                    self.revalidated(pkt.data.as_deref().unwrap_or(&[]));
                    return;
                }
                let Some(msg) = message(&pkt, true) else {
                    self.abandon("the leader sent a packet of an unexpected type");
                    return;
                };
                let snap = match (&msg, pkt.data) {
                    (Msg::Snap { .. }, data) => data,
                    _ => None,
                };
                let effects = t.core.on_message(now, msg);
                self.perform(effects, snap);
            }
            _ => {}
        }
    }

    /// Carries out the core's effects, in order.
    fn perform(&mut self, effects: Vec<Effect<Arc<[u8]>>>, mut snap: Option<Vec<u8>>) {
        let Some(ens) = &self.ens else { return };
        let (my_id, observer) = (ens.my_id, ens.observer);
        for e in effects {
            match e {
                Effect::Send {
                    to,
                    msg: msg @ (Msg::Proposal { .. } | Msg::Commit { .. } | Msg::Inform { .. }),
                } => {
                    let Role::Leading(t) = &mut self.role else {
                        continue;
                    };
                    let (k, zxid, data) = match &msg {
                        Msg::Proposal { zxid, txn } => (kind::PROPOSAL, *zxid, Some(&txn[..])),
                        Msg::Inform { zxid, txn } => (kind::INFORM, *zxid, Some(&txn[..])),
                        Msg::Commit { zxid } => (kind::COMMIT, *zxid, None),
                        _ => unreachable!(),
                    };
                    // Straight into the link's buffer: no packet built, no copy between.
                    if let Some(l) = t.links.get_mut(&to) {
                        l.send_plain(k, zxid, data);
                    }
                }
                Effect::Send { to, msg } => {
                    let (is_snap, is_reply) = (
                        matches!(msg, Msg::Snap { .. }),
                        matches!(msg, Msg::PingReply),
                    );
                    let mut p = packet(msg, my_id, observer);
                    if is_snap {
                        p.data = Some(self.snapshot_bytes());
                    }
                    if is_reply {
                        p.data = Some(self.ping_data());
                    }
                    match &mut self.role {
                        Role::Leading(t) => {
                            if let Some(l) = t.links.get_mut(&to) {
                                l.send(&p);
                            }
                        }
                        Role::Learning(t) => {
                            t.link.send(&p);
                        }
                        _ => {}
                    }
                }
                Effect::SendAfterSync { msg, .. } => {
                    if let Role::Learning(t) = &mut self.role {
                        t.after_sync.push(packet(msg, my_id, observer));
                        // The next flush syncs (an epoch file alone appends nothing).
                        self.log_dirty = true;
                    }
                }
                Effect::PersistAcceptedEpoch(epoch) => {
                    self.persist_epoch("acceptedEpoch", epoch);
                    if let Some(ens) = &mut self.ens {
                        ens.epochs.accepted = epoch;
                    }
                }
                Effect::PersistCurrentEpoch(epoch) => {
                    self.persist_epoch("currentEpoch", epoch);
                    if let Some(ens) = &mut self.ens {
                        ens.epochs.current = epoch;
                    }
                }
                Effect::Append { zxid, txn } => {
                    if !self.learn_txn(zxid, txn) {
                        return;
                    }
                }
                Effect::Truncate { zxid } => {
                    if let Err(why) = self.truncate_to(zxid) {
                        // The log may be changed partway, the tree not: stop, as for any
                        // failed disk write, and recover from disk on restart.
                        crate::fatal(format_args!(
                            "cannot truncate the txn log to 0x{zxid:x}: {why}"
                        ));
                    }
                }
                Effect::InstallSnapshot { zxid } => {
                    let bytes = snap.take().unwrap_or_default();
                    if let Err(why) = self.install_snapshot(zxid, &bytes) {
                        // As a failed truncation: the data directory may be half changed.
                        crate::fatal(format_args!(
                            "cannot install the leader's snapshot 0x{zxid:x}: {why}"
                        ));
                    }
                }
                Effect::Apply { zxid } => match &self.role {
                    Role::Leading(_) => {
                        self.apply_upto(zxid);
                        self.answer_syncs();
                    }
                    Role::Learning(_) => self.apply_learned(zxid),
                    _ => {}
                },
                Effect::Serve => self.serve(),
                Effect::Drop { id } => {
                    if let Role::Leading(t) = &mut self.role {
                        if let Some(l) = t.links.remove(&id) {
                            t.link_of.remove(&l.id);
                            log::info!("dropping learner {id}");
                        }
                    }
                }
                Effect::Abandon { why } => {
                    self.abandon(why);
                    return;
                }
            }
        }
    }

    fn persist_epoch(&self, name: &str, epoch: i64) {
        let Some(ens) = &self.ens else { return };
        if let Err(e) = ens.epochs.write(name, epoch) {
            crate::fatal(format_args!("cannot write {name}: {e}"));
        }
    }

    fn serve(&mut self) {
        match &self.role {
            Role::Leading(t) => {
                let epoch = t.core.epoch();
                self.next_zxid = make_zxid(epoch, 1);
                // Its session times are as it last heard of them (as a follower: their
                // creation): every session gets a full timeout from now, as ZooKeeper's
                // new leader gives them, before learners report their traffic.
                let now = now_ms() as u64;
                let ids: Vec<SessionId> = self.sessions.iter().map(|(id, _)| *id).collect();
                for id in ids {
                    self.sessions.touch(id, now);
                }
                let serves = self
                    .shared
                    .cfg
                    .quorum
                    .as_ref()
                    .is_none_or(|q| q.leader_serves);
                log::info!(
                    "leading epoch {epoch}: a quorum is synced; {} (zxid 0x{:x})",
                    if serves {
                        "serving clients"
                    } else {
                        "leaderServes=no: clients go to the learners"
                    },
                    self.shared.last_zxid()
                );
                self.set_mode(mode::LEADING, serves);
            }
            Role::Learning(t) => {
                log::info!(
                    "synced with leader {} (zxid 0x{:x}); serving clients",
                    t.leader,
                    self.shared.last_zxid()
                );
                let m = if self.ens.as_ref().is_some_and(|e| e.observer) {
                    mode::OBSERVING
                } else {
                    mode::FOLLOWING
                };
                self.set_mode(m, true);
            }
            _ => {}
        }
    }

    /// Leaves the role and elects again. What was logged is applied (ZooKeeper
    /// fast-forwards its database); clients are disconnected and find a server that serves.
    pub(super) fn abandon(&mut self, why: &str) {
        if self.ens.is_none() {
            return;
        }
        let was = std::mem::replace(&mut self.role, Role::Looking);
        self.looking_since = Some(Instant::now());
        match was {
            Role::Leading(_) | Role::Learning(_) => log::warn!("leaving the ensemble role: {why}"),
            _ => log::info!("looking for a leader: {why}"),
        }
        self.set_mode(mode::LOOKING, false);
        if let Err(e) = self.log.sync() {
            crate::fatal(e);
        }
        // No client hears of what follows: a leader's pending txns and a learner's
        // unapplied ones have no quorum (a committed one is applied at once), so their
        // clients get no answer, only a closed connection (outcome unknown), as
        // ZooKeeper's do. Closed first, so no watch event of them goes out either.
        self.disconnect_clients();
        // Their connections are closed: nothing waits behind anything any more.
        self.order.clear();
        let waiters: Vec<Waiter> = self
            .pending
            .iter_mut()
            .map(|p| std::mem::replace(&mut p.waiter, Waiter::Internal))
            .collect();
        for w in waiters {
            self.hang_up(w);
        }
        // They are logged: apply them, as ZooKeeper fast-forwards its database. The next
        // leader keeps them or truncates them (then this server rebuilds from disk).
        if let Some(last) = self.pending.back().map(|p| p.hdr.zxid) {
            self.apply_upto(last);
        }
        if let Role::Learning(mut t) = was {
            // Reconnects waiting for the leader's word: the client tries elsewhere.
            for (_, (conn, ..)) in std::mem::take(&mut t.revalidating) {
                self.send(conn, ToReactor::Close { conn });
            }
            for (_, (f, _)) in std::mem::take(&mut t.forwarded) {
                match f {
                    Forwarded::Waiter(w) => self.hang_up(w),
                    Forwarded::Sync { conn, .. } => self.send(conn, ToReactor::Close { conn }),
                }
            }
            for (hdr, txn) in std::mem::take(&mut t.unapplied) {
                self.apply_one(hdr, txn, Waiter::Internal, NO_TICKET);
            }
        }
        self.pending.clear();
        self.staged.clear();
        self.staged_digest = self.idx.digest;
        // A close that was logged has been applied (the session is gone); one still
        // marked closing never reached the log (a learner's forwarded close, an expiry
        // that found no zxid): the session lives on, to expire or close under the next
        // leader. Left marked, it would never expire and its ephemerals would stay.
        let closing: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.closing)
            .map(|(id, _)| *id)
            .collect();
        for id in closing {
            self.reopen(id);
        }
        self.wake_reactors();
        let last = self.next_zxid - 1;
        if let Some(ens) = &self.ens {
            let _ = ens.relook.send((last, ens.epochs.current));
        }
    }

    /// A waiter whose txn will never be answered: its connection closes, so its client
    /// learns the outcome is unknown (ConnectionLoss) and never takes silence for OK.
    pub(super) fn hang_up(&mut self, w: Waiter) {
        let conn = match w {
            Waiter::Reply { conn, .. } | Waiter::Connect { conn, .. } => conn,
            Waiter::CloseSession {
                conn: Some(conn), ..
            } => conn,
            Waiter::CloseSession { conn: None, .. } | Waiter::Internal => return,
        };
        self.send(conn, ToReactor::Close { conn });
    }

    /// Closes every client connection (the sessions live on) and forgets their watches:
    /// clients find a server that serves, and set their watches there again.
    fn disconnect_clients(&mut self) {
        let ids: Vec<SessionId> = self.sessions.iter().map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(c) = self.sessions.get_mut(id).and_then(|s| s.conn.take()) {
                self.send(c, ToReactor::Close { conn: c });
            }
        }
        self.watches = WatchTable::default();
        self.wake_reactors();
    }

    /// The election decided to follow or observe `leader`.
    pub(super) fn connecting(&mut self, leader: i64) {
        self.role = Role::Connecting { leader };
    }

    /// A learner logs a txn the leader sent.
    fn learn_txn(&mut self, zxid: Zxid, record: Arc<[u8]>) -> bool {
        let (hdr, txn) = match crate::txn::decode_record_digest(&record) {
            Ok((hdr, txn, _)) if hdr.zxid == zxid => (hdr, txn),
            _ => {
                self.abandon("the leader sent a txn that does not decode");
                return false;
            }
        };
        if let Err(e) = self.log.append(zxid, &record) {
            crate::fatal(e);
        }
        self.next_zxid = zxid + 1;
        self.recent.push(zxid, record);
        self.log_dirty = true;
        if let Role::Learning(t) = &mut self.role {
            t.unapplied.push_back((hdr, txn));
        }
        true
    }

    /// A learner applies its logged txns up to `zxid`: they are committed.
    fn apply_learned(&mut self, zxid: Zxid) {
        let mut applied = 0u64;
        loop {
            let Role::Learning(t) = &mut self.role else {
                return;
            };
            if t.unapplied.front().is_none_or(|(h, _)| h.zxid > zxid) {
                break;
            }
            let (hdr, txn) = t.unapplied.pop_front().unwrap();
            let (waiter, ticket) = match t.forwarded.remove(&(hdr.client_id, hdr.cxid)) {
                Some((Forwarded::Waiter(w), ticket)) => (w, ticket),
                Some(sync @ (Forwarded::Sync { .. }, _)) => {
                    t.forwarded.insert((hdr.client_id, hdr.cxid), sync);
                    (Waiter::Internal, NO_TICKET)
                }
                None => (Waiter::Internal, NO_TICKET),
            };
            self.apply_one(hdr, txn, waiter, ticket);
            applied += 1;
        }
        self.shared.stats.txns.fetch_add(applied, Relaxed);
        self.snaps.txns += applied;
        self.publish_stats();
        self.wake_reactors();
    }

    /// Applies one committed txn to the published tree, with its watch events, session
    /// changes and answer.
    fn apply_one(&mut self, hdr: TxnHeader, txn: Txn, waiter: Waiter, ticket: u64) {
        let shared = self.shared.clone();
        let ext = shared.cfg.extended_types;
        let applied = commit::apply(&shared.tree, &mut self.idx, ext, &hdr, Source::Txn(&txn));
        let p = Pending {
            hdr,
            txn,
            results: Vec::new(),
            changes: Vec::new(),
            triggers: Vec::new(),
            waiter,
            ticket,
        };
        self.finish_apply(p, applied);
    }

    /// Sends what this turn of the writer's loop queued on the quorum links.
    pub(super) fn flush_links(&mut self) {
        match &mut self.role {
            Role::Leading(t) => {
                for l in t.links.values_mut() {
                    l.flush();
                }
            }
            Role::Learning(t) => {
                t.link.flush();
            }
            _ => {}
        }
    }

    /// After the writer's sync: a learner's acks go; a leader hears it persisted.
    pub(super) fn synced(&mut self, last: Zxid) {
        match &mut self.role {
            Role::Learning(t) => {
                for p in std::mem::take(&mut t.after_sync) {
                    t.link.send(&p);
                }
            }
            Role::Leading(t) => {
                let effects = t.core.persisted(last);
                self.perform(effects, None);
            }
            _ => {}
        }
    }

    /// A leader proposes what the writer just appended.
    pub(super) fn proposed(&mut self, zxid: Zxid, record: &[u8]) {
        if self.ens.is_none() {
            return;
        }
        let record: Arc<[u8]> = Arc::from(record);
        self.recent.push(zxid, record.clone());
        if let Role::Leading(t) = &mut self.role {
            if t.core.phase() == LeaderPhase::Broadcast {
                let effects = t.core.propose(zxid, record);
                self.perform(effects, None);
            }
        }
    }

    /// A leader's zxid for the next txn, or `None` (the role is given up) when the
    /// epoch's counter is used up.
    pub(super) fn zxid_available(&mut self) -> bool {
        if let Role::Leading(t) = &self.role {
            if crate::zab::broadcast::counter_of(self.next_zxid)
                >= crate::zab::broadcast::COUNTER_MAX
                || t.core.next_zxid().is_none()
            {
                self.abandon("the zxid counter rolled over");
                return false;
            }
        }
        true
    }

    pub(super) fn core_tick(&mut self) {
        let now = self.core_ms();
        let effects = match &mut self.role {
            Role::Leading(t) => t.core.on_tick(now),
            Role::Learning(t) => t.core.on_tick(now),
            _ => return,
        };
        self.perform(effects, None);
        self.publish_quorum_stats();
    }

    fn publish_quorum_stats(&self) {
        let s = &self.shared.stats;
        let (learners, followers, observers, syncs) = match &self.role {
            Role::Leading(t) => {
                let (f, o) = t.core.synced();
                (t.links.len(), f, o, t.syncs.len())
            }
            _ => (0, 0, 0, 0),
        };
        s.learners.store(learners as u64, Relaxed);
        s.synced_followers.store(followers as u64, Relaxed);
        s.synced_observers.store(observers as u64, Relaxed);
        s.pending_syncs.store(syncs as u64, Relaxed);
    }

    /// A learner forwards a client's write, connect, close or sync; it is answered when
    /// its txn (or the leader's SYNC) comes back.
    pub(super) fn forward(
        &mut self,
        session: SessionId,
        cxid: i32,
        opcode: i32,
        body: &[u8],
        ids: &[Id],
        waiter: Forwarded,
    ) {
        let Role::Learning(t) = &mut self.role else {
            return;
        };
        // The session's later reads wait behind it (a connect has none before its answer).
        let ticket = match waiter {
            Forwarded::Waiter(Waiter::Connect { .. }) => NO_TICKET,
            _ => self.order.ticket(session),
        };
        t.forwarded.insert((session, cxid), (waiter, ticket));
        let mut p = QuorumPacket::new(
            kind::REQUEST,
            -1,
            Some(request_data(session, cxid, opcode, body)),
        );
        p.auth = Some(ids.to_vec());
        t.link.send(&p);
    }

    /// A learner notes sessions with traffic, for its next ping reply.
    pub(super) fn touched(&mut self, ids: &[SessionId]) {
        let timeouts: Vec<(SessionId, i32)> = ids
            .iter()
            .filter_map(|&s| self.sessions.get(s).map(|x| (s, x.timeout_ms)))
            .collect();
        if let Role::Learning(t) = &mut self.role {
            t.touched.extend(timeouts);
        }
    }

    /// The leader hears a learner's sessions in its ping reply (id i64 · timeout i32)*.
    /// The timeout is the one the learner negotiated at the session's latest
    /// (re)connect, which may differ from the one the session was created with.
    /// A learner the session has moved away from speaks for it no more.
    fn touch_from_learner(&mut self, sid: i64, data: &[u8]) {
        let now = now_ms() as u64;
        for c in data.chunks_exact(12) {
            let id = i64::from_be_bytes(c[..8].try_into().unwrap());
            let timeout = i32::from_be_bytes(c[8..].try_into().unwrap());
            if let Role::Leading(t) = &self.role {
                if t.owners.get(&id).is_some_and(|&o| o != sid) {
                    continue;
                }
            }
            if let Some(s) = self.sessions.get_mut(id) {
                if timeout > 0 && !s.closing {
                    s.timeout_ms = timeout;
                }
            }
            self.sessions.touch(id, now);
        }
    }

    /// A learner asks whether a session a client reconnects there is still valid
    /// (REVALIDATE: id i64 · timeout i32). If it is, the session is touched with that
    /// timeout and is from now on attached to that learner: a connection elsewhere (on
    /// this server it is closed at once) gets SessionMoved for its writes. The answer is
    /// id i64 · valid bool, as ZooKeeper's.
    fn revalidate(&mut self, sid: i64, data: &[u8]) {
        let mut r = crate::proto::Reader::new(data);
        let (Ok(id), Ok(timeout)) = (r.read_i64(), r.read_i32()) else {
            log::warn!("learner {sid}: a malformed REVALIDATE");
            return;
        };
        let valid = self.session_ok(id);
        if valid {
            if let Some(s) = self.sessions.get_mut(id) {
                s.timeout_ms = timeout;
            }
            self.sessions.touch(id, now_ms() as u64);
            if let Some(c) = self.sessions.get_mut(id).and_then(|s| s.conn.take()) {
                log::info!("session 0x{id:x} moved to server {sid}: closing its connection here");
                self.watches.remove_session(id);
                self.send(c, ToReactor::Close { conn: c });
            }
        }
        let Role::Leading(t) = &mut self.role else {
            return;
        };
        if valid {
            t.owners.insert(id, sid);
        }
        let mut out = id.to_be_bytes().to_vec();
        out.push(u8::from(valid));
        if let Some(l) = t.links.get_mut(&sid) {
            l.send(&QuorumPacket::new(kind::REVALIDATE, -1, Some(out)));
        }
    }

    /// The leader's answer to a revalidation this learner asked for.
    fn revalidated(&mut self, data: &[u8]) {
        let mut r = crate::proto::Reader::new(data);
        let Ok(id) = r.read_i64() else {
            return;
        };
        let valid = r.rest().first().is_some_and(|&b| b != 0);
        let Role::Learning(t) = &mut self.role else {
            return;
        };
        let Some((conn, timeout, read_only)) = t.revalidating.remove(&id) else {
            log::warn!("the leader revalidated session 0x{id:x}, which nobody asked for");
            return;
        };
        if valid && self.session_ok(id) {
            self.resume_session(conn, id, timeout, read_only);
        } else {
            self.refuse_reconnect(conn, id, read_only);
        }
        self.wake_reactors();
    }

    /// A learner asks the leader to revalidate `id` before a client resumes it here.
    pub(super) fn ask_revalidate(
        &mut self,
        conn: ConnId,
        id: SessionId,
        timeout: i32,
        read_only: Option<bool>,
    ) {
        let Role::Learning(t) = &mut self.role else {
            return;
        };
        if let Some((old, ..)) = t.revalidating.insert(id, (conn, timeout, read_only)) {
            // Two reconnects of one session at once: the newer one waits for the answer.
            self.send(old, ToReactor::Close { conn: old });
            return;
        }
        let mut data = id.to_be_bytes().to_vec();
        data.extend_from_slice(&timeout.to_be_bytes());
        t.link
            .send(&QuorumPacket::new(kind::REVALIDATE, -1, Some(data)));
    }

    /// Whether a leader takes a write of `session` from `from` (a learner's id, or this
    /// server's own): not if the session is attached elsewhere (SessionMoved). A session
    /// whose owner this term has not seen yet becomes `from`'s, as in ZooKeeper.
    pub(super) fn owned_by(&mut self, session: SessionId, from: i64) -> bool {
        let Role::Leading(t) = &mut self.role else {
            return true;
        };
        *t.owners.entry(session).or_insert(from) == from
    }

    /// A leader forgets a closed session's owner.
    pub(super) fn forget_owner(&mut self, session: SessionId) {
        if let Role::Leading(t) = &mut self.role {
            t.owners.remove(&session);
        }
    }

    /// A leader notes that a session is (again) attached to `to`.
    pub(super) fn set_owner(&mut self, session: SessionId, to: i64) {
        if let Role::Leading(t) = &mut self.role {
            t.owners.insert(session, to);
        }
    }

    /// The ping reply's data: the sessions touched since the last one.
    pub(super) fn ping_data(&mut self) -> Vec<u8> {
        let Role::Learning(t) = &mut self.role else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(t.touched.len() * 12);
        for (id, timeout) in t.touched.drain() {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&timeout.to_be_bytes());
        }
        out
    }

    /// The leader stages a request a learner forwarded.
    fn forwarded_request(&mut self, sid: i64, pkt: &QuorumPacket) {
        let data = pkt.data.as_deref().unwrap_or(&[]);
        let mut r = crate::proto::Reader::new(data);
        let (Ok(session), Ok(cxid), Ok(opcode)) = (r.read_i64(), r.read_i32(), r.read_i32()) else {
            log::warn!("learner {sid}: a malformed forwarded request");
            return;
        };
        let body = r.rest();
        if !self.established() {
            return;
        }
        match opcode {
            op::CREATE_SESSION => {
                let timeout = if body.len() >= 4 {
                    i32::from_be_bytes(body[..4].try_into().unwrap())
                } else {
                    self.shared.cfg.negotiate_timeout(0)
                };
                self.set_owner(session, sid);
                self.stage_server_txn(
                    session,
                    cxid,
                    Txn::CreateSession { timeout },
                    Waiter::Internal,
                );
            }
            op::CLOSE_SESSION => {
                if self.session_ok(session) {
                    self.close_session(session, cxid, Waiter::Internal);
                } else {
                    self.stage_error(session, cxid, ZkError::SessionExpired);
                }
            }
            op::SYNC => {
                // Answered once everything proposed so far is committed.
                let barrier = self.next_zxid - 1;
                if let Role::Leading(t) = &mut self.role {
                    t.syncs.push((sid, barrier, data.to_vec()));
                }
                self.answer_syncs();
            }
            _ => {
                let ids: Vec<Id> = pkt.auth.clone().unwrap_or_default();
                let req = match Request::decode(opcode, body) {
                    Ok(r) => r,
                    Err(e) => {
                        // Its learner logged it already (rate-limited): MarshallingError,
                        // as an error txn, as for a client of this server.
                        log::debug!(
                            "learner {sid}: forwarded {} does not decode: {e}",
                            op::name(opcode)
                        );
                        self.stage_error(session, cxid, ZkError::MarshallingError);
                        return;
                    }
                };
                if !self.session_ok(session) {
                    self.stage_error(session, cxid, ZkError::SessionExpired);
                    return;
                }
                if !self.owned_by(session, sid) {
                    // The client resumed the session elsewhere: this write is from a
                    // connection it left (its learner closes it, without a reply).
                    self.stage_error(session, cxid, ZkError::SessionMoved);
                    return;
                }
                if self.zxid_available() {
                    self.stage(session, cxid, &ids, &req, Waiter::Internal);
                }
            }
        }
    }

    /// A txn that carries only an error for the learner's client.
    fn stage_error(&mut self, session: SessionId, cxid: i32, err: ZkError) {
        let txn = Txn::Error { err: err.code() };
        self.stage_server_txn(session, cxid, txn, Waiter::Internal);
    }

    /// Forwarded syncs whose barrier is committed go back to their learner.
    fn answer_syncs(&mut self) {
        let Role::Leading(t) = &mut self.role else {
            return;
        };
        let committed = t.core.committed();
        let mut i = 0;
        while i < t.syncs.len() {
            if t.syncs[i].1 <= committed {
                let (sid, _, data) = t.syncs.swap_remove(i);
                if let Some(l) = t.links.get_mut(&sid) {
                    l.send(&QuorumPacket::new(kind::SYNC, committed, Some(data)));
                }
            } else {
                i += 1;
            }
        }
    }

    /// A learner's forwarded sync came back: everything before it is applied here.
    fn sync_answered(&mut self, data: &[u8]) {
        let mut r = crate::proto::Reader::new(data);
        let (Ok(session), Ok(cxid)) = (r.read_i64(), r.read_i32()) else {
            return;
        };
        let Role::Learning(t) = &mut self.role else {
            return;
        };
        if let Some((Forwarded::Sync { conn, xid, path }, ticket)) =
            t.forwarded.remove(&(session, cxid))
        {
            let f = reply_frame(xid, self.shared.last_zxid(), 0, |w| {
                w.string(&path);
            });
            self.frame(conn, f, true);
            self.answered(session, ticket);
            self.wake_reactors();
        }
    }
}

impl<L: TxnLog> WriterLoop<L> {
    /// A learner's client request: writes, closes and syncs go to the leader; reads run
    /// here, as on any server.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn learner_request(
        &mut self,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        opcode: i32,
        req: Request,
        ids: &Arc<[Id]>,
        raw: Option<Vec<u8>>,
    ) {
        match &req {
            Request::CloseSession => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.closing = true;
                }
                let waiter = Waiter::CloseSession {
                    conn: Some(conn),
                    xid,
                };
                self.forward(
                    session,
                    xid,
                    op::CLOSE_SESSION,
                    &[],
                    ids,
                    Forwarded::Waiter(waiter),
                );
            }
            Request::Sync { path } => {
                let body = raw.unwrap_or_default();
                let path = path.clone();
                self.forward(
                    session,
                    xid,
                    op::SYNC,
                    &body,
                    ids,
                    Forwarded::Sync { conn, xid, path },
                );
            }
            r if r.is_write() || matches!(r, Request::Reconfig) => {
                let Some(body) = raw else {
                    // Decoded before this server became a learner: the client retries.
                    self.send(conn, ToReactor::Close { conn });
                    return;
                };
                let waiter = Waiter::Reply {
                    conn,
                    xid,
                    op: opcode,
                };
                self.forward(session, xid, opcode, &body, ids, Forwarded::Waiter(waiter));
            }
            _ => self.answer_in_order(DeferredRead {
                conn,
                session,
                xid,
                req,
                ids: ids.clone(),
            }),
        }
    }

    /// The tree as a snapshot file's bytes, at the last applied zxid (a leader's SNAP).
    fn snapshot_bytes(&self) -> Vec<u8> {
        let zxid = self.shared.last_zxid();
        let sessions = self.session_list();
        let src = self.snap_source(zxid, &sessions);
        let mut out = Vec::new();
        if let Err(e) = crate::snap::serialize(&src, &mut out) {
            log::error!("cannot serialize a snapshot for a learner: {e}");
        }
        out
    }

    /// TRUNC: the log loses every txn after `zxid` and the state is rebuilt from disk.
    fn truncate_to(&mut self, zxid: Zxid) -> Result<(), SyncFailed> {
        log::info!("the leader truncates this server's log to 0x{zxid:x}");
        self.log.truncate_after(zxid)?;
        self.remove_snapshots_after(zxid)?;
        self.rebuild_from_disk()
    }

    /// SNAP: the leader's snapshot replaces this server's log and state.
    fn install_snapshot(&mut self, zxid: Zxid, bytes: &[u8]) -> Result<(), SyncFailed> {
        use std::io::Write;
        log::info!(
            "installing the leader's snapshot at 0x{zxid:x} ({} bytes)",
            bytes.len()
        );
        let dir = self.snaps.dir.clone();
        let tmp = dir.join(format!("{}{zxid:x}", crate::snap::TMP_PREFIX));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, dir.join(crate::snap::snapshot_name(zxid)))?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|error| SyncFailed::Io {
            path: dir.clone(),
            error,
        })?;
        self.remove_snapshots_after(zxid)?;
        self.log.reset(zxid)?;
        self.rebuild_from_disk()
    }

    /// Snapshots past `zxid` hold txns the leader's history does not have (a snapshot
    /// still being written is waited for first).
    fn remove_snapshots_after(&mut self, zxid: Zxid) -> Result<(), SyncFailed> {
        self.reap_snapshot_child_waiting(true);
        let snaps =
            crate::snap::list_snapshots(&self.snaps.dir).map_err(|error| SyncFailed::Io {
                path: self.snaps.dir.clone(),
                error,
            })?;
        for s in snaps.into_iter().filter(|s| s.zxid > zxid) {
            log::info!("removing {}: past the leader's history", s.path.display());
            std::fs::remove_file(&s.path).map_err(|error| SyncFailed::Io {
                path: s.path.clone(),
                error,
            })?;
        }
        Ok(())
    }

    /// Rebuilds tree, indexes and sessions from the data directory, as start-up does, into
    /// the published tree (no client is served meanwhile).
    fn rebuild_from_disk(&mut self) -> Result<(), SyncFailed> {
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        let log_v2 = cfg.data_log_dir.join("version-2");
        let st = crate::server::recovery::recover_state(cfg, &self.snaps.dir, &log_v2)
            .map_err(Box::new)?;
        let tree = &shared.tree;
        let mut old = Vec::with_capacity(tree.len());
        tree.for_each(|p, _| old.push(p.to_owned()));
        // One window: no reader sees the old tree and the new one mixed.
        tree.publish(|| {
            for p in old {
                tree.remove(&p);
            }
            st.tree
                .for_each(|p, n| tree.put_path(crate::tree::PathRef::from(p), n.clone()));
            shared.last_zxid.store(st.last_zxid, Release);
        });
        self.idx = st.idx;
        self.sessions = st.sessions;
        self.session_ids.clear();
        self.watches = WatchTable::default();
        self.staged.clear();
        self.pending.clear();
        self.staged_digest = self.idx.digest;
        self.recent = st.recent;
        self.next_zxid = st.last_zxid + 1;
        self.durable = st.last_zxid;
        self.publish_stats();
        Ok(())
    }
}

/// Read-only mode (`readonlymode.enabled`), as ZooKeeper's ReadOnlyZooKeeperServer: a
/// member without a quorum for max(2 s, tickTime) serves clients that ask for read-only
/// sessions: reads of its own tree, writes answered NotReadOnly. Its sessions are local
/// (never logged); when the member takes a role again they and their connections end,
/// and clients find a read-write server.
impl<L: TxnLog> WriterLoop<L> {
    pub(super) fn maybe_read_only(&mut self) {
        if !self.shared.cfg.read_only_enabled || self.serving() || self.shared.read_only() {
            return;
        }
        let wait = Duration::from_millis((self.shared.cfg.tick_ms as u64).max(2000));
        let looking = matches!(self.role, Role::Looking | Role::Connecting { .. });
        if looking && self.looking_since.is_some_and(|t| t.elapsed() >= wait) {
            log::warn!(
                "no quorum for {wait:?}: read-only mode (reads only, for read-only clients)"
            );
            self.shared.read_only.store(true, Relaxed);
        }
    }

    fn end_read_only(&mut self) {
        if !self.shared.read_only.swap(false, Relaxed) {
            return;
        }
        log::info!("read-only mode ends: its clients are disconnected");
        self.disconnect_clients();
        for id in std::mem::take(&mut self.ro_sessions) {
            self.sessions.remove(id);
        }
    }

    /// A read-only client connects: a new local session, or one it had (it keeps its id).
    pub(super) fn read_only_connect(&mut self, conn: ConnId, req: ConnectRequest) {
        let timeout = self.shared.cfg.negotiate_timeout(req.timeout_ms);
        let now = now_ms() as u64;
        let id = if req.session_id == 0 {
            let id = self.sessions.next_session_id();
            self.sessions.add(id, timeout, now);
            self.ro_sessions.insert(id);
            id
        } else if req.passwd.as_slice() == password(req.session_id)
            && self.sessions.get(req.session_id).is_some()
        {
            req.session_id
        } else {
            self.send(conn, ToReactor::Close { conn });
            return;
        };
        if let Some(s) = self.sessions.get_mut(id) {
            s.conn = Some(conn);
        }
        self.sessions.touch(id, now);
        self.connected(conn, id, timeout, req.read_only);
    }

    /// A request in read-only mode: reads run here; writes get NotReadOnly.
    pub(super) fn read_only_request(
        &mut self,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        req: Request,
        ids: &Arc<[Id]>,
    ) {
        let zxid = self.shared.last_zxid();
        let f = match &req {
            Request::CloseSession => {
                if self.ro_sessions.remove(&session) {
                    self.sessions.remove(session);
                }
                self.watches.remove_session(session);
                let f = reply_frame(xid, zxid, 0, |_| {});
                self.frame(conn, f, true);
                self.send(conn, ToReactor::Close { conn });
                return;
            }
            r if r.is_write() || matches!(r, Request::Reconfig) => {
                reply_frame(xid, zxid, ZkError::NotReadOnly.code(), |_| {})
            }
            _ => self.barrier_request(session, xid, &req, ids),
        };
        self.frame(conn, f, true);
    }
}
