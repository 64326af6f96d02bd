//! Stage 2: what the reactors send the writer, handled by kind. A write is
//! staged (or, on a learner, forwarded); a request that needs no txn is answered from
//! the applied tree in its session's order; connects, reconnects and closes go to the
//! session table. Nothing here syncs: the loop's one sync covers what was staged.

use super::*;

impl<L: Storage> WriterLoop<L> {
    pub(super) fn handle(&mut self, m: ToWriter) {
        match m {
            ToWriter::Request {
                conn,
                session,
                xid,
                op: opcode,
                req,
                ids,
                raw,
            } => {
                if !self.serving() {
                    if self.shared.read_only() {
                        self.read_only_request(conn, session, xid, req, &ids);
                    } else {
                        // Between terms: the client finds a server that serves.
                        self.send(conn, ToReactor::Close { conn });
                    }
                    return;
                }
                let live_conn = self.sessions.get(session).and_then(|s| s.conn) == Some(conn);
                if live_conn && !self.session_ok(session) {
                    // Behind this session's close (asked or by expiry), still in flight:
                    // no answer, so none overtakes the close's reply or a write before
                    // it. The connection closes once the close applies (or the term ends).
                    return;
                }
                if !self.session_ok(session) {
                    let f = reply_frame(
                        xid,
                        self.shared.last_zxid(),
                        ZkError::SessionExpired.code(),
                        |_| {},
                    );
                    self.frame(conn, f, true);
                    self.send(conn, ToReactor::Close { conn });
                    return;
                }
                if !live_conn {
                    // The session moved to another connection: ZooKeeper closes this one
                    // without a reply (SESSIONMOVED is never sent).
                    log::info!("closing a connection of session 0x{session:x}: the session moved");
                    self.send(conn, ToReactor::Close { conn });
                    return;
                }
                // Only the session's live connection speaks for its auth (a stale one, or
                // a closed session, changes nothing).
                self.note_ids(session, &ids);
                self.route_request(conn, session, xid, opcode, req, ids, raw);
            }
            ToWriter::Connect { conn, req, info } => {
                self.outbound.insert(conn, info);
                self.connect(conn, req);
            }
            ToWriter::Touch(touches) => {
                // Credited at each session's latest packet, as ZooKeeper touches a
                // session when the packet arrives.
                for &(s, at) in &touches {
                    self.sessions.touch_later(s, at);
                }
                if self.is_learner() {
                    // The leader hears of them in the next ping reply.
                    let ids: Vec<SessionId> = touches.iter().map(|&(s, _)| s).collect();
                    self.touched(&ids);
                }
            }
            ToWriter::Auth { conn, session, ids } => {
                if self.sessions.get(session).and_then(|s| s.conn) == Some(conn) {
                    self.note_ids(session, &ids);
                }
            }
            ToWriter::Quorum(ev) => self.quorum_event(ev),
            ToWriter::Closed { conn, session } if self.ro_sessions.contains(&session) => {
                self.outbound.remove(&conn);
                if self.sessions.get(session).and_then(|s| s.conn) == Some(conn) {
                    self.ro_sessions.remove(&session);
                    self.sessions.remove(session);
                    self.session_ids.remove(&session);
                    self.watches.remove_session(session);
                }
            }
            ToWriter::Closed { conn, session } => {
                self.outbound.remove(&conn);
                if let Some(s) = self.sessions.get_mut(session) {
                    if s.conn == Some(conn) {
                        s.conn = None;
                        self.watches.remove_session(session);
                    }
                }
            }
            ToWriter::Admin { conn, cmd } => {
                let report = Box::new(self.report(&cmd));
                self.send(conn, ToReactor::Admin { conn, cmd, report });
            }
            ToWriter::Batch(v) => {
                for m in v {
                    self.handle(m);
                }
            }
        }
    }

    /// A request served by this server's own pipeline (standalone, leader): a close or a
    /// write is staged; anything else is answered in its session's order.
    pub(super) fn local_request(
        &mut self,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        opcode: i32,
        req: Request,
        ids: Arc<[Id]>,
    ) {
        match &req {
            Request::CloseSession => {
                let waiter = Waiter::CloseSession {
                    conn: Some(conn),
                    xid,
                };
                self.close_session(session, xid, waiter);
            }
            r if r.is_write() || matches!(r, Request::Reconfig) => {
                let waiter = Waiter::Reply {
                    conn,
                    xid,
                    op: opcode,
                };
                self.stage(session, xid, &ids, &req, waiter);
            }
            _ => self.answer_in_order(DeferredRead {
                conn,
                session,
                xid,
                req,
                ids,
            }),
        }
    }

    /// A write from a connection its session has left for another server: the connection
    /// closes without a reply, as ZooKeeper's does (SessionMoved is never sent).
    pub(super) fn session_moved_away(&mut self, conn: ConnId, session: SessionId) {
        log::info!(
            "closing a connection of session 0x{session:x}: the session moved to another server"
        );
        if let Some(s) = self.sessions.get_mut(session) {
            s.conn = None;
        }
        self.watches.remove_session(session);
        self.send(conn, ToReactor::Close { conn });
    }

    pub(super) fn session_ok(&self, session: SessionId) -> bool {
        self.sessions.get(session).is_some_and(|s| !s.closing)
    }

    /// The auth ids of `session`'s live connection, for watch events' ACL checks.
    pub(super) fn note_ids(&mut self, session: SessionId, ids: &Arc<[Id]>) {
        if mutation::active(Mutation::StaleAuth) && self.session_ids.contains_key(&session) {
            return;
        }
        if !self
            .session_ids
            .get(&session)
            .is_some_and(|held| Arc::ptr_eq(held, ids))
        {
            self.session_ids.insert(session, ids.clone());
        }
    }

    /// What four-letter word `cmd` reports of the writer's state (only what it shows).
    pub(super) fn report(&self, cmd: &str) -> crate::server::WriterReport {
        let mut r = crate::server::WriterReport {
            owns_sessions: self.owns_sessions(),
            ..Default::default()
        };
        match cmd {
            "wchs" => r.watch_summary = self.watches.summary(),
            "wchc" | "wchp" => {
                r.data_watches = self
                    .watches
                    .data_by_session()
                    .map(|(s, paths)| (s, paths.iter().cloned().collect()))
                    .collect();
            }
            "dump" => {
                r.session_buckets = self
                    .sessions
                    .buckets()
                    .map(|(at, ids)| {
                        let mut ids: Vec<SessionId> = ids.iter().copied().collect();
                        ids.sort_unstable();
                        (at, ids)
                    })
                    .collect();
                r.sessions = self
                    .sessions
                    .iter()
                    .map(|(id, s)| (*id, s.timeout_ms))
                    .collect();
                r.sessions.sort_unstable();
                r.ephemerals = self
                    .idx
                    .ephemerals
                    .iter()
                    .map(|(s, paths)| (*s, paths.iter().cloned().collect()))
                    .collect();
                r.ephemerals.sort();
            }
            _ => {}
        }
        r
    }

    pub(super) fn connect(&mut self, conn: ConnId, req: ConnectRequest) {
        if !self.serving() {
            if self.shared.read_only() && req.read_only == Some(true) {
                self.read_only_connect(conn, req);
            } else {
                self.send(conn, ToReactor::Close { conn });
            }
            return;
        }
        // Applied, not logged: a client that saw zxid Z must find Z here in what it
        // reads, or go back in time.
        let last = self.shared.last_zxid();
        if req.last_zxid_seen > last {
            log::info!(
                "refusing session 0x{:x}: client has seen zxid 0x{:x}, this server only 0x{:x}",
                req.session_id,
                req.last_zxid_seen,
                last
            );
            self.send(conn, ToReactor::Close { conn });
            return;
        }
        let timeout = self.shared.cfg.negotiate_timeout(req.timeout_ms);
        if req.session_id == 0 {
            self.route_new_session(conn, timeout, req.read_only);
            return;
        }
        let id = req.session_id;
        let valid = req.passwd.as_slice() == password(id) && self.session_ok(id);
        if !valid {
            self.refuse_reconnect(conn, id, req.read_only);
            return;
        }
        self.route_reconnect(conn, id, timeout, req.read_only);
    }

    /// A reconnect of `id` refused: the client is told its session is gone.
    pub(super) fn refuse_reconnect(
        &mut self,
        conn: ConnId,
        id: SessionId,
        read_only: Option<bool>,
    ) {
        log::info!(
            "refusing reconnect of session 0x{id:x}: {}",
            if self.sessions.get(id).is_some() {
                "wrong password, closing, or not valid at the leader"
            } else {
                "expired or unknown"
            }
        );
        let f = encode_connect_response(0, 0, &[0; 16], read_only);
        self.frame(conn, f, false);
        self.send(
            conn,
            ToReactor::Connected {
                conn,
                session: 0,
                timeout_ms: 0,
                ok: false,
                zxid: 0,
            },
        );
    }

    /// A valid session resumes on `conn`; its connection before, if any, is closed.
    pub(super) fn resume_session(
        &mut self,
        conn: ConnId,
        id: SessionId,
        timeout: i32,
        read_only: Option<bool>,
    ) {
        let now = self.clock.now_ms() as u64;
        // Reconnect: the session's own timeout stands; ZooKeeper re-negotiates it too.
        let old = self.sessions.get_mut(id).and_then(|s| {
            s.timeout_ms = timeout;
            s.conn.replace(conn)
        });
        self.sessions.touch(id, now);
        if let Some(old) = old.filter(|&c| c != conn) {
            self.watches.remove_session(id);
            self.send(old, ToReactor::Close { conn: old });
        }
        self.connected(conn, id, timeout, read_only);
    }

    /// A session is established on `conn`: the ConnectResponse, then the reactor's cue.
    pub(super) fn connected(
        &mut self,
        conn: ConnId,
        id: SessionId,
        timeout: i32,
        read_only: Option<bool>,
    ) {
        // The readOnly byte mirrors the client's (omitted for old clients): set in
        // read-only mode.
        let ro = !self.serving() && self.shared.read_only();
        let f = encode_connect_response(timeout, id, &password(id), read_only.map(|_| ro));
        self.frame(conn, f, false);
        self.send(
            conn,
            ToReactor::Connected {
                conn,
                session: id,
                timeout_ms: timeout,
                ok: true,
                zxid: self.shared.last_zxid(),
            },
        );
    }

    /// Requests that need no txn and run on the writer, in their session's order (after
    /// its writes in flight: `answer_in_order`), against the applied tree: reads with
    /// watches, watch management, sync, getEphemerals.
    pub(super) fn barrier_request(
        &mut self,
        session: SessionId,
        xid: i32,
        req: &Request,
        ids: &[Id],
    ) -> Vec<u8> {
        let shared = self.shared.clone();
        let zxid = shared.last_zxid();
        let tree = &shared.tree;
        let cfg = &shared.cfg;
        match req {
            Request::Exists { path, watch }
            | Request::GetData { path, watch }
            | Request::GetChildren { path, watch }
            | Request::GetChildren2 { path, watch } => {
                let (frame, err) = reads::reply(tree, cfg, ids, xid, zxid, req);
                if *watch {
                    let kind = if matches!(
                        req,
                        Request::GetChildren { .. } | Request::GetChildren2 { .. }
                    ) {
                        Kind::Child
                    } else {
                        Kind::Data
                    };
                    let set = err == 0
                        || (err == ZkError::NoNode.code() && matches!(req, Request::Exists { .. }));
                    if set {
                        self.watches.add(session, kind, path);
                    }
                }
                frame
            }
            Request::Sync { path } => reply_frame(xid, zxid, 0, |w| {
                w.string(path);
            }),
            Request::AddWatch { path, mode } => {
                let kind = match mode {
                    0 => Kind::Persistent,
                    1 => Kind::Recursive,
                    // ZooKeeper's WatcherMode.fromZooDef throws: MarshallingError.
                    _ => return reply_frame(xid, zxid, ZkError::MarshallingError.code(), |_| {}),
                };
                self.watches.add(session, kind, path);
                reply_frame(xid, zxid, 0, |w| {
                    w.i32(0);
                })
            }
            Request::CheckWatches { path, kind } => {
                let err = match self.watches.check(session, *kind, path) {
                    Some(true) => 0,
                    Some(false) => ZkError::NoWatcher.code(),
                    None => ZkError::MarshallingError.code(),
                };
                reply_frame(xid, zxid, err, |_| {})
            }
            Request::RemoveWatches { path, kind } => {
                let err = match self.watches.remove(session, *kind, path) {
                    Some(true) => 0,
                    Some(false) => ZkError::NoWatcher.code(),
                    None => ZkError::MarshallingError.code(),
                };
                reply_frame(xid, zxid, err, |_| {})
            }
            Request::GetEphemerals { prefix } => {
                let all: Vec<String> = self
                    .idx
                    .ephemerals
                    .get(&session)
                    .map(|s| {
                        s.iter()
                            .filter(|p| {
                                prefix.is_empty() || prefix == "/" || p.starts_with(prefix.as_str())
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                reply_frame(xid, zxid, 0, |w| {
                    w.strings(&all);
                })
            }
            Request::SetWatches {
                relative_zxid,
                data,
                exist,
                child,
                persistent,
                recursive,
            } => {
                let conn = self.sessions.get(session).and_then(|s| s.conn);
                let mut events: Vec<(i32, String)> = Vec::new();
                for p in data {
                    match tree.get(p) {
                        None => events.push((event::NODE_DELETED, p.clone())),
                        Some(n) if n.mzxid > *relative_zxid => {
                            events.push((event::NODE_DATA_CHANGED, p.clone()))
                        }
                        Some(_) => self.watches.add(session, Kind::Data, p),
                    }
                }
                for p in exist {
                    match tree.get(p) {
                        Some(_) => events.push((event::NODE_CREATED, p.clone())),
                        None => self.watches.add(session, Kind::Data, p),
                    }
                }
                for p in child {
                    match tree.get(p) {
                        None => events.push((event::NODE_DELETED, p.clone())),
                        Some(n) if n.pzxid > *relative_zxid => {
                            events.push((event::NODE_CHILDREN_CHANGED, p.clone()))
                        }
                        Some(_) => self.watches.add(session, Kind::Child, p),
                    }
                }
                for p in persistent {
                    self.watches.add(session, Kind::Persistent, p);
                }
                for p in recursive {
                    self.watches.add(session, Kind::Recursive, p);
                }
                if let Some(conn) = conn {
                    for (t, p) in events {
                        let f = notification_frame(t, &p);
                        self.frame(conn, f, false);
                    }
                }
                reply_frame(xid, zxid, 0, |_| {})
            }
            // A plain read a reactor could not take a consistent view for (Busy): here
            // every view is.
            r if r.is_plain_read() => reads::reply(tree, cfg, ids, xid, zxid, r).0,
            _ => reply_frame(xid, zxid, ZkError::Unimplemented.code(), |_| {}),
        }
    }

    pub(super) fn close_session(&mut self, session: SessionId, cxid: i32, waiter: Waiter) {
        if let Some(s) = self.sessions.get_mut(session) {
            s.closing = true;
        }
        // The session's ephemerals as they will stand when the close applies: the
        // applied ones not deleted by a txn still in flight, and those created by one
        // (a create staged but not yet committed: ZooKeeper's outstanding changes).
        // Without the second part such a node would commit with a dead owner and
        // never go.
        let mut paths: Vec<String> = self
            .idx
            .ephemerals
            .get(&session)
            .map(|s| {
                s.iter()
                    .filter(|p| !matches!(self.staged.get(p.as_str()), Some(None)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let applied: std::collections::HashSet<String> = paths.iter().cloned().collect();
        let in_flight = !mutation::active(Mutation::OrphanEphemerals);
        for (path, node) in self.staged.iter().filter(|_| in_flight) {
            if node
                .as_ref()
                .is_some_and(|n| n.fields().ephemeral_owner == session)
                && !applied.contains(path)
            {
                paths.push(path.clone());
            }
        }
        // Staged like any txn, so later prep in this batch sees the ephemerals gone.
        self.stage_server_txn(session, cxid, Txn::CloseSession { paths }, waiter);
    }
}
