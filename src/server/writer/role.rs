//! What differs between the roles, in one place: each stage of the loop (mod.rs) that
//! depends on the role asks here. Each role's pipeline, as ZooKeeper's
//! `setupRequestProcessors` lists its processors:
//!
//! - standalone: prep → append → sync → apply → answer (standalone.rs);
//! - leader: prep → append → propose → sync → ack quorum → apply → answer; plus what
//!   learners forward (leader.rs);
//! - learner (follower, observer): forward → (the leader's proposal) append → sync → ack
//!   → (COMMIT) apply → answer (learner.rs);
//! - read-only (no quorum, `readonlymode.enabled`): read → answer; writes NotReadOnly
//!   (read_only.rs);
//! - looking, connecting: nothing is served; connections close.
//!
//! The ZAB core's effects are carried out in ensemble.rs, for leader and learner alike.

use super::leader::LeaderTerm;
use super::learner::LearnerTerm;
use super::*;
use crate::zab::broadcast::LeaderPhase;

/// What this server is in its ensemble now.
pub enum Role {
    Standalone,
    Looking,
    Connecting { leader: i64 },
    Leading(Box<LeaderTerm>),
    Learning(Box<LearnerTerm>),
}

/// Server modes as `Shared::mode` holds them.
pub mod mode {
    pub const STANDALONE: u8 = 0;
    pub const LOOKING: u8 = 1;
    pub const LEADING: u8 = 2;
    pub const FOLLOWING: u8 = 3;
    pub const OBSERVING: u8 = 4;
}

impl<L: Storage> WriterLoop<L> {
    /// Clients are served (standalone, or a leader or learner that is up to date).
    pub(super) fn serving(&self) -> bool {
        self.shared.serving.load(Relaxed)
    }

    pub(super) fn set_mode(&self, m: u8, serving: bool) {
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

    /// Stage 2, a client's request once its session is checked: staged here (standalone,
    /// leader), forwarded (learner), or not served at all (between terms).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_request(
        &mut self,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        opcode: i32,
        req: Request,
        ids: Arc<[Id]>,
        raw: Option<Vec<u8>>,
    ) {
        match &self.role {
            Role::Standalone => self.local_request(conn, session, xid, opcode, req, ids),
            Role::Leading(_) => {
                let me = self.ens.as_ref().map_or(0, |e| e.my_id);
                if req.is_write() && !self.owned_by(session, me) {
                    self.session_moved_away(conn, session);
                    return;
                }
                self.local_request(conn, session, xid, opcode, req, ids)
            }
            Role::Learning(_) => self.learner_request(conn, session, xid, opcode, req, &ids, raw),
            // Between terms: the client finds a server that serves.
            Role::Looking | Role::Connecting { .. } => self.send(conn, ToReactor::Close { conn }),
        }
    }

    /// Stage 2, a new session: logged here (standalone, leader) or by the leader
    /// (learner), and answered when its txn commits.
    pub(super) fn route_new_session(
        &mut self,
        conn: ConnId,
        timeout: i32,
        read_only: Option<bool>,
    ) {
        let id = self.sessions.next_session_id();
        let waiter = Waiter::Connect { conn, read_only };
        if self.is_learner() {
            let body = timeout.to_be_bytes();
            let waiter = Forwarded::Waiter(waiter);
            self.forward(id, 0, op::CREATE_SESSION, &body, &[], waiter);
        } else {
            self.stage_server_txn(id, 0, Txn::CreateSession { timeout }, waiter);
        }
    }

    /// Stage 2, a valid session resumed on `conn`: at once here (standalone, leader), or
    /// once the leader revalidates it (learner).
    pub(super) fn route_reconnect(
        &mut self,
        conn: ConnId,
        id: SessionId,
        timeout: i32,
        read_only: Option<bool>,
    ) {
        if self.is_learner() {
            self.ask_revalidate(conn, id, timeout, read_only);
            return;
        }
        if let Some(me) = self.ens.as_ref().map(|e| e.my_id) {
            // A leader notes that the session is (again) attached to itself.
            self.set_owner(id, me);
        }
        self.resume_session(conn, id, timeout, read_only);
    }

    /// Stage 2, after a txn is appended: an ensemble member keeps it for a leader's diff
    /// window, and a leader proposes it.
    pub(super) fn after_append(&mut self, zxid: Zxid, record: &[u8]) {
        if self.ens.is_some() {
            self.proposed(zxid, record);
        }
    }

    /// Stage 5 → 6, after the sync made everything appended up to `durable` durable.
    pub(super) fn after_sync(&mut self, durable: Zxid) {
        match self.role {
            Role::Standalone => self.apply_upto(durable),
            _ => self.synced(durable),
        }
    }

    /// The log has no space: standalone refuses the batch and goes on serving reads; an
    /// ensemble member, whose earlier proposals may be out already, never takes a zxid
    /// back: it leaves its role (and stops if what it appended cannot reach the log:
    /// `abandon`).
    pub(super) fn out_of_space(&mut self, e: &LogError) {
        if self.ens.is_some() {
            self.abandon("the txn log is out of space");
        } else {
            self.refuse_batch(e);
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
}
