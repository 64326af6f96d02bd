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

use super::leader::LeaderTerm;
use super::learner::LearnerTerm;
use super::role::mode;
use super::*;
use crate::quorum::links::LinkEvent;
use crate::quorum::role::QuorumEvent;
use crate::server::recovery::Epochs;
use crate::zab::broadcast::{epoch_of, make_zxid, Effect, Leader, Learner, Limits, Msg};
use crate::zab::packet::{kind, LearnerInfo, QuorumPacket, PROTOCOL_VERSION};
use std::collections::VecDeque;

/// What the writer needs to take part in an ensemble.
pub struct Ensemble {
    pub my_id: i64,
    pub voters: Vec<i64>,
    pub observer: bool,
    pub limits: Limits,
    /// Starts the next election: (last logged zxid, current epoch).
    pub relook: crossbeam_channel::Sender<(i64, i64)>,
    pub epochs: Epochs,
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

impl<L: Storage> WriterLoop<L> {
    /// The ZAB core's clock: ms since this writer started.
    pub(super) fn core_ms(&self) -> u64 {
        self.clock.mono_ms().saturating_sub(self.core_zero)
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

    pub(super) fn packet(&mut self, now: u64, link: u64, pkt: QuorumPacket) {
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
    pub(super) fn perform(&mut self, effects: Vec<Effect<Arc<[u8]>>>, mut snap: Option<Vec<u8>>) {
        let Some(ens) = &self.ens else { return };
        let (my_id, observer) = (ens.my_id, ens.observer);
        // Forwarded syncs answered by this step's commits go after its COMMIT packets:
        // the core emits Apply before the commits it sends, and a learner must apply a
        // write before it answers a sync behind it.
        let mut syncs_due = false;
        for e in effects {
            match e {
                Effect::Send {
                    to,
                    msg: msg @ (Msg::Proposal { .. } | Msg::Commit { .. } | Msg::Inform { .. }),
                } => {
                    if !matches!(self.role, Role::Leading(_)) {
                        continue;
                    }
                    match &msg {
                        Msg::Commit { zxid } => self.answer_syncs_before(to, *zxid, true),
                        Msg::Inform { zxid, .. } => self.answer_syncs_before(to, *zxid, false),
                        _ => {}
                    }
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
                        // The turn's sync runs even if nothing was appended.
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
                    // ZAB: a follower takes the new epoch (NEWLEADER) only with the
                    // leader's history durable, and logs the new epoch's proposals only
                    // after that. Persisted before the txns it synced, a crash between
                    // them leaves a member whose epoch wins elections with a log that
                    // lacks committed txns: elected, it truncates them away everywhere
                    // (the whole-server simulator found this; ZooKeeper had it as
                    // ZOOKEEPER-4643). So: the log's sync first, here, once per term.
                    if self.is_learner() && !mutation::active(Mutation::EpochBeforeHistory) {
                        match self.log.sync() {
                            Ok(z) => self.durable = self.durable.max(z),
                            Err(crate::log::LogError::NoSpace { .. }) => {
                                self.abandon("the txn log is out of space");
                                return;
                            }
                            Err(e) => crate::fatal(e),
                        }
                    }
                    self.set_current_epoch(epoch);
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
                        syncs_due = true;
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
        if syncs_due {
            self.answer_syncs();
        }
    }

    pub(super) fn set_current_epoch(&mut self, epoch: i64) {
        self.persist_epoch("currentEpoch", epoch);
        if let Some(ens) = &mut self.ens {
            ens.epochs.current = epoch;
        }
    }

    pub(super) fn persist_epoch(&self, name: &str, epoch: i64) {
        let Some(ens) = &self.ens else { return };
        if let Err(e) = ens.epochs.write(name, epoch) {
            crate::fatal(format_args!("cannot write {name}: {e}"));
        }
    }

    pub(super) fn serve(&mut self) {
        match &self.role {
            Role::Leading(t) => {
                let epoch = t.core.epoch();
                self.next_zxid = make_zxid(epoch, 1);
                // Its session times are as it last heard of them (as a follower: their
                // creation): every session gets a full timeout from now, as ZooKeeper's
                // new leader gives them, before learners report their traffic.
                let now = self.clock.now_ms() as u64;
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
        self.looking_since = Some(self.clock.mono_ms());
        match was {
            Role::Leading(_) | Role::Learning(_) => log::warn!("leaving the ensemble role: {why}"),
            _ => log::info!("looking for a leader: {why}"),
        }
        self.set_mode(mode::LOOKING, false);
        // Everything appended reaches the log before the member looks again, or the
        // server stops: a learner may have applied committed txns its own log has not
        // synced yet, and a member whose tree is ahead of its log must not vote or sync
        // from the log's zxid. (A full disk with records pending stops it too, as
        // ZooKeeper exits on a failed log write; restart recovers from disk.)
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
    pub(super) fn disconnect_clients(&mut self) {
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

    pub(super) fn publish_quorum_stats(&self) {
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
}
