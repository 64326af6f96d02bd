//! Stages 3 and 7, timers and snapshots: session expiry (on time, between ticks too), the
//! reaping of containers and TTL nodes, the ZAB core's tick, read-only mode, and the
//! snapshot a forked child writes when enough txns were applied (snap::fork).

use super::*;

impl<L: Storage> WriterLoop<L> {
    pub(super) fn on_tick(&mut self) {
        let now = self.clock.now_ms() as u64;
        if self.idx.acls.len() > 64 {
            // ACL lists no node uses any more (only the cache holds them) go.
            self.idx.acls.retain(|_, a| AclRef::strong_count(a) > 1);
        }
        // Connections closed before their session was established send no Closed: only
        // this map still holds their account.
        self.outbound.retain(|_, i| Arc::strong_count(i) > 1);
        self.core_tick();
        self.maybe_read_only();
        // Sessions and containers are the leader's (or the standalone server's) to end.
        if self.owns_sessions() {
            self.expire_sessions_at(now);
            let interval = self.shared.cfg.container_check_interval_ms;
            let mono = self.clock.mono_ms();
            if mono.saturating_sub(self.last_container_check) >= interval {
                self.last_container_check = mono;
                self.reap_containers();
            }
        }
        self.publish_stats();
    }

    /// How long until the next expiry bucket falls due; `Duration::MAX` when this server
    /// does not end sessions (a learner) or none is in a bucket.
    pub(super) fn until_expiry(&self) -> Duration {
        if !self.owns_sessions() {
            return Duration::MAX;
        }
        match self.sessions.next_expiry_ms() {
            Some(at) => Duration::from_millis(at.saturating_sub(self.clock.now_ms() as u64)),
            None => Duration::MAX,
        }
    }

    pub(super) fn expire_sessions(&mut self) {
        self.expire_sessions_at(self.clock.now_ms() as u64);
    }

    pub(super) fn expire_sessions_at(&mut self, now: u64) {
        for id in self.sessions.expire(now) {
            log::info!("session 0x{id:x} expired");
            self.close_session_expired(id);
        }
    }

    pub(super) fn close_session_expired(&mut self, id: SessionId) {
        let conn = self.sessions.get(id).and_then(|s| s.conn);
        self.close_session(id, 0, Waiter::Internal);
        if let Some(c) = conn {
            self.send(c, ToReactor::Close { conn: c });
        }
    }

    /// Containers whose last child went and TTL nodes past their TTL go, by deleteContainer
    /// txns, at most `znode.container.maxPerMinute` per minute.
    pub(super) fn reap_containers(&mut self) {
        let cfg = &self.shared.cfg;
        let per_check = ((cfg.container_max_per_minute as u64 * cfg.container_check_interval_ms)
            / 60_000)
            .max(1) as usize;
        let now = self.clock.now_ms();
        let tree = &self.shared.tree;
        let mut victims = Vec::new();
        for p in &self.idx.containers {
            if let Some(n) = tree.get(p) {
                if n.num_children() == 0 && n.cversion > 0 {
                    victims.push(p.clone());
                }
            }
        }
        for p in &self.idx.ttls {
            if let Some(n) = tree.get(p) {
                let ttl = ttl_of_owner(n.ephemeral_owner, cfg.extended_types).unwrap_or(i64::MAX);
                if n.num_children() == 0 && now - n.mtime > ttl {
                    victims.push(p.clone());
                }
            }
        }
        victims.truncate(per_check);
        for p in victims {
            let hdr = TxnHeader {
                client_id: 0,
                cxid: 0,
                zxid: self.next_zxid,
                time: self.clock.now_ms(),
                op: op::DELETE_CONTAINER,
            };
            if let Some(r) = self.record(&hdr, Make::DeleteContainer(p)) {
                self.append(
                    TxnHeader {
                        op: r.txn.op(),
                        ..hdr
                    },
                    r,
                    Waiter::Internal,
                );
            }
        }
    }

    /// Starts a snapshot when enough txns were applied since the last: at a txn boundary
    /// (everything applied is published), the log rolls to a new segment and a forked
    /// child writes the tree as it is now (snap::fork). The writer goes on at once.
    pub(super) fn maybe_snapshot(&mut self) {
        self.reap_snapshot(false);
        if !self.snaps.due() || !self.established() {
            return;
        }
        // The tree as applied. An ensemble member may have txns logged past it (a
        // leader's waiting for a quorum, a learner's for their commit): they stay in
        // the segment the roll ends, which recovery replays from (it starts at the last
        // segment whose first zxid is at most the snapshot's + 1).
        let zxid = self.shared.last_zxid();
        if let Err(e) = self.log.roll() {
            crate::fatal(format_args!("cannot roll the txn log for a snapshot: {e}"));
        }
        let sessions = self.session_list();
        // Borrowed field by field: the snapshot state is changed while the tree is read.
        let src = crate::snap::Source {
            tree: &self.shared.tree,
            sessions: &sessions,
            acls: &self.idx.acls,
            digest: (self.shared.cfg.digest_enabled).then_some((zxid, self.idx.digest)),
        };
        let started = self.snaps.start(zxid, &src);
        match started {
            Ok(pause) => {
                self.shared
                    .stats
                    .snapshot_fork_us
                    .store(pause.as_micros() as u64, Relaxed);
                let pid = self.snaps.running().map_or(0, |(pid, _)| pid);
                log::info!(
                    "snapshot 0x{zxid:x}: child {pid} writes it; the writer paused {} us to fork",
                    pause.as_micros()
                );
            }
            Err(e) => log::error!(
                "cannot fork to snapshot at 0x{zxid:x}: {e}; trying again after more txns"
            ),
        }
    }

    /// Notes a finished snapshot child; `wait`: for one that still runs, too.
    pub(super) fn reap_snapshot(&mut self, wait: bool) {
        if let Some(crate::snap::fork::Reaped::Written { .. }) = self.snaps.reap(wait) {
            self.shared.stats.snapshots.fetch_add(1, Relaxed);
        }
    }

    /// Every session and its timeout, as a snapshot records them.
    pub(super) fn session_list(&self) -> Vec<(i64, i32)> {
        self.sessions
            .iter()
            .map(|(id, s)| (*id, s.timeout_ms))
            .collect()
    }

    /// What a snapshot of the applied tree at `zxid` serializes.
    pub(super) fn snap_source<'a>(
        &'a self,
        zxid: Zxid,
        sessions: &'a [(i64, i32)],
    ) -> crate::snap::Source<'a> {
        crate::snap::Source {
            tree: &self.shared.tree,
            sessions,
            acls: &self.idx.acls,
            digest: self
                .shared
                .cfg
                .digest_enabled
                .then_some((zxid, self.idx.digest)),
        }
    }
}
