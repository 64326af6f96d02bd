//! Stage 2, prep and append: a client's write (or a txn the server makes itself) is
//! prepped against the tree with every earlier staged txn applied (the overlay), its
//! record appended to the log, and it waits in `pending` for the sync (standalone) or
//! its quorum (leader). Nothing here syncs or answers a success.

use super::*;

impl<L: Storage> WriterLoop<L> {
    /// Stages a txn for `req` (prep + overlay) and appends it to the log.
    pub(super) fn stage(
        &mut self,
        session: SessionId,
        xid: i32,
        ids: &[Id],
        req: &Request,
        waiter: Waiter,
    ) {
        if !self.zxid_available() {
            return;
        }
        let hdr = TxnHeader {
            client_id: session,
            cxid: xid,
            zxid: self.next_zxid,
            time: self.clock.now_ms(),
            op: 0,
        };
        if let Some(r) = self.record(&hdr, Make::Request { session, ids, req }) {
            self.append(
                TxnHeader {
                    op: r.txn.op(),
                    ..hdr
                },
                r,
                waiter,
            );
        }
    }

    /// Stages a txn the server makes itself for `session` (`cxid`: the request it
    /// answers, 0 for none), under the next zxid.
    pub(super) fn stage_server_txn(
        &mut self,
        session: SessionId,
        cxid: i32,
        txn: Txn,
        waiter: Waiter,
    ) {
        if !self.zxid_available() {
            return;
        }
        let hdr = TxnHeader {
            client_id: session,
            cxid,
            zxid: self.next_zxid,
            time: self.clock.now_ms(),
            op: txn.op(),
        };
        self.stage_txn(hdr, txn, waiter);
    }

    /// Stages a txn the server makes itself (sessions, expiry).
    pub(super) fn stage_txn(&mut self, hdr: TxnHeader, txn: Txn, waiter: Waiter) {
        if let Some(r) = self.record(&hdr, Make::Txn(txn)) {
            self.append(hdr, r, waiter);
        }
    }

    /// Preps (or takes) a txn and applies it to the batch's overlay through a `Recorder`,
    /// so later requests of the batch see it and the commit can publish what it recorded.
    pub(super) fn record(&mut self, hdr: &TxnHeader, what: Make) -> Option<Recorded> {
        let shared = self.shared.clone();
        let ext = shared.cfg.extended_types;
        let base = TreeView(&shared.tree);
        let mut ov = Overlay::new(&base);
        std::mem::swap(ov.changes_mut(), &mut self.staged);
        let mut rec = Recorder {
            inner: &mut ov,
            acls: &mut self.idx.acls,
            changes: Vec::new(),
            digest_delta: 0,
        };
        let mut triggers = Vec::new();
        let mut results = Vec::new();
        let txn = match what {
            Make::Request {
                req: Request::Reconfig,
                ..
            } => Some(Txn::Error {
                err: ZkError::ReconfigDisabled.code(),
            }),
            Make::Request { session, ids, req } => {
                let ctx = PrepCtx {
                    session,
                    ids,
                    extended_types: ext,
                    schemes: self.shared.cfg.acl_schemes(),
                };
                let (txn, r) = prep_and_stage(&ctx, &mut rec, hdr, req, &mut triggers);
                results = r;
                Some(txn)
            }
            Make::Txn(t) => {
                let _ = apply(&mut rec, hdr, &t, &mut triggers);
                Some(t)
            }
            Make::DeleteContainer(path) => match prep_delete_container(&rec, &path, ext) {
                Ok(t) => {
                    let _ = apply(&mut rec, hdr, &t, &mut triggers);
                    Some(t)
                }
                Err(_) => None,
            },
        };
        let changes = std::mem::take(&mut rec.changes);
        // The tree digest after this txn, as the log record carries it.
        self.staged_digest = self.staged_digest.wrapping_add(rec.digest_delta);
        drop(rec);
        std::mem::swap(ov.changes_mut(), &mut self.staged);
        txn.map(|txn| Recorded {
            txn,
            changes,
            triggers,
            results,
        })
    }

    pub(super) fn append(&mut self, hdr: TxnHeader, r: Recorded, waiter: Waiter) {
        let Recorded {
            txn,
            changes,
            triggers,
            results,
        } = r;
        let mut w = Jute {
            buf: std::mem::take(&mut self.encode_buf),
        };
        w.buf.clear();
        encode_record(&hdr, &txn, &mut w);
        if self.shared.cfg.digest_enabled {
            w.i32(crate::tree::digest::DIGEST_VERSION)
                .i64(self.staged_digest);
        }
        // Control plane: the log gets zxids in order, with no gap within an epoch.
        assert!(
            hdr.zxid == self.next_zxid,
            "appending txn 0x{:x} where 0x{:x} is next",
            hdr.zxid,
            self.next_zxid
        );
        let appended = self.log.append(hdr.zxid, &w.buf);
        let ticket = match waiter {
            Waiter::Reply { .. } => self.order.ticket(hdr.client_id),
            _ => NO_TICKET,
        };
        let p = Pending {
            hdr,
            txn,
            results,
            changes,
            triggers,
            waiter,
            ticket,
        };
        match appended {
            Ok(()) => {
                self.next_zxid = hdr.zxid + 1;
                self.pending.push_back(p);
                self.after_append(hdr.zxid, &w.buf);
                self.encode_buf = w.buf;
                if mutation::active(Mutation::AnswerBeforeSync) && self.ens.is_none() {
                    self.apply_upto(hdr.zxid);
                }
            }
            Err(e @ LogError::NoSpace { .. }) => {
                // This txn reached neither the log nor a learner. Standalone it is refused
                // with the rest of the batch; a leader, whose earlier proposals may be out
                // already, leaves its role, and this client hears nothing.
                self.encode_buf = w.buf;
                if self.ens.is_some() {
                    self.hang_up(p.waiter);
                } else {
                    self.pending.push_back(p);
                }
                self.out_of_space(&e);
            }
            Err(e) => crate::fatal(e),
        }
    }

    /// A txn that carries only an error for the learner's client.
    pub(super) fn stage_error(&mut self, session: SessionId, cxid: i32, err: ZkError) {
        let txn = Txn::Error { err: err.code() };
        self.stage_server_txn(session, cxid, txn, Waiter::Internal);
    }

    /// A close that will not happen (refused for want of disk space, or never logged
    /// before the term ended): the session lives on and will expire (or close) again.
    /// Requests its connection sent while it was closing got no answer (they wait behind
    /// the close): that connection closes, and the client resumes the session.
    pub(super) fn reopen(&mut self, session: SessionId) {
        if let Some(c) = self.sessions.get_mut(session).and_then(|s| s.conn.take()) {
            self.watches.remove_session(session);
            self.send(c, ToReactor::Close { conn: c });
        }
        let now = self.clock.now_ms() as u64;
        if let Some(s) = self.sessions.get_mut(session) {
            s.closing = false;
        }
        self.sessions.touch(session, now);
    }
}
