//! Stage 6, apply → notify → answer: a committed txn is applied by `txn::commit`
//! (the one apply every caller uses), its watch events go to the reactors before its
//! changes are published (invariant 5), then its client is answered from what apply
//! returned, and the requests waiting behind it in its session's order (order::) follow.

use super::*;

impl<L: Storage> WriterLoop<L> {
    /// Applies the pending txns up to `zxid` (durable, and committed): publishes the node
    /// versions prep made, queues watch events, answers.
    pub(super) fn apply_upto(&mut self, zxid: Zxid) {
        let n = self
            .pending
            .iter()
            .take_while(|p| p.hdr.zxid <= zxid)
            .count();
        if n == 0 {
            return;
        }
        self.shared.stats.txns.fetch_add(n as u64, Relaxed);
        self.snaps.applied(n as u64);
        let shared = self.shared.clone();
        let ext = shared.cfg.extended_types;
        let pending: Vec<Pending> = self.pending.drain(..n).collect();
        for mut p in pending {
            // The node versions prep made, published as they are (no second apply).
            let source = Source::Prepped {
                changes: std::mem::take(&mut p.changes),
                triggers: std::mem::take(&mut p.triggers),
                results: std::mem::take(&mut p.results),
            };
            let applied = commit::apply(&shared.tree, &mut self.idx, ext, &p.hdr, source);
            self.finish_apply(p, applied);
        }
        if self.pending.is_empty() {
            self.staged.clear();
            debug_assert_eq!(self.staged_digest, self.idx.digest);
            self.staged_digest = self.idx.digest;
        } else if self.staged.len() > STAGED_PRUNE_LEN {
            // Uncommitted txns keep the overlay; entries the tree has caught up with go.
            let tree = &self.shared.tree;
            self.staged.retain(|path, v| match (v, tree.get(path)) {
                (Some(a), Some(b)) => !NodeRef::ptr_eq(a, &b),
                (None, None) => false,
                _ => true,
            });
        }
        self.publish_stats();
        self.wake_reactors();
    }

    /// Applies one committed txn to the published tree, with its watch events, session
    /// changes and answer.
    pub(super) fn apply_one(&mut self, hdr: TxnHeader, txn: Txn, waiter: Waiter, ticket: u64) {
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

    /// The rest of committing a txn that `commit::apply` applied: sessions, watch events
    /// (queued before the changes are published: invariant 5), publish, the answer (with
    /// the multi results apply kept).
    pub(super) fn finish_apply(&mut self, mut p: Pending, applied: commit::Applied) {
        let shared = self.shared.clone();
        // Control plane: txns are applied in zxid order, each once.
        assert!(
            p.hdr.zxid > shared.last_zxid(),
            "applying txn 0x{:x} after 0x{:x}",
            p.hdr.zxid,
            shared.last_zxid()
        );
        let commit::Applied {
            held,
            triggers,
            results,
            sessions_created,
            sessions_closed,
        } = applied;
        // Events first: a session that closes itself still hears of its own ephemerals'
        // deletion (persistent watches), before its close's reply, as in ZooKeeper.
        for t in &triggers {
            self.notify(t);
        }
        self.session_changes(&p, sessions_created, sessions_closed);
        // The applied zxid moves in the same window: a read's header zxid is never below
        // the zxids of the data it returns.
        commit::publish(&shared.tree, held, || {
            shared.last_zxid.store(p.hdr.zxid, Release)
        });
        p.results = results;
        let (ticket, session) = (p.ticket, p.hdr.client_id);
        self.answer(p);
        self.answered(session, ticket);
    }

    pub(super) fn session_changes(
        &mut self,
        p: &Pending,
        created: Vec<(SessionId, i32)>,
        closed: Vec<SessionId>,
    ) {
        let now = self.clock.now_ms() as u64;
        for (s, t) in created {
            self.sessions.add(s, t, now);
            if let Waiter::Connect { conn, .. } = p.waiter {
                self.sessions.get_mut(s).unwrap().conn = Some(conn);
            }
        }
        for s in closed {
            self.session_ids.remove(&s);
            self.forget_owner(s);
            if let Some(sess) = self.sessions.remove(s) {
                self.watches.remove_session(s);
                if let Some(c) = sess.conn {
                    let is_requester =
                        matches!(p.waiter, Waiter::CloseSession { conn: Some(rc), .. } if rc == c);
                    if !is_requester || mutation::active(Mutation::CloseBeforeReply) {
                        self.send(c, ToReactor::Close { conn: c });
                    }
                }
            }
        }
    }

    pub(super) fn notify(&mut self, t: &Trigger) {
        let mut sessions = std::mem::take(&mut self.scratch_sessions);
        self.watches.trigger(t.event, &t.path, &mut sessions);
        if !sessions.is_empty() {
            let f = notification_frame(t.event, &t.path);
            for &s in &sessions {
                let ids = self.session_ids.get(&s).map(|i| &**i).unwrap_or(&[]);
                if crate::acl::check(&t.acl, crate::proto::ops::perm::READ, ids).is_err() {
                    continue;
                }
                if let Some(conn) = self.sessions.get(s).and_then(|x| x.conn) {
                    self.frame(conn, f.clone(), false);
                }
            }
        }
        self.scratch_sessions = sessions;
    }

    pub(super) fn answer(&mut self, p: Pending) {
        let zxid = p.hdr.zxid;
        match p.waiter {
            Waiter::Internal => {}
            Waiter::Connect { conn, read_only } => {
                let id = p.hdr.client_id;
                let timeout = match p.txn {
                    Txn::CreateSession { timeout } => timeout,
                    _ => 0,
                };
                self.connected(conn, id, timeout, read_only);
            }
            Waiter::CloseSession { conn, xid } => {
                if let Some(conn) = conn {
                    let f = reply_frame(xid, zxid, 0, |_| {});
                    self.frame(conn, f, true);
                    self.send(conn, ToReactor::Close { conn });
                }
            }
            Waiter::Reply { conn, .. } if matches!(p.txn, Txn::Error { err } if err == ZkError::SessionMoved.code()) =>
            {
                // The leader refused a write of a session now attached elsewhere: as
                // ZooKeeper, this connection closes without a reply (ZOOKEEPER-710).
                let session = p.hdr.client_id;
                if let Some(s) = self.sessions.get_mut(session) {
                    if s.conn == Some(conn) {
                        s.conn = None;
                        self.watches.remove_session(session);
                    }
                }
                log::info!("closing a connection of session 0x{session:x}: the session moved");
                self.send(conn, ToReactor::Close { conn });
            }
            Waiter::Reply {
                conn,
                xid,
                op: opcode,
            } => {
                let f = self.write_reply(xid, zxid, opcode, &p.txn, &p.results);
                self.frame(conn, f, true);
            }
        }
    }

    /// The reply to a write, from what apply returned (`results`: the node a single op
    /// left, or each multi op's), never from the tree read again. (A txn applied before
    /// results were kept falls back to the tree right after it.)
    pub(super) fn write_reply(
        &self,
        xid: i32,
        zxid: Zxid,
        opcode: i32,
        txn: &Txn,
        results: &[Option<NodeRef>],
    ) -> Vec<u8> {
        let tree = &self.shared.tree;
        let ext = self.shared.cfg.extended_types;
        let stat_of = |path: &str, w: &mut Jute| {
            let st = tree.get(path).map(|n| n.stat(ext)).unwrap_or_default();
            st.write(w);
        };
        let op_stat = |i: usize, path: &str, w: &mut Jute| match results.get(i) {
            Some(Some(n)) => n.stat(ext).write(w),
            _ => stat_of(path, w),
        };
        match txn {
            Txn::Error { err } => reply_frame(xid, zxid, *err, |_| {}),
            Txn::Create { path, .. }
            | Txn::CreateContainer { path, .. }
            | Txn::CreateTtl { path, .. } => reply_frame(xid, zxid, 0, |w| {
                w.string(path);
                if opcode != op::CREATE {
                    op_stat(0, path, w);
                }
            }),
            Txn::Delete { .. } => reply_frame(xid, zxid, 0, |_| {}),
            Txn::SetData { path, .. } | Txn::SetAcl { path, .. } => {
                reply_frame(xid, zxid, 0, |w| op_stat(0, path, w))
            }
            Txn::Multi(txns) => reply_frame(xid, zxid, 0, |w| {
                let failed = txns
                    .iter()
                    .any(|t| matches!(t, Txn::Error { err } if *err != 0));
                for (i, t) in txns.iter().enumerate() {
                    match t {
                        Txn::Error { err } => {
                            w.i32(op::ERROR).bool(false).i32(*err).i32(*err);
                        }
                        _ if failed => unreachable!("a failed multi holds only error txns"),
                        Txn::Create { op: o, path, .. } => {
                            w.i32(*o).bool(false).i32(0).string(path);
                            if *o != op::CREATE {
                                op_stat(i, path, w);
                            }
                        }
                        Txn::CreateContainer { path, .. } | Txn::CreateTtl { path, .. } => {
                            w.i32(op::CREATE2).bool(false).i32(0).string(path);
                            op_stat(i, path, w);
                        }
                        Txn::Delete { .. } => {
                            w.i32(op::DELETE).bool(false).i32(0);
                        }
                        Txn::Check { .. } => {
                            w.i32(op::CHECK).bool(false).i32(0);
                        }
                        Txn::SetData { path, .. } => {
                            w.i32(op::SET_DATA).bool(false).i32(0);
                            op_stat(i, path, w);
                        }
                        _ => {
                            w.i32(op::ERROR)
                                .bool(false)
                                .i32(ZkError::SystemError.code())
                                .i32(ZkError::SystemError.code());
                        }
                    }
                }
                w.i32(-1).bool(true).i32(-1);
            }),
            _ => reply_frame(xid, zxid, 0, |_| {}),
        }
    }

    /// A request that needs no txn (a read, a watch change, sync): answered now, or, if an
    /// earlier request of its session is still in flight here, right after that one
    /// (order::), from the tree as it then stands. It never waits for a sync.
    pub(super) fn answer_in_order(&mut self, d: DeferredRead) {
        if mutation::active(Mutation::NoSessionOrder) {
            let f = self.barrier_request(d.session, d.xid, &d.req, &d.ids);
            return self.frame(d.conn, f, true);
        }
        if let Some(d) = self.order.hold(d.session, d) {
            let f = self.barrier_request(d.session, d.xid, &d.req, &d.ids);
            self.frame(d.conn, f, true);
        }
    }

    /// The request with `ticket` of `session` was answered: what waited behind it goes.
    pub(super) fn answered(&mut self, session: SessionId, ticket: u64) {
        for d in self.order.answered(session, ticket) {
            let f = self.barrier_request(d.session, d.xid, &d.req, &d.ids);
            self.frame(d.conn, f, true);
        }
    }
}
