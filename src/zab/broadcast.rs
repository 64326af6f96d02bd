//! ZooKeeper's atomic broadcast (ZAB) after an election: discovery, synchronisation and
//! broadcast, as two pure state machines, `Leader` and `Learner` (a follower or an
//! observer). Messages and ticks go in; effects come out, and the shell performs them in
//! order: append, persist, then what waits for persistence (`SendAfterSync`).
//!
//! Phases, as in ZooKeeper 3.8's `Leader.lead` and `Learner.syncWithLeader`:
//! 1. Discovery. Each learner reports its accepted epoch (`LearnerInfo`). Once a quorum of
//!    voters (the leader included) has reported, the new epoch is one more than the
//!    highest accepted epoch; the leader persists it as accepted and offers it
//!    (`LeaderInfo`). A learner that accepts it persists it and answers with its current
//!    epoch and last logged zxid (`AckEpoch`). A learner more up to date than the leader
//!    makes the leader give up. With a quorum of epoch acks the leader persists the new
//!    epoch as current.
//! 2. Synchronisation. Each learner is brought to the leader's committed history: `Diff`
//!    (it has a prefix), `Trunc` (it has txns past the commit point, or txns the leader
//!    never had: dropped back to the last common zxid) or `Snap` (older than the leader
//!    keeps in memory). Committed txns follow as
//!    `Proposal` + `Commit`; outstanding ones as `Proposal`; then `NewLeader`. A learner
//!    persists what it got and the new epoch as current, then acks `NewLeader`. With a
//!    quorum of those acks the leader's whole history is committed and it serves;
//!    `UpToDate` tells each synced learner to serve too.
//! 3. Broadcast. The leader proposes txns in zxid order; a follower persists each and
//!    acks it; a txn is committed once a quorum of voters (counting the leader only once
//!    it persisted it) acked it or a later one, and then applied everywhere in order
//!    (`Commit` to followers, `Inform` with the txn to observers).
//!
//! Holds:
//! - zxid = epoch << 32 | counter; a new epoch's first txn has counter 1; a counter that
//!   would roll over makes the leader give up, which forces a new election.
//! - Only a learner that acked `NewLeader` (and so persisted the epoch as current) counts
//!   towards a commit: an ack from one that did not could vanish from the next election's
//!   ordering, which compares epochs before zxids.
//! - Acks are cumulative: a follower persists in zxid order, so an ack of z covers all
//!   before z. Commits are therefore in zxid order, and `Apply { zxid }` applies every
//!   logged txn up to `zxid`.
//! - A learner applies only what the leader says is committed; it serves only after
//!   `UpToDate`. The leader drops a learner silent for a sync limit and gives up when
//!   the voters it heard from within a sync limit are no quorum, or when it is not
//!   serving within an init limit.
//!
//! Not here: sockets and packet bytes (zab/packet.rs, the quorum shell), the txn's
//! contents (`T` is opaque), the election (zab/election.rs), the snapshot's bytes (the
//! shell sends the applied state with `Snap`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub type Zxid = i64;

/// The largest counter a zxid can hold.
pub const COUNTER_MAX: i64 = 0xffff_ffff;

pub fn make_zxid(epoch: i64, counter: i64) -> Zxid {
    (epoch << 32) | (counter & COUNTER_MAX)
}
pub fn epoch_of(zxid: Zxid) -> i64 {
    zxid >> 32
}
pub fn counter_of(zxid: Zxid) -> i64 {
    zxid & COUNTER_MAX
}

/// A message between the leader and one learner, over one ordered connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg<T> {
    /// Learner → leader: FOLLOWERINFO / OBSERVERINFO.
    LearnerInfo {
        accepted_epoch: i64,
        last_zxid: Zxid,
        observer: bool,
    },
    /// Leader → learner: the proposed new epoch (LEADERINFO).
    LeaderInfo {
        epoch: i64,
    },
    /// Learner → leader: ACKEPOCH; `current_epoch` is -1 when the learner had already
    /// accepted this epoch (it then does not count towards the epoch quorum).
    AckEpoch {
        current_epoch: i64,
        last_zxid: Zxid,
    },
    Diff {
        zxid: Zxid,
    },
    Trunc {
        zxid: Zxid,
    },
    /// The shell sends the applied state at `zxid` with it.
    Snap {
        zxid: Zxid,
    },
    Proposal {
        zxid: Zxid,
        txn: T,
    },
    Commit {
        zxid: Zxid,
    },
    /// Leader → observer: a committed txn.
    Inform {
        zxid: Zxid,
        txn: T,
    },
    NewLeader {
        zxid: Zxid,
    },
    Ack {
        zxid: Zxid,
    },
    UpToDate,
    Ping,
    PingReply,
}

/// What the core asks its shell to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect<T> {
    Send {
        to: i64,
        msg: Msg<T>,
    },
    /// Send once everything appended before this effect is persisted.
    SendAfterSync {
        to: i64,
        msg: Msg<T>,
    },
    PersistAcceptedEpoch(i64),
    PersistCurrentEpoch(i64),
    /// Learner: log this txn (after everything logged so far).
    Append {
        zxid: Zxid,
        txn: T,
    },
    /// Learner: drop every logged txn after `zxid` and rebuild the state from the rest.
    Truncate {
        zxid: Zxid,
    },
    /// Learner: replace log and state with the snapshot the `Snap` message carried.
    InstallSnapshot {
        zxid: Zxid,
    },
    /// Apply every logged txn up to `zxid`: it is committed.
    Apply {
        zxid: Zxid,
    },
    /// Start serving clients.
    Serve,
    /// Leader: close the connection of this learner.
    Drop {
        id: i64,
    },
    /// Leave this role and elect again.
    Abandon {
        why: &'static str,
    },
}

/// Time limits, in ms (ZooKeeper: tickTime, initLimit × tickTime, syncLimit × tickTime).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub tick_ms: u64,
    pub init_ms: u64,
    pub sync_ms: u64,
    /// Committed txns the leader keeps in memory to sync learners by `Diff`/`Trunc`.
    pub window_max: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Sent `LearnerInfo`; waits for the epoch.
    Registered,
    EpochSent,
    EpochAcked,
    /// Got its sync and `NewLeader`; receives every later proposal and commit.
    Synced,
    /// Acked `NewLeader`: its acks count.
    Ready,
}

struct Peer {
    observer: bool,
    stage: Stage,
    heard_ms: u64,
    last_zxid: Zxid,
    /// Highest zxid it persisted, as far as the leader knows (counted once `Ready`).
    acked: Zxid,
    /// The last proposal sent before `NewLeader`: its `NewLeader` ack covers it.
    sent_before_new_leader: Zxid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderPhase {
    Discovery,
    Sync,
    Broadcast,
}

/// One leader's term. Owned by the thread that owns the txn log (the writer).
pub struct Leader<T> {
    my_id: i64,
    voters: Vec<i64>,
    limits: Limits,
    accepted_epoch: i64,
    current_epoch: i64,
    /// The epoch this term leads (0 until discovery decides it).
    epoch: i64,
    phase: LeaderPhase,
    peers: BTreeMap<i64, Peer>,
    /// Voters that reported their accepted epoch in discovery (the leader included).
    reported: BTreeSet<i64>,
    epoch_max: i64,
    epoch_acked: BTreeSet<i64>,
    /// The newest logged txns; every txn after `window_from` is here.
    window: VecDeque<(Zxid, T)>,
    window_from: Zxid,
    committed: Zxid,
    persisted: Zxid,
    started_ms: u64,
    ping_ms: u64,
}

impl<T: Clone> Leader<T> {
    /// A new term after winning an election. `history` is the tail of the leader's log
    /// (every txn after `history_from`), all of it persisted.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        my_id: i64,
        voters: Vec<i64>,
        accepted_epoch: i64,
        current_epoch: i64,
        history_from: Zxid,
        history: Vec<(Zxid, T)>,
        now_ms: u64,
        limits: Limits,
    ) -> Leader<T> {
        assert!(voters.contains(&my_id), "a leader is a voter");
        assert!(
            history.windows(2).all(|w| w[0].0 < w[1].0)
                && history.first().is_none_or(|f| f.0 > history_from),
            "history is in zxid order after its start"
        );
        let last = history.last().map_or(history_from, |e| e.0);
        let mut reported = BTreeSet::new();
        reported.insert(my_id);
        Leader {
            my_id,
            voters,
            limits,
            accepted_epoch,
            current_epoch,
            epoch: 0,
            phase: LeaderPhase::Discovery,
            peers: BTreeMap::new(),
            reported,
            epoch_max: accepted_epoch,
            epoch_acked: BTreeSet::new(),
            window: history.into(),
            window_from: history_from,
            committed: 0,
            persisted: last,
            started_ms: now_ms,
            ping_ms: now_ms,
        }
    }

    pub fn phase(&self) -> LeaderPhase {
        self.phase
    }
    pub fn epoch(&self) -> i64 {
        self.epoch
    }
    pub fn committed(&self) -> Zxid {
        self.committed
    }
    /// The last logged (or proposed) zxid.
    pub fn last(&self) -> Zxid {
        self.window.back().map_or(self.window_from, |e| e.0)
    }
    /// Learners (followers and observers) that are synced: (followers, observers).
    pub fn synced(&self) -> (usize, usize) {
        let f = |obs: bool| {
            self.peers
                .values()
                .filter(|p| p.observer == obs && p.stage >= Stage::Synced)
                .count()
        };
        (f(false), f(true))
    }
    /// Learners connected but not yet synced.
    pub fn syncing(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.stage < Stage::Synced)
            .count()
    }

    fn is_voter(&self, id: i64) -> bool {
        self.voters.contains(&id)
    }
    fn quorum(&self, n: usize) -> bool {
        n * 2 > self.voters.len()
    }

    /// The zxid the next proposal gets, or `None` when the counter would roll over (the
    /// leader then gives up: call `propose` anyway or `abandon_rollover`).
    pub fn next_zxid(&self) -> Option<Zxid> {
        assert_eq!(
            self.phase,
            LeaderPhase::Broadcast,
            "only a serving leader proposes"
        );
        let last = self.last().max(make_zxid(self.epoch, 0));
        (counter_of(last) < COUNTER_MAX).then_some(last + 1)
    }

    /// The counter of this epoch is used up: ZooKeeper forces a new election.
    pub fn abandon_rollover(&self) -> Vec<Effect<T>> {
        vec![Effect::Abandon {
            why: "the zxid counter rolled over",
        }]
    }

    /// A txn the shell logged (not yet persisted) under `next_zxid()`.
    pub fn propose(&mut self, zxid: Zxid, txn: T) -> Vec<Effect<T>> {
        assert_eq!(Some(zxid), self.next_zxid(), "proposals are in zxid order");
        let mut out = Vec::new();
        for (&id, p) in &self.peers {
            if p.stage >= Stage::Synced && !p.observer {
                out.push(Effect::Send {
                    to: id,
                    msg: Msg::Proposal {
                        zxid,
                        txn: txn.clone(),
                    },
                });
            }
        }
        self.window.push_back((zxid, txn));
        out
    }

    /// The shell persisted everything logged up to `zxid`.
    pub fn persisted(&mut self, zxid: Zxid) -> Vec<Effect<T>> {
        let mut out = Vec::new();
        self.persisted = self.persisted.max(zxid);
        self.try_commit(&mut out);
        out
    }

    /// A learner's connection closed.
    pub fn disconnected(&mut self, id: i64) {
        self.peers.remove(&id);
    }

    pub fn on_message(&mut self, now_ms: u64, from: i64, msg: Msg<T>) -> Vec<Effect<T>> {
        let mut out = Vec::new();
        if let Some(p) = self.peers.get_mut(&from) {
            p.heard_ms = now_ms;
        }
        match msg {
            Msg::LearnerInfo {
                accepted_epoch,
                last_zxid,
                observer,
            } => {
                if observer == self.is_voter(from) || from == self.my_id {
                    // A voter claiming to observe or the reverse: configs disagree.
                    self.drop_peer(from, &mut out);
                    return out;
                }
                self.peers.insert(
                    from,
                    Peer {
                        observer,
                        stage: Stage::Registered,
                        heard_ms: now_ms,
                        last_zxid,
                        acked: 0,
                        sent_before_new_leader: 0,
                    },
                );
                if self.epoch == 0 {
                    self.epoch_max = self.epoch_max.max(accepted_epoch);
                    if !observer {
                        self.reported.insert(from);
                    }
                    self.advance(&mut out);
                } else {
                    self.offer_epoch(from, &mut out);
                }
            }
            Msg::AckEpoch {
                current_epoch,
                last_zxid,
            } => {
                let Some(p) = self.peers.get_mut(&from) else {
                    return out;
                };
                if p.stage != Stage::EpochSent {
                    self.drop_peer(from, &mut out);
                    return out;
                }
                p.stage = Stage::EpochAcked;
                p.last_zxid = last_zxid;
                let observer = p.observer;
                if current_epoch != -1
                    && (current_epoch, last_zxid) > (self.current_epoch, self.last())
                {
                    out.push(Effect::Abandon {
                        why: "a learner is more up to date than the leader",
                    });
                    return out;
                }
                if self.phase == LeaderPhase::Discovery {
                    if current_epoch != -1 && !observer {
                        self.epoch_acked.insert(from);
                    }
                    self.advance(&mut out);
                } else {
                    self.sync(from, &mut out);
                }
            }
            Msg::Ack { zxid } => {
                let Some(p) = self.peers.get_mut(&from) else {
                    return out;
                };
                match p.stage {
                    Stage::Synced if zxid == make_zxid(self.epoch, 0) => {
                        p.stage = Stage::Ready;
                        p.acked = p.acked.max(p.sent_before_new_leader);
                        match self.phase {
                            LeaderPhase::Broadcast => out.push(Effect::Send {
                                to: from,
                                msg: Msg::UpToDate,
                            }),
                            _ => self.advance(&mut out),
                        }
                    }
                    Stage::Ready if !p.observer => {
                        p.acked = p.acked.max(zxid);
                        self.try_commit(&mut out);
                    }
                    Stage::Ready => {}
                    _ => self.drop_peer(from, &mut out),
                }
            }
            Msg::PingReply => {}
            _ => self.drop_peer(from, &mut out),
        }
        out
    }

    /// A learner broke the protocol: forget it and close its connection.
    fn drop_peer(&mut self, id: i64, out: &mut Vec<Effect<T>>) {
        self.peers.remove(&id);
        out.push(Effect::Drop { id });
    }

    /// The first effects of a term: with a single voter, the leader alone is a quorum.
    pub fn start(&mut self) -> Vec<Effect<T>> {
        let mut out = Vec::new();
        self.advance(&mut out);
        out
    }

    /// Moves through the phases as far as the quorums allow: the epoch once a quorum
    /// reported, the sync once a quorum acked it, serving once a quorum acked NewLeader.
    fn advance(&mut self, out: &mut Vec<Effect<T>>) {
        if self.epoch == 0 && self.quorum(self.reported.len()) {
            self.epoch = self.epoch_max + 1;
            self.accepted_epoch = self.epoch;
            out.push(Effect::PersistAcceptedEpoch(self.epoch));
            let ids: Vec<i64> = self.peers.keys().copied().collect();
            for id in ids {
                self.offer_epoch(id, out);
            }
        }
        if self.epoch != 0
            && self.phase == LeaderPhase::Discovery
            && self.quorum(self.epoch_acked.len() + 1)
        {
            self.phase = LeaderPhase::Sync;
            self.current_epoch = self.epoch;
            out.push(Effect::PersistCurrentEpoch(self.epoch));
            // Everything logged is the new epoch's initial history.
            self.committed = self.last();
            let ids: Vec<i64> = self
                .peers
                .iter()
                .filter(|(_, p)| p.stage == Stage::EpochAcked)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.sync(id, out);
            }
        }
        self.try_establish(out);
    }

    fn offer_epoch(&mut self, id: i64, out: &mut Vec<Effect<T>>) {
        let epoch = self.epoch;
        if let Some(p) = self.peers.get_mut(&id) {
            if p.stage == Stage::Registered {
                p.stage = Stage::EpochSent;
                out.push(Effect::Send {
                    to: id,
                    msg: Msg::LeaderInfo { epoch },
                });
            }
        }
    }

    /// Brings learner `id` to the leader's history and sends `NewLeader`.
    fn sync(&mut self, id: i64, out: &mut Vec<Effect<T>>) {
        let (learner_last, observer) = {
            let p = &self.peers[&id];
            (p.last_zxid, p.observer)
        };
        // Decided on the committed history only: a learner holding outstanding proposals
        // is truncated to the commit point and gets them again (its state must be exactly
        // a committed prefix when it serves).
        let committed = self.committed;
        let has = |z: Zxid| {
            z == self.window_from || self.window.iter().any(|e| e.0 == z && z <= committed)
        };
        let send = |msg: Msg<T>, out: &mut Vec<Effect<T>>| out.push(Effect::Send { to: id, msg });
        let start = if learner_last > committed {
            send(Msg::Trunc { zxid: committed }, out);
            committed
        } else if has(learner_last) {
            send(Msg::Diff { zxid: learner_last }, out);
            learner_last
        } else if learner_last < self.window_from {
            send(Msg::Snap { zxid: committed }, out);
            committed
        } else {
            // It logged txns the leader never had: back to the last common zxid.
            let common = self
                .window
                .iter()
                .map(|e| e.0)
                .take_while(|&z| z < learner_last)
                .last()
                .unwrap_or(self.window_from);
            send(Msg::Trunc { zxid: common }, out);
            common
        };
        let mut sent = start;
        for (zxid, txn) in self.window.iter().filter(|e| e.0 > start) {
            let zxid = *zxid;
            if zxid <= self.committed {
                send(
                    Msg::Proposal {
                        zxid,
                        txn: txn.clone(),
                    },
                    out,
                );
                send(Msg::Commit { zxid }, out);
            } else if !observer {
                send(
                    Msg::Proposal {
                        zxid,
                        txn: txn.clone(),
                    },
                    out,
                );
            } else {
                break;
            }
            sent = zxid;
        }
        send(
            Msg::NewLeader {
                zxid: make_zxid(self.epoch, 0),
            },
            out,
        );
        let p = self.peers.get_mut(&id).expect("syncing a known learner");
        p.stage = Stage::Synced;
        p.sent_before_new_leader = sent;
    }

    /// With a quorum of `NewLeader` acks the history is committed and the leader serves.
    fn try_establish(&mut self, out: &mut Vec<Effect<T>>) {
        let ready = self
            .peers
            .iter()
            .filter(|(id, p)| p.stage == Stage::Ready && self.is_voter(**id))
            .count();
        if self.phase != LeaderPhase::Sync || !self.quorum(ready + 1) {
            return;
        }
        self.phase = LeaderPhase::Broadcast;
        // Its state already holds the whole history (the shell applied its log).
        out.push(Effect::Serve);
        for (&id, p) in &self.peers {
            if p.stage == Stage::Ready {
                out.push(Effect::Send {
                    to: id,
                    msg: Msg::UpToDate,
                });
            }
        }
    }

    fn try_commit(&mut self, out: &mut Vec<Effect<T>>) {
        if self.phase != LeaderPhase::Broadcast {
            return;
        }
        // The highest zxid a quorum of voters persisted.
        let mut acked: Vec<Zxid> = self
            .peers
            .iter()
            .filter(|(id, p)| p.stage == Stage::Ready && self.is_voter(**id))
            .map(|(_, p)| p.acked)
            .collect();
        acked.push(self.persisted);
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let need = self.voters.len() / 2 + 1;
        if acked.len() < need {
            return;
        }
        let upto = acked[need - 1].min(self.last());
        if upto <= self.committed {
            return;
        }
        out.push(Effect::Apply { zxid: upto });
        for (&id, p) in &self.peers {
            if p.stage < Stage::Synced {
                continue;
            }
            if p.observer {
                for (zxid, txn) in self.window.iter() {
                    if *zxid > self.committed && *zxid <= upto {
                        out.push(Effect::Send {
                            to: id,
                            msg: Msg::Inform {
                                zxid: *zxid,
                                txn: txn.clone(),
                            },
                        });
                    }
                }
            } else {
                out.push(Effect::Send {
                    to: id,
                    msg: Msg::Commit { zxid: upto },
                });
            }
        }
        self.committed = upto;
        while self.window.len() > self.limits.window_max
            && self.window.front().is_some_and(|e| e.0 <= self.committed)
        {
            self.window_from = self.window.pop_front().unwrap().0;
        }
    }

    /// Time passes: pings, silent learners dropped, the quorum checked.
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Effect<T>> {
        let mut out = Vec::new();
        if now_ms >= self.ping_ms + self.limits.tick_ms / 2 {
            self.ping_ms = now_ms;
            for &id in self.peers.keys() {
                out.push(Effect::Send {
                    to: id,
                    msg: Msg::Ping,
                });
            }
        }
        let limits = self.limits;
        let silent: Vec<i64> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                let limit = if p.stage >= Stage::Synced {
                    limits.sync_ms
                } else {
                    limits.init_ms
                };
                now_ms > p.heard_ms + limit
            })
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            self.peers.remove(&id);
            out.push(Effect::Drop { id });
        }
        match self.phase {
            LeaderPhase::Discovery | LeaderPhase::Sync => {
                if now_ms > self.started_ms + self.limits.init_ms {
                    out.push(Effect::Abandon {
                        why: "no quorum of learners synced within the init limit",
                    });
                }
            }
            LeaderPhase::Broadcast => {
                // Followers silent for a sync limit were dropped above: those left were
                // heard within it. Without a quorum of them the leader gives up at once.
                let heard = self
                    .peers
                    .iter()
                    .filter(|(id, p)| p.stage == Stage::Ready && self.is_voter(**id))
                    .count();
                if !self.quorum(heard + 1) {
                    out.push(Effect::Abandon {
                        why: "not enough followers synced within the sync limit",
                    });
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnerPhase {
    Registering,
    Syncing,
    Serving,
}

/// One learner's term under one leader. Owned by the thread that owns the txn log.
pub struct Learner {
    leader: i64,
    observer: bool,
    limits: Limits,
    accepted_epoch: i64,
    current_epoch: i64,
    new_epoch: i64,
    phase: LearnerPhase,
    last_logged: Zxid,
    /// Logged, not yet applied, in zxid order.
    pending: VecDeque<Zxid>,
    new_leader_acked: bool,
    heard_ms: u64,
}

impl Learner {
    /// A learner whose state has every logged txn applied (the shell replays what was
    /// logged and not applied before it starts a term, as ZooKeeper does).
    pub fn new(
        leader: i64,
        observer: bool,
        accepted_epoch: i64,
        current_epoch: i64,
        last_logged: Zxid,
        now_ms: u64,
        limits: Limits,
    ) -> Learner {
        Learner {
            leader,
            observer,
            limits,
            accepted_epoch,
            current_epoch,
            new_epoch: 0,
            phase: LearnerPhase::Registering,
            last_logged,
            pending: VecDeque::new(),
            new_leader_acked: false,
            heard_ms: now_ms,
        }
    }

    pub fn phase(&self) -> LearnerPhase {
        self.phase
    }
    pub fn leader(&self) -> i64 {
        self.leader
    }
    pub fn last_logged(&self) -> Zxid {
        self.last_logged
    }

    /// The first message to the leader.
    pub fn start<T>(&self) -> Vec<Effect<T>> {
        vec![Effect::Send {
            to: self.leader,
            msg: Msg::LearnerInfo {
                accepted_epoch: self.accepted_epoch,
                last_zxid: self.last_logged,
                observer: self.observer,
            },
        }]
    }

    fn send<T>(&self, msg: Msg<T>, out: &mut Vec<Effect<T>>) {
        out.push(Effect::Send {
            to: self.leader,
            msg,
        });
    }

    pub fn on_message<T>(&mut self, now_ms: u64, msg: Msg<T>) -> Vec<Effect<T>> {
        let mut out = Vec::new();
        self.heard_ms = now_ms;
        let lost = |why| vec![Effect::Abandon { why }];
        match (self.phase, msg) {
            (_, Msg::Ping) => self.send(Msg::PingReply, &mut out),
            (LearnerPhase::Registering, Msg::LeaderInfo { epoch }) => {
                let current = if epoch > self.accepted_epoch {
                    self.accepted_epoch = epoch;
                    out.push(Effect::PersistAcceptedEpoch(epoch));
                    self.current_epoch
                } else if epoch == self.accepted_epoch {
                    -1
                } else {
                    return lost("the leader's epoch is older than the accepted one");
                };
                self.new_epoch = epoch;
                self.phase = LearnerPhase::Syncing;
                self.send(
                    Msg::AckEpoch {
                        current_epoch: current,
                        last_zxid: self.last_logged,
                    },
                    &mut out,
                );
            }
            (LearnerPhase::Syncing, Msg::Diff { zxid }) => {
                if zxid != self.last_logged {
                    return lost("a diff from a zxid this learner did not log last");
                }
            }
            (LearnerPhase::Syncing, Msg::Trunc { zxid }) => {
                if zxid > self.last_logged {
                    return lost("a trunc past the last logged zxid");
                }
                self.last_logged = zxid;
                self.pending.clear();
                out.push(Effect::Truncate { zxid });
            }
            (LearnerPhase::Syncing, Msg::Snap { zxid }) => {
                self.last_logged = zxid;
                self.pending.clear();
                out.push(Effect::InstallSnapshot { zxid });
            }
            (_, Msg::Proposal { zxid, txn }) if self.phase != LearnerPhase::Registering => {
                if zxid <= self.last_logged {
                    return lost("a proposal out of zxid order");
                }
                self.last_logged = zxid;
                self.pending.push_back(zxid);
                out.push(Effect::Append { zxid, txn });
                if self.new_leader_acked && !self.observer {
                    out.push(Effect::SendAfterSync {
                        to: self.leader,
                        msg: Msg::Ack { zxid },
                    });
                }
            }
            (_, Msg::Commit { zxid }) if self.phase != LearnerPhase::Registering => {
                if !self.pending.contains(&zxid) {
                    return lost("a commit of a txn this learner did not log");
                }
                while self.pending.front().is_some_and(|&z| z <= zxid) {
                    self.pending.pop_front();
                }
                out.push(Effect::Apply { zxid });
            }
            (LearnerPhase::Serving, Msg::Inform { zxid, txn }) if self.observer => {
                if zxid <= self.last_logged {
                    return lost("an inform out of zxid order");
                }
                self.last_logged = zxid;
                out.push(Effect::Append { zxid, txn });
                out.push(Effect::Apply { zxid });
            }
            (LearnerPhase::Syncing, Msg::NewLeader { zxid }) => {
                if epoch_of(zxid) != self.new_epoch || self.new_leader_acked {
                    return lost("a new-leader message for another epoch");
                }
                self.current_epoch = self.new_epoch;
                self.new_leader_acked = true;
                out.push(Effect::PersistCurrentEpoch(self.new_epoch));
                out.push(Effect::SendAfterSync {
                    to: self.leader,
                    msg: Msg::Ack { zxid },
                });
            }
            (LearnerPhase::Syncing, Msg::UpToDate) if self.new_leader_acked => {
                self.phase = LearnerPhase::Serving;
                out.push(Effect::Serve);
            }
            _ => return lost("a message out of protocol order"),
        }
        out
    }

    /// Time passes: a leader silent for a sync limit (an init limit while syncing) is lost.
    pub fn on_tick<T>(&mut self, now_ms: u64) -> Vec<Effect<T>> {
        let limit = if self.phase == LearnerPhase::Serving {
            self.limits.sync_ms
        } else {
            self.limits.init_ms
        };
        if now_ms > self.heard_ms + limit {
            return vec![Effect::Abandon {
                why: "the leader is silent",
            }];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        tick_ms: 100,
        init_ms: 1000,
        sync_ms: 500,
        window_max: 4,
    };

    fn sends(out: &[Effect<u64>], to: i64) -> Vec<Msg<u64>> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Send { to: t, msg } if *t == to => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    /// Learner `id` registers with `l` and acks its epoch; the effects of the ack.
    fn join(
        l: &mut Leader<u64>,
        id: i64,
        last: Zxid,
        accepted_epoch: i64,
        current_epoch: i64,
    ) -> Vec<Effect<u64>> {
        let info = Msg::LearnerInfo {
            accepted_epoch,
            last_zxid: last,
            observer: false,
        };
        l.on_message(0, id, info);
        let ack = Msg::AckEpoch {
            current_epoch,
            last_zxid: last,
        };
        l.on_message(0, id, ack)
    }

    /// Leader 3 of {1,2,3} with history (1,1)..(1,5); learner 2 reports `learner_last`
    /// and current epoch `learner_epoch`.
    fn synced_with(learner_last: Zxid, learner_epoch: i64) -> Vec<Msg<u64>> {
        let history: Vec<(Zxid, u64)> = (1..=5).map(|c| (make_zxid(1, c), c as u64)).collect();
        let mut l = Leader::new(3, vec![1, 2, 3], 1, 1, 0, history, 0, LIMITS);
        let out = l.on_message(
            0,
            2,
            Msg::LearnerInfo {
                accepted_epoch: 1,
                last_zxid: learner_last,
                observer: false,
            },
        );
        assert_eq!(out[0], Effect::PersistAcceptedEpoch(2));
        assert_eq!(sends(&out, 2), vec![Msg::LeaderInfo { epoch: 2 }]);
        let out = l.on_message(
            0,
            2,
            Msg::AckEpoch {
                current_epoch: learner_epoch,
                last_zxid: learner_last,
            },
        );
        assert_eq!(out[0], Effect::PersistCurrentEpoch(2));
        sends(&out, 2)
    }

    #[test]
    fn sync_by_diff_trunc_or_snap() {
        let z = |c| make_zxid(1, c);
        let m = synced_with(z(3), 1);
        assert_eq!(m[0], Msg::Diff { zxid: z(3) });
        assert_eq!(m[1], Msg::Proposal { zxid: z(4), txn: 4 });
        assert_eq!(m[2], Msg::Commit { zxid: z(4) });
        assert_eq!(
            m.last(),
            Some(&Msg::NewLeader {
                zxid: make_zxid(2, 0)
            })
        );
        // Logged past the leader's last without taking epoch 1 as current (it never
        // acked NewLeader): truncated to the leader's last.
        assert_eq!(synced_with(z(7), 0)[0], Msg::Trunc { zxid: z(5) });
        // Up to date: an empty diff, then NewLeader.
        let m = synced_with(z(5), 1);
        assert_eq!(
            m,
            vec![
                Msg::Diff { zxid: z(5) },
                Msg::NewLeader {
                    zxid: make_zxid(2, 0)
                }
            ]
        );
    }

    #[test]
    fn a_txn_the_leader_never_had_is_truncated() {
        let history: Vec<(Zxid, u64)> = vec![(make_zxid(1, 1), 1), (make_zxid(2, 1), 2)];
        let mut l = Leader::new(3, vec![1, 2, 3], 2, 2, 0, history, 0, LIMITS);
        let out = join(&mut l, 2, make_zxid(1, 2), 1, 1);
        let m = sends(&out, 2);
        assert_eq!(
            m[0],
            Msg::Trunc {
                zxid: make_zxid(1, 1)
            }
        );
        assert_eq!(
            m[1],
            Msg::Proposal {
                zxid: make_zxid(2, 1),
                txn: 2
            }
        );
    }

    #[test]
    fn an_old_learner_gets_a_snapshot() {
        let history: Vec<(Zxid, u64)> = (3..=5).map(|c| (make_zxid(1, c), c as u64)).collect();
        let mut l = Leader::new(3, vec![1, 2, 3], 1, 1, make_zxid(1, 2), history, 0, LIMITS);
        let out = join(&mut l, 2, make_zxid(1, 1), 1, 1);
        let m = sends(&out, 2);
        assert_eq!(
            m[0],
            Msg::Snap {
                zxid: make_zxid(1, 5)
            }
        );
        assert_eq!(
            m[1],
            Msg::NewLeader {
                zxid: make_zxid(2, 0)
            }
        );
    }

    #[test]
    fn a_learner_ahead_of_the_leader_makes_it_give_up() {
        let mut l: Leader<u64> = Leader::new(3, vec![1, 2, 3], 1, 1, 0, vec![], 0, LIMITS);
        let out = join(&mut l, 2, make_zxid(1, 4), 1, 1);
        assert!(matches!(out[..], [Effect::Abandon { .. }]));
    }

    #[test]
    fn the_counter_rolling_over_forces_an_election() {
        let mut l = Leader::new(
            3,
            vec![1, 2, 3],
            1,
            1,
            0,
            vec![(make_zxid(1, 5), 0u64)],
            0,
            LIMITS,
        );
        join(&mut l, 2, make_zxid(1, 5), 1, 1);
        let out = l.on_message(
            0,
            2,
            Msg::Ack {
                zxid: make_zxid(2, 0),
            },
        );
        assert!(out.contains(&Effect::Serve));
        // The new epoch starts at counter 1.
        assert_eq!(l.next_zxid(), Some(make_zxid(2, 1)));
        l.window.push_back((make_zxid(2, COUNTER_MAX), 0));
        assert_eq!(l.next_zxid(), None);
        assert!(matches!(l.abandon_rollover()[..], [Effect::Abandon { .. }]));
    }

    /// Found by the simulator (seed 0x951): a learner that logged proposals the leader has
    /// not committed yet, and comes back to the same leader, had them applied (it applies
    /// what it logged before a term) and was synced by a diff from its last zxid, so it
    /// served uncommitted txns. It must be truncated to the commit point instead, as
    /// ZooKeeper truncates a learner past its committed log, and get them as proposals.
    #[test]
    fn a_learner_past_the_commit_point_is_truncated_to_it() {
        let mut l: Leader<u64> = Leader::new(1, vec![1, 2, 3], 0, 0, 0, vec![], 0, LIMITS);
        join(&mut l, 2, 0, 0, 0);
        assert!(l
            .on_message(
                0,
                2,
                Msg::Ack {
                    zxid: make_zxid(1, 0)
                }
            )
            .contains(&Effect::Serve));
        let z1 = l.next_zxid().unwrap();
        l.propose(z1, 10);
        l.persisted(z1);
        l.on_message(0, 2, Msg::Ack { zxid: z1 });
        assert_eq!(l.committed(), z1);
        let z2 = l.next_zxid().unwrap();
        l.propose(z2, 11);
        // Follower 3 logged z2 (outstanding) before its link broke; it comes back.
        let m = sends(&join(&mut l, 3, z2, 1, 1), 3);
        assert_eq!(m[0], Msg::Trunc { zxid: z1 });
        assert_eq!(m[1], Msg::Proposal { zxid: z2, txn: 11 });
        assert_eq!(
            m[2],
            Msg::NewLeader {
                zxid: make_zxid(1, 0)
            }
        );
    }

    #[test]
    fn only_acks_after_new_leader_count() {
        let mut l: Leader<u64> = Leader::new(1, vec![1, 2, 3], 0, 0, 0, vec![], 0, LIMITS);
        for id in [2, 3] {
            join(&mut l, id, 0, 0, 0);
        }
        let out = l.on_message(
            0,
            2,
            Msg::Ack {
                zxid: make_zxid(1, 0),
            },
        );
        assert!(out.contains(&Effect::Serve));
        let z = l.next_zxid().unwrap();
        let out = l.propose(z, 7);
        // Both synced followers get it, though 3 has not acked NewLeader yet.
        assert_eq!(sends(&out, 2), vec![Msg::Proposal { zxid: z, txn: 7 }]);
        assert_eq!(sends(&out, 3), vec![Msg::Proposal { zxid: z, txn: 7 }]);
        // The leader alone is no quorum.
        assert!(l.persisted(z).is_empty());
        let out = l.on_message(0, 2, Msg::Ack { zxid: z });
        assert_eq!(out[0], Effect::Apply { zxid: z });
        // 3 is synced, so it gets the commit of what it was proposed.
        assert_eq!(sends(&out, 3), vec![Msg::Commit { zxid: z }]);
        // An ack before its NewLeader ack breaks the protocol: 3 is dropped.
        let z2 = l.next_zxid().unwrap();
        l.propose(z2, 8);
        assert_eq!(
            l.on_message(0, 3, Msg::Ack { zxid: z2 }),
            vec![Effect::Drop { id: 3 }]
        );
        assert_eq!(l.synced(), (1, 0));
    }
}
