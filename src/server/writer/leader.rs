//! The leader's part. Its pipeline, as ZooKeeper's LeaderZooKeeperServer lists its
//! processors: prep (stage) → append → propose to the followers → sync → ack quorum
//! (the ZAB core) → apply → answer. It also stages the requests learners forward (their
//! writes, connects, closes), answers their syncs once the barrier commits, revalidates
//! sessions that move, keeps each session's owner (SessionMoved), and sends SNAP.

use super::*;
use crate::quorum::links::Link;
use crate::zab::broadcast::{Leader, LeaderPhase};
use crate::zab::packet::{kind, QuorumPacket};

pub struct LeaderTerm {
    pub(super) core: Leader<Arc<[u8]>>,
    pub(super) links: HashMap<i64, Link>,
    pub(super) link_of: HashMap<u64, i64>,
    /// Forwarded syncs: (learner, answer once this zxid is committed, the data to echo).
    pub(super) syncs: Vec<(i64, Zxid, Vec<u8>)>,
    /// The server each session is attached to (a learner's id, or this server's), as
    /// ZooKeeper's session owner: a write from anywhere else gets SessionMoved. Set by
    /// the session's creation, a revalidation, or (unknown since this term began) its
    /// first request.
    pub(super) owners: HashMap<SessionId, i64>,
}

impl<L: Storage> WriterLoop<L> {
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

    /// The leader hears a learner's sessions in its ping reply (id i64 · timeout i32)*.
    /// The timeout is the one the learner negotiated at the session's latest
    /// (re)connect, which may differ from the one the session was created with.
    /// A learner the session has moved away from speaks for it no more.
    pub(super) fn touch_from_learner(&mut self, sid: i64, data: &[u8]) {
        let now = self.clock.now_ms() as u64;
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
    pub(super) fn revalidate(&mut self, sid: i64, data: &[u8]) {
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
            self.sessions.touch(id, self.clock.now_ms() as u64);
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

    /// The leader stages a request a learner forwarded.
    pub(super) fn forwarded_request(&mut self, sid: i64, pkt: &QuorumPacket) {
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

    /// Forwarded syncs whose barrier is committed go back to their learner.
    pub(super) fn answer_syncs(&mut self) {
        let Role::Leading(t) = &mut self.role else {
            return;
        };
        let committed = t.core.committed();
        // In the order they came: two syncs of one session are answered in its order.
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut t.syncs)
            .into_iter()
            .partition(|s| s.1 <= committed);
        t.syncs = wait;
        for (sid, _, data) in due {
            if let Some(l) = t.links.get_mut(&sid) {
                l.send(&QuorumPacket::new(kind::SYNC, committed, Some(data)));
            }
        }
    }

    /// Before a COMMIT or INFORM of `zxid` goes to learner `sid`: its syncs waiting for
    /// an earlier zxid are answered first, each right after that zxid's commit, as
    /// ZooKeeper's leader sends a SYNC right after the COMMIT it waited for. (A COMMIT
    /// here covers every zxid up to its own: without this, a learner would apply a
    /// write its client sent after the sync before answering the sync.)
    pub(super) fn answer_syncs_before(&mut self, sid: i64, zxid: Zxid, commits: bool) {
        let Role::Leading(t) = &mut self.role else {
            return;
        };
        if t.syncs.is_empty() {
            return;
        }
        let (mut due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut t.syncs)
            .into_iter()
            .partition(|s| s.0 == sid && s.1 < zxid);
        t.syncs = wait;
        due.sort_by_key(|s| s.1); // stable: a session's syncs keep their order
        let Some(l) = t.links.get_mut(&sid) else {
            return;
        };
        for (_, barrier, data) in due {
            if commits {
                l.send_plain(kind::COMMIT, barrier, None);
            }
            l.send(&QuorumPacket::new(kind::SYNC, barrier, Some(data)));
        }
    }

    /// The tree as a snapshot file's bytes, at the last applied zxid (a leader's SNAP).
    pub(super) fn snapshot_bytes(&self) -> Vec<u8> {
        let zxid = self.shared.last_zxid();
        let sessions = self.session_list();
        let src = self.snap_source(zxid, &sessions);
        let mut out = Vec::new();
        if let Err(e) = crate::snap::serialize(&src, &mut out) {
            log::error!("cannot serialize a snapshot for a learner: {e}");
        }
        out
    }
}
