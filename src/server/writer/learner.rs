//! The learner's part (follower or observer). Its pipeline, as ZooKeeper's
//! FollowerZooKeeperServer lists it: client writes, connects, closes and syncs are
//! forwarded to the leader → the leader's proposals are appended → sync → ack → on
//! COMMIT apply → answer the client that asked here. Reads run here, as on any server.
//! Joining a leader may TRUNC this server's log or install the leader's SNAP: both
//! rebuild the state from disk, as start-up does.

use super::*;
use crate::quorum::links::Link;
use crate::zab::broadcast::Learner;
use crate::zab::packet::{kind, QuorumPacket};
use std::path::PathBuf;

pub struct LearnerTerm {
    pub(super) core: Learner,
    pub(super) leader: i64,
    pub(super) link: Link,
    /// Acks that go out after the next sync.
    pub(super) after_sync: Vec<QuorumPacket>,
    /// Logged, not yet committed.
    pub(super) unapplied: VecDeque<(TxnHeader, Txn)>,
    /// Requests this server forwarded, by (session, cxid), with their order:: tickets.
    pub(super) forwarded: HashMap<(SessionId, i32), (Forwarded, u64)>,
    /// Sessions with traffic since the last ping (id → timeout), for the leader.
    pub(super) touched: HashMap<SessionId, i32>,
    /// Reconnects waiting for the leader to revalidate the session (REVALIDATE).
    pub(super) revalidating: HashMap<SessionId, (ConnId, i32, Option<bool>)>,
}

pub(super) enum Forwarded {
    Waiter(Waiter),
    Sync {
        conn: ConnId,
        xid: i32,
        path: String,
    },
}

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

/// A forwarded request's data: session · cxid · type · the request's own bytes.
fn request_data(session: SessionId, cxid: i32, opcode: i32, body: &[u8]) -> Vec<u8> {
    let mut w = Jute::new();
    w.i64(session).i32(cxid).i32(opcode);
    w.buf.extend_from_slice(body);
    w.buf
}

impl<L: Storage> WriterLoop<L> {
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
        let replaced = t.forwarded.insert((session, cxid), (waiter, ticket));
        let mut p = QuorumPacket::new(
            kind::REQUEST,
            -1,
            Some(request_data(session, cxid, opcode, body)),
        );
        p.auth = Some(ids.to_vec());
        t.link.send(&p);
        if let Some((old, old_ticket)) = replaced {
            // A client that reused an xid still in flight: the older request's connection
            // closes (its outcome unknown) and what waited behind it is answered.
            let conn = match old {
                Forwarded::Waiter(
                    Waiter::Reply { conn, .. }
                    | Waiter::Connect { conn, .. }
                    | Waiter::CloseSession {
                        conn: Some(conn), ..
                    },
                ) => Some(conn),
                Forwarded::Sync { conn, .. } => Some(conn),
                Forwarded::Waiter(_) => None,
            };
            if let Some(conn) = conn {
                self.send(conn, ToReactor::Close { conn });
            }
            self.answered(session, old_ticket);
        }
    }

    /// A learner logs a txn the leader sent.
    pub(super) fn learn_txn(&mut self, zxid: Zxid, record: Arc<[u8]>) -> bool {
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
    pub(super) fn apply_learned(&mut self, zxid: Zxid) {
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
        self.snaps.applied(applied);
        self.publish_stats();
        self.wake_reactors();
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

    /// The leader's answer to a revalidation this learner asked for.
    pub(super) fn revalidated(&mut self, data: &[u8]) {
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

    /// A learner's forwarded sync came back: everything before it is applied here.
    pub(super) fn sync_answered(&mut self, data: &[u8]) {
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

    /// TRUNC: the log loses every txn after `zxid` and the state is rebuilt from disk.
    pub(super) fn truncate_to(&mut self, zxid: Zxid) -> Result<(), SyncFailed> {
        log::info!("the leader truncates this server's log to 0x{zxid:x}");
        self.log.truncate_after(zxid)?;
        self.remove_snapshots_after(zxid)?;
        self.rebuild_from_disk()
    }

    /// SNAP: the leader's snapshot replaces this server's log and state.
    pub(super) fn install_snapshot(&mut self, zxid: Zxid, bytes: &[u8]) -> Result<(), SyncFailed> {
        use std::io::Write;
        log::info!(
            "installing the leader's snapshot at 0x{zxid:x} ({} bytes)",
            bytes.len()
        );
        let dir = self.snaps.dir().to_path_buf();
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
    pub(super) fn remove_snapshots_after(&mut self, zxid: Zxid) -> Result<(), SyncFailed> {
        self.reap_snapshot(true);
        let snaps =
            crate::snap::list_snapshots(self.snaps.dir()).map_err(|error| SyncFailed::Io {
                path: self.snaps.dir().to_path_buf(),
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
    pub(super) fn rebuild_from_disk(&mut self) -> Result<(), SyncFailed> {
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        let snap_dir = self.snaps.dir().to_path_buf();
        let now = self.clock.now_ms();
        let st = self.log.recover(cfg, &snap_dir, now).map_err(Box::new)?;
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
        mutation::published(tree);
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
