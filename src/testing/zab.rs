//! Deterministic, seeded simulation of whole ensembles: election, then discovery,
//! synchronisation and broadcast (`zab::broadcast`), with clients proposing all along.
//!
//! Each server has a disk (what survived the last sync), a log (what the process wrote),
//! an applied state and its persisted epochs. Votes travel as datagrams that may be lost;
//! learner links are ordered connections that break (and stay broken) when a message
//! across a partition is lost, or close when an end gives up or is killed. Faults, all
//! from one seed: message delays, lost votes, kill -9 with the unsynced log tail lost and
//! a restart later, partitions, a leader window small enough to force SNAP.
//!
//! Checked at every step by the `Oracle` (the first failure is kept with its time):
//! - one leader per epoch;
//! - every committed txn is in the log of every later leader, at the same place;
//! - commits are in zxid order, and one zxid is never committed with two txns;
//! - a serving server has applied exactly a prefix of the committed sequence (so all
//!   servers apply the same txns in the same order, and none applies an uncommitted one).
//!
//! And at the end, once faults have healed and clients stopped: one leader serves, every
//! server that is up serves under it and has applied every committed txn.

use super::Entropy;
use crate::zab::broadcast::{
    epoch_of, make_zxid, Effect, Leader, LeaderPhase, Learner, LearnerPhase, Limits, Msg, Zxid,
};
use crate::zab::election::{Election, Notification, Output, PeerState, Timing};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// A txn: its zxid and the client's value.
type Entry = (Zxid, u64);

const LIMITS: Limits = Limits {
    tick_ms: 100,
    init_ms: 1_000,
    sync_ms: 500,
    window_max: 1_000,
};

enum Role {
    Looking,
    Connecting { leader: i64, since_ms: u64 },
    Leading(Box<Leader<u64>>),
    Learning { core: Learner, conn: u64 },
}

struct Node {
    id: i64,
    observer: bool,
    up: bool,
    disk: Vec<Entry>,
    log: Vec<Entry>,
    applied: Vec<Entry>,
    accepted_epoch: i64,
    current_epoch: i64,
    election: Election,
    role: Role,
    serving: bool,
    /// Messages waiting for the next sync.
    after_sync: Vec<(i64, Msg<u64>)>,
    sync_at_ms: Option<u64>,
    /// Leader: each learner's connection.
    conns: BTreeMap<i64, u64>,
}

impl Node {
    fn last_logged(&self) -> Zxid {
        self.log.last().map_or(0, |e| e.0)
    }
    fn applied_last(&self) -> Zxid {
        self.applied.last().map_or(0, |e| e.0)
    }
}

enum Payload {
    Vote(Notification),
    Zab {
        conn: u64,
        from: i64,
        msg: Msg<u64>,
        /// The leader's applied state, with `Snap`.
        state: Option<Vec<Entry>>,
    },
    /// The other end closed `conn`.
    Closed {
        conn: u64,
        from: i64,
    },
}

struct InFlight {
    at_ms: u64,
    seq: u64,
    to: i64,
    payload: Payload,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at_ms, self.seq) == (o.at_ms, o.seq)
    }
}
impl Eq for InFlight {}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at_ms, o.seq).cmp(&(self.at_ms, self.seq)) // min-heap
    }
}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// What must hold across the ensemble; the first failure is kept.
#[derive(Default)]
struct Oracle {
    committed: Vec<Entry>,
    epoch_leader: BTreeMap<i64, i64>,
    established: Vec<(i64, i64)>,
    violation: Option<(u64, String)>,
}

impl Oracle {
    fn fail(&mut self, now: u64, why: String) {
        if self.violation.is_none() {
            self.violation = Some((now, why));
        }
    }

    /// A leader committed `e`.
    fn commit(&mut self, now: u64, leader: i64, e: Entry) {
        match self.committed.binary_search_by_key(&e.0, |c| c.0) {
            Ok(k) if self.committed[k] != e => self.fail(
                now,
                format!(
                    "leader {leader} commits {e:?} where {:?} was committed",
                    self.committed[k]
                ),
            ),
            Ok(_) => {}
            Err(k) if k != self.committed.len() => self.fail(
                now,
                format!("leader {leader} commits {e:?} behind later commits"),
            ),
            Err(_) => self.committed.push(e),
        }
    }

    /// A leader serves: its whole log is the new epoch's committed history.
    fn establish(&mut self, now: u64, leader: i64, epoch: i64, log: &[Entry]) {
        if let Some(other) = self.epoch_leader.insert(epoch, leader) {
            if other != leader {
                self.fail(
                    now,
                    format!("epoch {epoch} has two leaders: {other} and {leader}"),
                );
            }
        }
        self.established.push((epoch, leader));
        let n = self.committed.len();
        if log.len() < n || log[..n] != self.committed[..] {
            let missing = self.committed.iter().find(|e| !log.contains(e));
            self.fail(
                now,
                format!(
                    "leader {leader} of epoch {epoch} lacks committed txns (first missing: \
                     {missing:?}) or holds others between them"
                ),
            );
            return;
        }
        self.committed = log.to_vec();
    }

    /// A serving server's applied state from index `from` on must match the commits.
    fn check_applied(&mut self, now: u64, id: i64, applied: &[Entry], from: usize) {
        for (k, e) in applied.iter().enumerate().skip(from) {
            if self.committed.get(k) != Some(e) {
                self.fail(
                    now,
                    format!(
                        "server {id} applied {e:?} at position {k}, where the committed \
                         sequence has {:?}",
                        self.committed.get(k)
                    ),
                );
                return;
            }
        }
    }
}

struct Net {
    wire: BinaryHeap<InFlight>,
    seq: u64,
    messages: u64,
    entropy: Entropy,
    vote_loss_pct: u64,
    delay_ms_max: u64,
    /// When the last message of each connection arrives: connections are ordered.
    conn_at_ms: BTreeMap<u64, u64>,
    broken: BTreeSet<u64>,
    next_conn: u64,
    /// Syncs sent: diff, trunc, snap.
    syncs: [u64; 3],
}

impl Net {
    fn push(&mut self, at_ms: u64, to: i64, payload: Payload) {
        self.seq += 1;
        self.messages += 1;
        self.wire.push(InFlight {
            at_ms,
            seq: self.seq,
            to,
            payload,
        });
    }
    fn delay(&mut self) -> u64 {
        1 + self.entropy.below(self.delay_ms_max)
    }
    fn send_on(&mut self, now: u64, conn: u64, to: i64, payload: Payload) {
        if self.broken.contains(&conn) {
            return;
        }
        let at = (now + self.delay()).max(self.conn_at_ms.get(&conn).copied().unwrap_or(0));
        self.conn_at_ms.insert(conn, at);
        self.push(at, to, payload);
    }
    /// `from` closes `conn`; the other end, `to`, learns it after a delay.
    fn close(&mut self, now: u64, conn: u64, from: i64, to: i64) {
        if self.broken.insert(conn) {
            let at = (now + self.delay()).max(self.conn_at_ms.get(&conn).copied().unwrap_or(0));
            self.push(at, to, Payload::Closed { conn, from });
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct ZabOutcome {
    pub seed: u64,
    pub violation: Option<(u64, String)>,
    pub settled: bool,
    pub elapsed_ms: u64,
    pub messages: u64,
    /// (epoch, leader) of every leader that served.
    pub established: Vec<(i64, i64)>,
    pub committed: usize,
    pub proposed: u64,
    pub crashes: usize,
    pub partitioned: bool,
    pub window_max: usize,
    /// Learners synced by diff, trunc and snap.
    pub syncs: [u64; 3],
    /// (id, up, role, applied, logged)
    pub servers: Vec<(i64, bool, &'static str, usize, usize)>,
}

impl ZabOutcome {
    /// ZAB's guarantees for this run; `Err` says which failed and how to replay it.
    pub fn check(&self) -> Result<(), super::Violation> {
        let replay = format!("replay: ZabSim::run({:#x})", self.seed);
        if let Some((at, why)) = &self.violation {
            return Err(super::Violation(format!(
                "seed {:#x}: at {at} ms: {why}\n{replay}\n{self:#?}",
                self.seed
            )));
        }
        if !self.settled {
            return Err(super::Violation(format!(
                "seed {:#x}: did not settle on one serving leader with every server \
                 caught up\n{replay}\n{self:#?}",
                self.seed
            )));
        }
        Ok(())
    }
}

pub struct ZabSim {
    nodes: Vec<Node>,
    net: Net,
    oracle: Oracle,
    voters: Vec<i64>,
    limits: Limits,
    partition: Option<(u64, u64, u64)>,
}

impl ZabSim {
    /// Runs one seeded ensemble to the end.
    pub fn run(seed: u64) -> ZabOutcome {
        let mut e = Entropy::new(seed);
        let voters_n = [3, 3, 5, 5, 7][e.below(5) as usize];
        let observers_n = e.below(3) as usize;
        let voters: Vec<i64> = (1..=voters_n as i64).collect();
        let observers: Vec<i64> = (voters_n as i64 + 1..=(voters_n + observers_n) as i64).collect();
        let window_max = [2, 5, 1_000][e.below(3) as usize];
        let limits = Limits {
            window_max,
            ..LIMITS
        };
        // A common history of epoch 1, of which each server logged a prefix.
        let history: Vec<Entry> = (1..=e.below(8) as i64)
            .map(|c| (make_zxid(1, c), 1_000_000 + c as u64))
            .collect();
        let mut nodes = Vec::new();
        for id in voters.iter().chain(observers.iter()).copied() {
            let n = e.below(history.len() as u64 + 1) as usize;
            let log = history[..n].to_vec();
            let epoch = i64::from(!history.is_empty());
            nodes.push(Node {
                id,
                observer: id > voters_n as i64,
                up: true,
                disk: log.clone(),
                applied: log.clone(),
                log,
                accepted_epoch: epoch,
                current_epoch: epoch,
                election: Election::new(id, voters.clone(), observers.clone(), Timing::default()),
                role: Role::Looking,
                serving: false,
                after_sync: Vec::new(),
                sync_at_ms: None,
                conns: BTreeMap::new(),
            });
        }
        // Faults: a minority of crashes (or any, briefly), a partition in a third of runs.
        let mut crashes: Vec<(u64, usize, u64)> = Vec::new();
        let crash_n = e.below(voters_n as u64);
        for _ in 0..crash_n {
            crashes.push((
                e.below(6_000),
                e.below(nodes.len() as u64) as usize,
                100 + e.below(3_000),
            ));
        }
        let partition = (e.below(3) == 0).then(|| {
            let from = e.below(5_000);
            (from, from + 200 + e.below(3_000), e.next_u64())
        });
        let heal_ms = crashes
            .iter()
            .map(|&(at, _, d)| at + d)
            .chain(partition.map(|p| p.1))
            .max()
            .unwrap_or(0);
        let quiet_ms = heal_ms.max(3_000) + 1_000;
        let propose_every = 1 + e.below(20);
        let vote_loss_pct = if e.below(2) == 0 { 0 } else { e.below(20) };
        let delay_ms_max = 1 + e.below(15);
        let mut sim = ZabSim {
            nodes,
            net: Net {
                wire: BinaryHeap::new(),
                seq: 0,
                messages: 0,
                entropy: e,
                vote_loss_pct,
                delay_ms_max,
                conn_at_ms: BTreeMap::new(),
                broken: BTreeSet::new(),
                next_conn: 1,
                syncs: [0; 3],
            },
            oracle: Oracle::default(),
            voters,
            limits,
            partition,
        };
        for i in 0..sim.nodes.len() {
            sim.look(0, i);
        }
        let mut now = 0u64;
        let mut proposed = 0u64;
        let mut settled = false;
        // Lost votes back the resend interval off to 60 s: give liveness time.
        let deadline_ms = quiet_ms + 600_000;
        while now < deadline_ms && sim.oracle.violation.is_none() {
            for &(at, i, down_ms) in &crashes {
                if now == at && sim.nodes[i].up {
                    sim.crash(now, i);
                }
                if now == at + down_ms && !sim.nodes[i].up {
                    sim.restart(now, i);
                }
            }
            if now < quiet_ms && sim.net.entropy.below(propose_every) == 0 {
                let leaders: Vec<usize> = (0..sim.nodes.len())
                    .filter(|&i| {
                        sim.nodes[i].up
                            && matches!(&sim.nodes[i].role, Role::Leading(l) if l.phase() == LeaderPhase::Broadcast)
                    })
                    .collect();
                if !leaders.is_empty() {
                    let i = leaders[sim.net.entropy.below(leaders.len() as u64) as usize];
                    proposed += 1;
                    sim.propose(now, i, proposed);
                }
            }
            for i in 0..sim.nodes.len() {
                if sim.nodes[i].up && sim.nodes[i].sync_at_ms.is_some_and(|t| t <= now) {
                    sim.sync(now, i);
                }
            }
            while sim.net.wire.peek().is_some_and(|m| m.at_ms <= now) {
                let m = sim.net.wire.pop().unwrap();
                sim.deliver(now, m);
            }
            for i in 0..sim.nodes.len() {
                if sim.nodes[i].up {
                    sim.tick(now, i);
                }
            }
            if now > quiet_ms && now.is_multiple_of(10) && sim.settled() {
                settled = true;
                break;
            }
            now += 1;
        }
        let servers = sim
            .nodes
            .iter()
            .map(|n| {
                let role = match &n.role {
                    Role::Looking => "looking",
                    Role::Connecting { .. } => "connecting",
                    Role::Leading(_) => "leading",
                    Role::Learning { .. } => "learning",
                };
                (n.id, n.up, role, n.applied.len(), n.log.len())
            })
            .collect();
        ZabOutcome {
            seed,
            violation: sim.oracle.violation.take(),
            settled,
            elapsed_ms: now,
            messages: sim.net.messages,
            established: std::mem::take(&mut sim.oracle.established),
            committed: sim.oracle.committed.len(),
            proposed,
            crashes: crashes.len(),
            partitioned: partition.is_some(),
            window_max,
            syncs: sim.net.syncs,
            servers,
        }
    }

    fn cut(&self, now: u64, a: i64, b: i64) -> bool {
        let side = |id: i64, mask: u64| (mask >> (id as u64 % 64)) & 1;
        self.partition.is_some_and(|(from, to, mask)| {
            (from..=to).contains(&now) && side(a, mask) != side(b, mask)
        })
    }

    fn settled(&self) -> bool {
        let up: Vec<&Node> = self.nodes.iter().filter(|n| n.up).collect();
        let leaders: Vec<&Node> = up
            .iter()
            .copied()
            .filter(|n| {
                matches!(&n.role, Role::Leading(l)
                    if l.phase() == LeaderPhase::Broadcast && l.committed() == l.last())
            })
            .collect();
        let [leader] = leaders[..] else {
            return false;
        };
        up.iter().all(|n| {
            n.serving
                && n.applied == self.oracle.committed
                && (n.id == leader.id
                    || matches!(&n.role, Role::Learning { core, .. }
                        if core.leader() == leader.id && core.phase() == LearnerPhase::Serving))
        })
    }

    /// Back to LOOKING: the node's last logged zxid and current epoch are its vote.
    fn look(&mut self, now: u64, i: usize) {
        let n = &mut self.nodes[i];
        n.role = Role::Looking;
        n.serving = false;
        n.after_sync.clear();
        // What was logged and not applied is applied now (ZooKeeper fast-forwards).
        n.applied = n.log.clone();
        let outs = n.election.start(now, n.last_logged(), n.current_epoch);
        self.election_out(now, i, outs);
    }

    fn election_out(&mut self, now: u64, i: usize, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Send { to, msg } => {
                    if self.net.entropy.below(100) < self.net.vote_loss_pct {
                        continue;
                    }
                    let at = now + self.net.delay();
                    self.net.push(at, to, Payload::Vote(msg));
                }
                Output::Decided { state, vote, .. } => {
                    let n = &mut self.nodes[i];
                    if state == PeerState::Leading {
                        let keep = n.log.len().min(self.limits.window_max);
                        let tail = n.log[n.log.len() - keep..].to_vec();
                        let from = if keep < n.log.len() {
                            n.log[n.log.len() - keep - 1].0
                        } else {
                            0
                        };
                        let mut core = Leader::new(
                            n.id,
                            self.voters.clone(),
                            n.accepted_epoch,
                            n.current_epoch,
                            from,
                            tail,
                            now,
                            self.limits,
                        );
                        let first = core.start();
                        n.role = Role::Leading(Box::new(core));
                        self.perform(now, i, first, None);
                    } else {
                        n.role = Role::Connecting {
                            leader: vote.leader,
                            since_ms: now,
                        };
                    }
                }
            }
        }
    }

    fn crash(&mut self, now: u64, i: usize) {
        self.close_all(now, i);
        let n = &mut self.nodes[i];
        n.up = false;
        n.role = Role::Looking;
        n.serving = false;
        n.log = n.disk.clone();
        n.applied.clear();
        n.after_sync.clear();
        n.sync_at_ms = None;
    }

    fn restart(&mut self, now: u64, i: usize) {
        let n = &mut self.nodes[i];
        n.up = true;
        let observers: Vec<i64> = self
            .nodes
            .iter()
            .filter(|n| n.observer)
            .map(|n| n.id)
            .collect();
        self.nodes[i].election = Election::new(
            self.nodes[i].id,
            self.voters.clone(),
            observers,
            Timing::default(),
        );
        self.look(now, i);
    }

    /// Closes every learner link of node `i`.
    fn close_all(&mut self, now: u64, i: usize) {
        let id = self.nodes[i].id;
        let conns: Vec<(i64, u64)> = std::mem::take(&mut self.nodes[i].conns)
            .into_iter()
            .collect();
        for (peer, c) in conns {
            self.net.close(now, c, id, peer);
        }
        if let Role::Learning { core, conn } = &self.nodes[i].role {
            let (leader, conn) = (core.leader(), *conn);
            self.net.close(now, conn, id, leader);
        }
    }

    fn abandon(&mut self, now: u64, i: usize) {
        self.close_all(now, i);
        self.look(now, i);
    }

    fn propose(&mut self, now: u64, i: usize, value: u64) {
        let Role::Leading(l) = &mut self.nodes[i].role else {
            return;
        };
        let effects = match l.next_zxid() {
            Some(z) => {
                let effects = l.propose(z, value);
                let n = &mut self.nodes[i];
                n.log.push((z, value));
                n.sync_at_ms.get_or_insert(now + self.net.entropy.below(4));
                effects
            }
            None => l.abandon_rollover(),
        };
        self.perform(now, i, effects, None);
    }

    /// The disk catches up with the log; what waited for it goes out.
    fn sync(&mut self, now: u64, i: usize) {
        let n = &mut self.nodes[i];
        n.sync_at_ms = None;
        n.disk = n.log.clone();
        let sends: Vec<Effect<u64>> = std::mem::take(&mut n.after_sync)
            .into_iter()
            .map(|(to, msg)| Effect::Send { to, msg })
            .collect();
        let last = n.last_logged();
        self.perform(now, i, sends, None);
        if let Role::Leading(l) = &mut self.nodes[i].role {
            let effects = l.persisted(last);
            self.perform(now, i, effects, None);
        }
    }

    fn deliver(&mut self, now: u64, m: InFlight) {
        let Some(i) = self.nodes.iter().position(|n| n.id == m.to) else {
            return;
        };
        if !self.nodes[i].up {
            return;
        }
        match m.payload {
            Payload::Vote(v) => {
                if self.cut(now, v.from, m.to) {
                    return;
                }
                let outs = self.nodes[i].election.on_notification(now, v);
                self.election_out(now, i, outs);
            }
            Payload::Closed { conn, from } => {
                let n = &mut self.nodes[i];
                let ours = n.conns.get(&from) == Some(&conn);
                match &mut n.role {
                    Role::Learning { conn: c, .. } if *c == conn => self.abandon(now, i),
                    Role::Leading(l) if ours => {
                        l.disconnected(from);
                        n.conns.remove(&from);
                    }
                    _ => {}
                }
            }
            Payload::Zab {
                conn,
                from,
                msg,
                state,
            } => {
                if self.net.broken.contains(&conn) {
                    return;
                }
                if self.cut(now, from, m.to) {
                    // Lost on a TCP link: the link is dead from here on.
                    self.net.broken.insert(conn);
                    return;
                }
                let n = &mut self.nodes[i];
                let ours = n.conns.get(&from) == Some(&conn);
                let effects = match &mut n.role {
                    Role::Leading(l) if ours => l.on_message(now, from, msg),
                    Role::Learning { core, conn: c } if *c == conn => core.on_message(now, msg),
                    _ => return,
                };
                self.perform(now, i, effects, state);
            }
        }
    }

    fn tick(&mut self, now: u64, i: usize) {
        let effects = match &mut self.nodes[i].role {
            Role::Looking => {
                let outs = self.nodes[i].election.on_tick(now);
                self.election_out(now, i, outs);
                return;
            }
            Role::Connecting { leader, since_ms } => {
                let (leader, since_ms) = (*leader, *since_ms);
                if !now.is_multiple_of(50) {
                    return;
                }
                let id = self.nodes[i].id;
                let target = self.nodes.iter().position(|n| n.id == leader);
                let open = target.is_some_and(|t| {
                    self.nodes[t].up
                        && matches!(self.nodes[t].role, Role::Leading(_))
                        && !self.cut(now, id, leader)
                });
                if let (true, Some(t)) = (open, target) {
                    let conn = self.net.next_conn;
                    self.net.next_conn += 1;
                    if let Some(old) = self.nodes[t].conns.insert(id, conn) {
                        self.net.broken.insert(old);
                        if let Role::Leading(l) = &mut self.nodes[t].role {
                            l.disconnected(id);
                        }
                    }
                    let n = &mut self.nodes[i];
                    n.applied = n.log.clone();
                    let core = Learner::new(
                        leader,
                        n.observer,
                        n.accepted_epoch,
                        n.current_epoch,
                        n.last_logged(),
                        now,
                        self.limits,
                    );
                    let effects = core.start();
                    n.role = Role::Learning { core, conn };
                    effects
                } else if now > since_ms + self.limits.init_ms {
                    self.look(now, i);
                    return;
                } else {
                    return;
                }
            }
            Role::Leading(l) => l.on_tick(now),
            Role::Learning { core, .. } => core.on_tick(now),
        };
        self.perform(now, i, effects, None);
    }

    /// Carries out a core's effects for node `i`, in order.
    fn perform(
        &mut self,
        now: u64,
        i: usize,
        effects: Vec<Effect<u64>>,
        mut state: Option<Vec<Entry>>,
    ) {
        for effect in effects {
            let id = self.nodes[i].id;
            match effect {
                Effect::Send { to, msg } => {
                    let conn = match &self.nodes[i].role {
                        Role::Leading(_) => self.nodes[i].conns.get(&to).copied(),
                        Role::Learning { conn, .. } => Some(*conn),
                        _ => None,
                    };
                    let Some(conn) = conn else { continue };
                    let snap = match msg {
                        Msg::Diff { .. } => {
                            self.net.syncs[0] += 1;
                            None
                        }
                        Msg::Trunc { .. } => {
                            self.net.syncs[1] += 1;
                            None
                        }
                        Msg::Snap { zxid } => {
                            self.net.syncs[2] += 1;
                            if self.nodes[i].applied_last() != zxid {
                                let have = self.nodes[i].applied_last();
                                self.oracle.fail(
                                    now,
                                    format!("leader {id} sends a snapshot at {zxid:#x} of state at {have:#x}"),
                                );
                            }
                            Some(self.nodes[i].applied.clone())
                        }
                        _ => None,
                    };
                    self.net.send_on(
                        now,
                        conn,
                        to,
                        Payload::Zab {
                            conn,
                            from: id,
                            msg,
                            state: snap,
                        },
                    );
                }
                Effect::SendAfterSync { to, msg } => {
                    let n = &mut self.nodes[i];
                    n.after_sync.push((to, msg));
                    n.sync_at_ms.get_or_insert(now + self.net.entropy.below(4));
                }
                Effect::PersistAcceptedEpoch(e) => self.nodes[i].accepted_epoch = e,
                Effect::PersistCurrentEpoch(e) => self.nodes[i].current_epoch = e,
                Effect::Append { zxid, txn } => {
                    let n = &mut self.nodes[i];
                    if zxid <= n.last_logged() {
                        let last = n.last_logged();
                        self.oracle.fail(
                            now,
                            format!("server {id} appends {zxid:#x} after {last:#x}"),
                        );
                        return;
                    }
                    n.log.push((zxid, txn));
                    n.sync_at_ms.get_or_insert(now + self.net.entropy.below(4));
                }
                Effect::Truncate { zxid } => {
                    let n = &mut self.nodes[i];
                    n.log.retain(|e| e.0 <= zxid);
                    n.applied = n.log.clone();
                }
                Effect::InstallSnapshot { .. } => {
                    let n = &mut self.nodes[i];
                    n.log = state.take().expect("a snapshot arrives with its state");
                    n.applied = n.log.clone();
                }
                Effect::Apply { zxid } => {
                    let n = &mut self.nodes[i];
                    let from = n.applied.len();
                    let after = n.applied_last();
                    let new: Vec<Entry> = n
                        .log
                        .iter()
                        .filter(|e| e.0 > after && e.0 <= zxid)
                        .copied()
                        .collect();
                    if new.last().map(|e| e.0) != Some(zxid) {
                        self.oracle.fail(
                            now,
                            format!("server {id} applies up to {zxid:#x}, which it did not log"),
                        );
                        return;
                    }
                    n.applied.extend(new.iter().copied());
                    if matches!(n.role, Role::Leading(_)) {
                        for e in new {
                            self.oracle.commit(now, id, e);
                        }
                    }
                    let n = &self.nodes[i];
                    if n.serving {
                        self.oracle.check_applied(now, id, &n.applied, from);
                    }
                }
                Effect::Serve => {
                    let n = &mut self.nodes[i];
                    n.serving = true;
                    if let Role::Leading(l) = &n.role {
                        let epoch = l.epoch();
                        assert_eq!(epoch, epoch_of(make_zxid(epoch, 0)));
                        self.oracle.establish(now, id, epoch, &n.log);
                    }
                    let n = &self.nodes[i];
                    self.oracle.check_applied(now, id, &n.applied, 0);
                }
                Effect::Drop { id: peer } => {
                    if let Some(c) = self.nodes[i].conns.remove(&peer) {
                        self.net.close(now, c, id, peer);
                    }
                }
                Effect::Abandon { .. } => {
                    self.abandon(now, i);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ZabSim;

    /// Seeds swept in CI; a failure prints its seed and `ZabSim::run(seed)` replays it.
    /// `PADDOCK_ZAB_SEEDS=N` sweeps more.
    #[test]
    fn zab_sweep() {
        let n = super::super::seeds("PADDOCK_ZAB_SEEDS", 3000);
        let mut committed = 0;
        let mut syncs = [0; 3];
        for seed in 0..n {
            let out = ZabSim::run(seed);
            if let Err(e) = out.check() {
                panic!("{e}");
            }
            committed += out.committed;
            for (total, k) in syncs.iter_mut().zip(out.syncs) {
                *total += k;
            }
        }
        // The sweep exercises commits and every kind of sync, not only elections.
        assert!(
            committed as u64 > n * 50,
            "{committed} commits over {n} seeds"
        );
        assert!(
            syncs.iter().all(|&k| k * 100 > n),
            "syncs by diff/trunc/snap: {syncs:?}"
        );
    }

    /// Seeds that failed once, kept: 0x951 served uncommitted txns (a learner past the
    /// commit point synced by diff); 0x191d never settled (a newcomer could not join a
    /// leader whose followers had joined it from different election rounds).
    #[test]
    fn zab_regressions() {
        for seed in [0x951, 0x191d] {
            if let Err(e) = ZabSim::run(seed).check() {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn a_zab_seed_replays_exactly() {
        let a = ZabSim::run(7);
        let b = ZabSim::run(7);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}
