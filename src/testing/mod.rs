//! Deterministic, seeded simulation of ensembles, for tests.
//!
//! `ElectionSim` runs the fast leader election of every server of an ensemble over a
//! simulated network (random delays and reordering, lost messages, servers that are down)
//! on a simulated clock. Everything random comes from one seed, so a failing seed replays
//! exactly: `ElectionSim::run(seed)`.
//!
//! A decided leader that gets no quorum of followers within an init limit, and a follower
//! whose leader does not lead within a sync limit, look again, as in ZooKeeper (FLE alone
//! may elect a server only part of the ensemble follows when votes are late or lost).
//! Servers crash and come back, and partitions split the network, for a while in some
//! runs. Checked on every run (`Outcome::check`): never two leaders with a quorum of
//! followers each (no split brain); no leader behind a majority of the voters (by epoch,
//! then zxid); in the end, when every fault has healed, every server that is up follows
//! or observes one leader that has a quorum.
//!
//! `ZabSim` (zab.rs) runs whole ensembles past the election: discovery, sync and
//! broadcast with clients proposing, crashes that lose unsynced writes, and ZAB's safety
//! properties checked at every step.
//!
//! `ServerSim` (server.rs) runs whole servers, standalone and ensembles: the real
//! writers, sessions, watches, read path and ZAB core on a simulated clock, disk and
//! network, with seeded clients and their guarantees checked at every step, and the
//! bugs of `crate::mutation` each caught.

#[cfg(test)]
pub mod server;
mod zab;
#[cfg(test)]
pub use server::ServerSim;
pub use zab::{ZabOutcome, ZabSim};

use crate::zab::election::{Election, Notification, Output, PeerState, Timing, Vote};
use std::collections::BinaryHeap;

/// How many seeds a sweep runs: `var` from the environment, else `default`.
#[cfg(test)]
fn seeds(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64: the simulation's only source of randomness.
pub struct Entropy(u64);

impl Entropy {
    pub fn new(seed: u64) -> Entropy {
        Entropy(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One simulated server.
struct Sim {
    id: i64,
    up: bool,
    observer: bool,
    last_zxid: i64,
    epoch: i64,
    election: Election,
    decided: Option<(PeerState, Vote, i64)>,
    decided_at_ms: u64,
    /// Last time, as a leader, it had a quorum of followers (0: never).
    quorum_seen_ms: u64,
    start_at_ms: u64,
    started: bool,
}

/// How long a decided leader waits for a quorum of followers, and a follower for its
/// leader to lead, before going back to LOOKING (ZooKeeper: initLimit and syncLimit ticks).
const INIT_LIMIT_MS: u64 = 2_000;
const SYNC_LIMIT_MS: u64 = 2_000;

/// A message on the wire, ordered by delivery time (then by send order, for determinism).
#[derive(PartialEq, Eq)]
struct InFlight {
    at_ms: u64,
    seq: u64,
    to: i64,
    msg: Notification,
}

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

/// A decision: the state, the leader's vote, the election epoch.
pub type Decision = (PeerState, Vote, i64);
/// A server at the end of a run: (id, observer, up, own vote, decision).
pub type ServerEnd = (i64, bool, bool, Vote, Option<Decision>);

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    /// (id, observer, up, own vote, decision)
    pub servers: Vec<ServerEnd>,
    pub elapsed_ms: u64,
    pub messages: u64,
    /// Messages were lost in this run.
    pub lossy: bool,
    /// (election epoch, leader) of every leader that got a quorum of followers.
    pub established: Vec<(i64, i64)>,
    /// Elections started again after a leader found no quorum.
    pub restarts: u64,
    /// The first moment two leaders each had a quorum of followers, if ever.
    pub split_brain: Option<(u64, Vec<i64>)>,
}

/// A guarantee a simulated run broke: what, when, and how to replay the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Outcome {
    /// The election's guarantees for this run; `Err` says which failed and how to replay.
    pub fn check(&self) -> Result<(), Violation> {
        let fail = |why: String| {
            Err(Violation(format!(
                "seed {:#x}: {why}\n{self:#?}",
                self.seed
            )))
        };
        let up: Vec<_> = self.servers.iter().filter(|s| s.2).collect();
        let voters: Vec<_> = self.servers.iter().filter(|s| !s.1).collect();
        // Safety: never two leaders with a quorum each, and a leader is never behind the
        // quorum that elected it.
        if let Some((at, leaders)) = &self.split_brain {
            return fail(format!("at {at} ms leaders {leaders:?} each had a quorum"));
        }
        for &(_, leader) in &self.established {
            let own = voters.iter().find(|s| s.0 == leader).map(|s| s.3);
            let Some(own) = own else {
                return fail(format!("leader {leader} is no voter"));
            };
            let covered = voters
                .iter()
                .filter(|s| (s.3.peer_epoch, s.3.zxid) <= (own.peer_epoch, own.zxid))
                .count();
            if covered * 2 <= voters.len() {
                return fail(format!(
                    "leader {leader} ({own:?}) is behind a majority of the voters"
                ));
            }
        }
        // Liveness: in the end every server that is up follows (or observes) one leader,
        // which leads with a quorum.
        let Some(leader) = up.iter().find_map(|s| s.4.map(|(_, v, _)| v.leader)) else {
            return fail("nobody decided".into());
        };
        if !self.established.iter().any(|&(_, l)| l == leader) {
            return fail(format!("leader {leader} never had a quorum of followers"));
        }
        for (id, observer, _, _, decision) in &up {
            let Some((state, vote, _)) = decision else {
                return fail(format!("server {id} never decided"));
            };
            if vote.leader != leader {
                return fail(format!(
                    "server {id} ends with leader {} where another ends with {leader}",
                    vote.leader
                ));
            }
            let expected = if *observer {
                PeerState::Observing
            } else if *id == leader {
                PeerState::Leading
            } else {
                PeerState::Following
            };
            if *state != expected {
                return fail(format!(
                    "server {id} decided {state:?}, expected {expected:?}"
                ));
            }
        }
        Ok(())
    }
}

/// The simulated network: messages in flight, ordered by delivery time.
struct Net {
    wire: BinaryHeap<InFlight>,
    seq: u64,
    messages: u64,
    entropy: Entropy,
    loss_pct: u64,
    delay_ms_max: u64,
}

impl Net {
    /// Carries out what server `sim`'s election asked for: messages onto the wire (some
    /// lost, each delayed), a decision into `sim`.
    fn emit(&mut self, outs: Vec<Output>, sim: &mut Sim, now: u64) {
        for o in outs {
            match o {
                Output::Send { to, msg } => {
                    self.messages += 1;
                    if self.entropy.below(100) < self.loss_pct {
                        continue;
                    }
                    self.seq += 1;
                    self.wire.push(InFlight {
                        at_ms: now + 1 + self.entropy.below(self.delay_ms_max),
                        seq: self.seq,
                        to,
                        msg,
                    });
                }
                Output::Decided {
                    state,
                    vote,
                    election_epoch,
                } => {
                    assert!(sim.decided.is_none(), "one decision per election");
                    sim.decided = Some((state, vote, election_epoch));
                    sim.decided_at_ms = now;
                }
            }
        }
    }
}

/// Does `leader` (up and leading) have a quorum of the `voters_n` voters following it,
/// itself included?
fn has_quorum(sims: &[Sim], leader: i64, voters_n: usize) -> bool {
    let n = sims
        .iter()
        .filter(|s| s.up && !s.observer)
        .filter(|s| {
            s.id == leader
                || matches!(s.decided, Some((PeerState::Following, v, _)) if v.leader == leader)
        })
        .count();
    n * 2 > voters_n
}

/// A simulated ensemble running one leader election.
pub struct ElectionSim;

impl ElectionSim {
    /// One run: 3 to 7 voters, 0 to 2 observers, a minority of voters down from the start,
    /// random zxids and epochs, start times, delays (1-60 ms) and loss (0-30%), all from
    /// `seed`.
    pub fn run(seed: u64) -> Outcome {
        let mut e = Entropy::new(seed);
        let voters_n = 3 + e.below(5) as i64;
        let observers_n = e.below(3) as i64;
        // Half the runs lose messages (up to 30%).
        let loss_pct = if e.below(2) == 0 { 0 } else { 1 + e.below(30) };
        let delay_ms_max = 1 + e.below(60);
        let voters: Vec<i64> = (1..=voters_n).collect();
        let observers: Vec<i64> = (voters_n + 1..=voters_n + observers_n).collect();
        let down_max = (voters_n - 1) / 2;
        let down = e.below(down_max as u64 + 1) as i64;
        let mut sims: Vec<Sim> = voters
            .iter()
            .chain(observers.iter())
            .map(|&id| {
                let observer = id > voters_n;
                Sim {
                    id,
                    up: true,
                    observer,
                    // Few distinct values, so ties on epoch and zxid are common.
                    last_zxid: e.below(3) as i64,
                    epoch: e.below(2) as i64,
                    election: Election::new(
                        id,
                        voters.clone(),
                        observers.clone(),
                        Timing::default(),
                    ),
                    decided: None,
                    decided_at_ms: 0,
                    quorum_seen_ms: 0,
                    start_at_ms: e.below(500),
                    started: false,
                }
            })
            .collect();
        for _ in 0..down {
            let i = e.below(voters_n as u64) as usize;
            sims[i].up = false;
        }
        // Faults while it runs: in half the runs 1-3 servers crash for 0.1-3 s and come
        // back (a fresh election, the same data); in a quarter a partition splits the
        // servers for 0.2-4 s. All heal, so the run must end with one leader.
        let mut crashes: Vec<(u64, usize, u64)> = Vec::new();
        if e.below(2) == 0 {
            for _ in 0..1 + e.below(3) {
                let i = e.below(sims.len() as u64) as usize;
                if sims[i].up {
                    crashes.push((e.below(3_000), i, 100 + e.below(2_900)));
                }
            }
        }
        let partition = (e.below(4) == 0).then(|| {
            let from = e.below(2_000);
            (from, from + 200 + e.below(3_800), e.next_u64())
        });
        let side = |id: i64, mask: u64| (mask >> (id as u64 % 64)) & 1;
        let mut split_brain: Option<(u64, Vec<i64>)> = None;
        let mut net = Net {
            wire: BinaryHeap::new(),
            seq: 0,
            messages: 0,
            entropy: e,
            loss_pct,
            delay_ms_max,
        };
        let mut now = 0u64;
        let deadline_ms = 600_000;
        let mut established: Vec<(i64, i64)> = Vec::new();
        let mut restarts = 0u64;
        while now < deadline_ms {
            // Establishment, as ZAB's discovery decides it: a leader with a quorum of
            // voters following it (itself included) leads; one without after
            // INIT_LIMIT_MS, and a follower whose leader does not lead after
            // SYNC_LIMIT_MS, look again.
            for i in 0..sims.len() {
                let Some((state, vote, epoch)) = sims[i].decided else {
                    continue;
                };
                if !sims[i].up {
                    continue;
                }
                let waited = now - sims[i].decided_at_ms;
                let back = match state {
                    PeerState::Leading => {
                        let id = sims[i].id;
                        if has_quorum(&sims, id, voters.len()) {
                            if !established.contains(&(epoch, id)) {
                                established.push((epoch, id));
                            }
                            sims[i].quorum_seen_ms = now;
                            false
                        } else if sims[i].quorum_seen_ms > 0
                            && sims[i].quorum_seen_ms >= sims[i].decided_at_ms
                        {
                            // It led, and lost its quorum: it steps down after a sync limit.
                            now - sims[i].quorum_seen_ms >= SYNC_LIMIT_MS
                        } else {
                            waited >= INIT_LIMIT_MS
                        }
                    }
                    _ => {
                        let leads = sims.iter().any(|s| {
                            s.up && s.id == vote.leader
                                && matches!(s.decided, Some((PeerState::Leading, _, _)))
                        });
                        !leads && waited >= SYNC_LIMIT_MS
                    }
                };
                if back {
                    restarts += 1;
                    sims[i].decided = None;
                    let (z, ep) = (sims[i].last_zxid, sims[i].epoch);
                    let outs = sims[i].election.start(now, z, ep);
                    net.emit(outs, &mut sims[i], now);
                }
            }
            for &(at, i, down_ms) in &crashes {
                if now == at && sims[i].up {
                    sims[i].up = false;
                    sims[i].decided = None;
                    sims[i].started = false;
                }
                if now == at + down_ms && !sims[i].up {
                    sims[i].up = true;
                    sims[i].election = Election::new(
                        sims[i].id,
                        voters.clone(),
                        observers.clone(),
                        Timing::default(),
                    );
                    sims[i].start_at_ms = now;
                    sims[i].quorum_seen_ms = 0;
                }
            }
            // No split brain: at most one leader has a quorum of followers at any time.
            let with_quorum: Vec<i64> = sims
                .iter()
                .filter(|l| l.up && matches!(l.decided, Some((PeerState::Leading, _, _))))
                .filter(|l| has_quorum(&sims, l.id, voters.len()))
                .map(|l| l.id)
                .collect();
            if with_quorum.len() > 1 && split_brain.is_none() {
                split_brain = Some((now, with_quorum.clone()));
            }
            let healed = crashes.iter().all(|&(at, _, d)| now > at + d)
                && partition.is_none_or(|(_, to, _)| now > to);
            // Settled: every fault healed, and every server up follows (or observes, or
            // is) the one leader that has a quorum now.
            let settled = healed
                && with_quorum.len() == 1
                && sims.iter().filter(|s| s.up).all(|s| {
                    s.decided
                        .is_some_and(|(_, v, _)| v.leader == with_quorum[0])
                });
            if settled {
                break;
            }
            for sim in sims.iter_mut() {
                if sim.up && !sim.started && now >= sim.start_at_ms {
                    sim.started = true;
                    let outs = sim.election.start(now, sim.last_zxid, sim.epoch);
                    net.emit(outs, sim, now);
                }
            }
            while net.wire.peek().is_some_and(|m| m.at_ms <= now) {
                let m = net.wire.pop().unwrap();
                let Some(i) = sims.iter().position(|s| s.id == m.to) else {
                    continue;
                };
                if !sims[i].up || !sims[i].started {
                    continue; // lost: nobody listens yet
                }
                if let Some((from, to, mask)) = partition {
                    if (from..=to).contains(&now) && side(m.msg.from, mask) != side(m.to, mask) {
                        continue; // lost: the partition
                    }
                }
                let outs = sims[i].election.on_notification(now, m.msg);
                net.emit(outs, &mut sims[i], now);
            }
            for sim in sims.iter_mut() {
                if sim.up && sim.started {
                    let outs = sim.election.on_tick(now);
                    net.emit(outs, sim, now);
                }
            }
            now += 1;
        }
        Outcome {
            seed,
            servers: sims
                .iter()
                .map(|s| {
                    let own = Vote {
                        leader: s.id,
                        zxid: s.last_zxid,
                        peer_epoch: s.epoch,
                    };
                    (s.id, s.observer, s.up, own, s.decided)
                })
                .collect(),
            elapsed_ms: now,
            messages: net.messages,
            lossy: loss_pct > 0,
            established,
            restarts,
            split_brain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ElectionSim;

    /// A few thousand seeds; a failure prints its seed, and `ElectionSim::run(seed)`
    /// replays it exactly. `PADDOCK_SIM_SEEDS=N` sweeps more.
    #[test]
    fn election_sweep() {
        let n = super::seeds("PADDOCK_SIM_SEEDS", 3000);
        for seed in 0..n {
            let out = ElectionSim::run(seed);
            if let Err(e) = out.check() {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn a_seed_replays_exactly() {
        let a = ElectionSim::run(42);
        let b = ElectionSim::run(42);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}
