//! Fast leader election (ZooKeeper's `FastLeaderElection`, electionAlg=3), as a pure
//! state machine: notifications and ticks in, messages to send and a decision out.
//!
//! Main types: `Election` (one server's election), `Notification` (the vote message of
//! the election port), `Vote` (proposed leader, its last zxid, its epoch).
//!
//! Holds:
//! - Votes are ordered by (peer epoch, zxid, server id): `Vote::beats`.
//! - A LOOKING server decides only when a quorum of voters (more than half) backs its
//!   current proposal and no better vote arrives within `finalize_wait_ms`; or when a
//!   quorum reports, from outside the election, one leader that itself says LEADING.
//! - Observers propose nothing that counts: only voters' votes are tallied.
//! - Time comes in as `now_ms`; nothing here reads a clock, a socket or randomness.
//!
//! Not here: the election port's connections and framing (later), what a leader or
//! follower does once decided (zab/).

use std::collections::BTreeMap;

/// A server's state, as the election port's `int state` encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Looking = 0,
    Following = 1,
    Leading = 2,
    Observing = 3,
}

/// A proposed leader: its id, its last logged zxid and its current epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub leader: i64,
    pub zxid: i64,
    pub peer_epoch: i64,
}

impl Vote {
    /// ZooKeeper's `totalOrderPredicate`: higher epoch, then higher zxid, then higher id.
    pub fn beats(&self, other: &Vote) -> bool {
        (self.peer_epoch, self.zxid, self.leader) > (other.peer_epoch, other.zxid, other.leader)
    }
}

/// The election port's message (fields as in ZooKeeper's notification, version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub from: i64,
    pub state: PeerState,
    pub vote: Vote,
    /// The sender's logical clock: which round of election it is in.
    pub election_epoch: i64,
}

/// What the election asks its shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        to: i64,
        msg: Notification,
    },
    /// The election is over for this server: lead, follow or observe `vote.leader`.
    Decided {
        state: PeerState,
        vote: Vote,
        election_epoch: i64,
    },
}

/// Timing, in ms (ZooKeeper's defaults: finalizeWait 200, notification interval 200 ms
/// backing off to 60 s).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub finalize_wait_ms: u64,
    pub resend_ms_min: u64,
    pub resend_ms_max: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            finalize_wait_ms: 200,
            resend_ms_min: 200,
            resend_ms_max: 60_000,
        }
    }
}

/// One server's fast leader election. Owned by that server's quorum thread.
pub struct Election {
    my_id: i64,
    voters: Vec<i64>,
    observers: Vec<i64>,
    timing: Timing,
    state: PeerState,
    logical_clock: i64,
    /// This server's own vote (its last logged zxid and epoch), for re-proposing itself.
    own: Vote,
    proposal: Vote,
    /// Votes of this round: (vote, election epoch, sender's state).
    received: BTreeMap<i64, (Vote, i64, PeerState)>,
    /// Votes of servers already out of the election: (vote, election epoch, state).
    decided: BTreeMap<i64, (Vote, i64, PeerState)>,
    /// When a quorum backed the proposal: decide at this time unless a better vote comes.
    finalize_at_ms: Option<u64>,
    resend_at_ms: u64,
    resend_ms: u64,
}

impl Election {
    pub fn new(my_id: i64, voters: Vec<i64>, observers: Vec<i64>, timing: Timing) -> Election {
        assert!(
            voters.contains(&my_id) || observers.contains(&my_id),
            "server {my_id} is in the server list"
        );
        let own = Vote {
            leader: my_id,
            zxid: 0,
            peer_epoch: 0,
        };
        Election {
            my_id,
            voters,
            observers,
            timing,
            state: PeerState::Looking,
            logical_clock: 0,
            own,
            proposal: own,
            received: BTreeMap::new(),
            decided: BTreeMap::new(),
            finalize_at_ms: None,
            resend_at_ms: 0,
            resend_ms: timing.resend_ms_min,
        }
    }

    pub fn state(&self) -> PeerState {
        self.state
    }
    pub fn logical_clock(&self) -> i64 {
        self.logical_clock
    }
    pub fn proposal(&self) -> Vote {
        self.proposal
    }
    fn is_voter(&self, id: i64) -> bool {
        self.voters.contains(&id)
    }
    fn quorum(&self, ids: impl Iterator<Item = i64>) -> bool {
        let n = ids.filter(|id| self.is_voter(*id)).count();
        n * 2 > self.voters.len()
    }
    fn notification(&self) -> Notification {
        Notification {
            from: self.my_id,
            state: self.state,
            vote: self.proposal,
            election_epoch: self.logical_clock,
        }
    }
    fn broadcast(&self, out: &mut Vec<Output>) {
        let msg = self.notification();
        for &to in &self.voters {
            if to != self.my_id {
                out.push(Output::Send { to, msg });
            }
        }
    }

    /// Starts (or restarts) looking for a leader, with this server's last logged zxid and
    /// current epoch.
    pub fn start(&mut self, now_ms: u64, last_zxid: i64, current_epoch: i64) -> Vec<Output> {
        self.state = PeerState::Looking;
        self.logical_clock += 1;
        self.own = Vote {
            leader: self.my_id,
            zxid: last_zxid,
            peer_epoch: current_epoch,
        };
        // An observer proposes itself too, but no voter ever counts it.
        self.proposal = self.own;
        self.received.clear();
        self.decided.clear();
        self.finalize_at_ms = None;
        self.resend_ms = self.timing.resend_ms_min;
        self.resend_at_ms = now_ms + self.resend_ms;
        let mut out = Vec::new();
        if self.is_voter(self.my_id) {
            self.received.insert(
                self.my_id,
                (self.proposal, self.logical_clock, PeerState::Looking),
            );
        }
        self.broadcast(&mut out);
        self.check_quorum(now_ms);
        out
    }

    /// A notification from another server.
    pub fn on_notification(&mut self, now_ms: u64, n: Notification) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state != PeerState::Looking {
            // Out of the election: tell a LOOKING server who leads.
            if n.state == PeerState::Looking {
                out.push(Output::Send {
                    to: n.from,
                    msg: self.notification(),
                });
            }
            return out;
        }
        if n.state == PeerState::Looking && n.election_epoch < self.logical_clock {
            // A server behind us: show it the current round.
            out.push(Output::Send {
                to: n.from,
                msg: self.notification(),
            });
        }
        if !self.is_voter(n.from) || !self.is_voter(n.vote.leader) {
            return out;
        }
        match n.state {
            PeerState::Looking => {
                if n.election_epoch > self.logical_clock {
                    self.logical_clock = n.election_epoch;
                    self.received.clear();
                    self.finalize_at_ms = None;
                    self.proposal = if n.vote.beats(&self.own) {
                        n.vote
                    } else {
                        self.own
                    };
                    self.broadcast(&mut out);
                } else if n.election_epoch < self.logical_clock {
                    return out;
                } else if n.vote.beats(&self.proposal) {
                    self.proposal = n.vote;
                    self.finalize_at_ms = None;
                    self.broadcast(&mut out);
                }
                self.received
                    .insert(n.from, (n.vote, n.election_epoch, n.state));
                if self.is_voter(self.my_id) {
                    self.received.insert(
                        self.my_id,
                        (self.proposal, self.logical_clock, PeerState::Looking),
                    );
                }
                self.check_quorum(now_ms);
            }
            PeerState::Observing => {}
            PeerState::Following | PeerState::Leading => {
                if n.election_epoch == self.logical_clock {
                    self.received
                        .insert(n.from, (n.vote, n.election_epoch, n.state));
                    if self.backed(&self.received, n.vote, n.election_epoch, true) {
                        self.decide(n.vote, &mut out);
                        return out;
                    }
                }
                self.decided
                    .insert(n.from, (n.vote, n.election_epoch, n.state));
                if self.backed(&self.decided, n.vote, n.election_epoch, false) {
                    self.logical_clock = n.election_epoch;
                    self.decide(n.vote, &mut out);
                }
            }
        }
        out
    }

    /// A quorum of voters in `votes` backs `vote`, and ZooKeeper's `checkLeader` holds:
    /// a leader other than us says LEADING itself in `votes`; if it is us, the round is ours.
    /// `same_vote`: backers must hold the very vote (this round's tally); out of the
    /// election it is enough that they follow its leader. Servers that joined one
    /// leader's terms from different rounds report different votes for it, and a
    /// newcomer must still find it (found by the simulator, seed 0x191d); that leader
    /// says LEADING itself, and ZAB's discovery decides whether it really leads.
    fn backed(
        &self,
        votes: &BTreeMap<i64, (Vote, i64, PeerState)>,
        vote: Vote,
        election_epoch: i64,
        same_vote: bool,
    ) -> bool {
        let backers = votes
            .iter()
            .filter(|(_, (v, _, _))| {
                if same_vote {
                    *v == vote
                } else {
                    v.leader == vote.leader
                }
            })
            .map(|(id, _)| *id);
        if !self.quorum(backers) {
            return false;
        }
        if vote.leader == self.my_id {
            self.logical_clock == election_epoch
        } else {
            matches!(votes.get(&vote.leader), Some((_, _, PeerState::Leading)))
        }
    }

    fn check_quorum(&mut self, now_ms: u64) {
        let p = self.proposal;
        let backers = self
            .received
            .iter()
            .filter(|(_, (v, e, _))| *v == p && *e == self.logical_clock)
            .map(|(id, _)| *id);
        if self.quorum(backers) {
            if self.finalize_at_ms.is_none() {
                self.finalize_at_ms = Some(now_ms + self.timing.finalize_wait_ms);
            }
        } else {
            self.finalize_at_ms = None;
        }
    }

    fn decide(&mut self, vote: Vote, out: &mut Vec<Output>) {
        self.state = if vote.leader == self.my_id {
            PeerState::Leading
        } else if self.observers.contains(&self.my_id) {
            PeerState::Observing
        } else {
            PeerState::Following
        };
        self.proposal = vote;
        self.finalize_at_ms = None;
        out.push(Output::Decided {
            state: self.state,
            vote,
            election_epoch: self.logical_clock,
        });
    }

    /// Time passes: decide after the finalize wait, or re-send the vote (backing off).
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state != PeerState::Looking {
            return out;
        }
        if let Some(at) = self.finalize_at_ms {
            if now_ms >= at {
                let p = self.proposal;
                self.decide(p, &mut out);
                return out;
            }
        }
        if now_ms >= self.resend_at_ms {
            self.broadcast(&mut out);
            self.resend_ms = (self.resend_ms * 2).min(self.timing.resend_ms_max);
            self.resend_at_ms = now_ms + self.resend_ms;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_order_is_epoch_then_zxid_then_id() {
        let v = |leader, zxid, peer_epoch| Vote {
            leader,
            zxid,
            peer_epoch,
        };
        assert!(v(1, 0, 2).beats(&v(3, 99, 1)));
        assert!(v(1, 5, 1).beats(&v(3, 4, 1)));
        assert!(v(3, 5, 1).beats(&v(2, 5, 1)));
        assert!(!v(2, 5, 1).beats(&v(2, 5, 1)));
    }
}
