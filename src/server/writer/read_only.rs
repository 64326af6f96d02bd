//! Read-only mode (`readonlymode.enabled`), as ZooKeeper's ReadOnlyZooKeeperServer: a
//! member without a quorum for max(2 s, tickTime) serves clients that ask for read-only
//! sessions: reads of its own tree, writes answered NotReadOnly. Its sessions are local
//! (never logged); when the member takes a role again they and their connections end,
//! and clients find a read-write server. Its pipeline: read → answer.

use super::*;

impl<L: Storage> WriterLoop<L> {
    pub(super) fn maybe_read_only(&mut self) {
        if !self.shared.cfg.read_only_enabled || self.serving() || self.shared.read_only() {
            return;
        }
        let wait = Duration::from_millis((self.shared.cfg.tick_ms as u64).max(2000));
        let looking = matches!(self.role, Role::Looking | Role::Connecting { .. });
        let now = self.clock.mono_ms();
        if looking
            && self
                .looking_since
                .is_some_and(|t| now.saturating_sub(t) >= wait.as_millis() as u64)
        {
            log::warn!(
                "no quorum for {wait:?}: read-only mode (reads only, for read-only clients)"
            );
            self.shared.read_only.store(true, Relaxed);
        }
    }

    pub(super) fn end_read_only(&mut self) {
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
        let now = self.clock.now_ms() as u64;
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
