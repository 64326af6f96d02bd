//! The writer thread: the only mutator of the tree, the sessions and the watches.
//!
//! One loop (STYLE.md 8): take what the reactors sent, prep each write into a txn staged
//! in an overlay, append it to the log; at the end of the batch one `sync` makes all of it
//! durable; then apply each txn to the published tree, queue its watch events, publish,
//! and answer. Requests that must see every earlier write applied (reads that set watches,
//! sync, setWatches, closeSession, reconnects) first close the batch.
//!
//! Holds: a write is answered only after its txn is durable (invariant 2); events of a txn
//! are in the reactors' inboxes before the txn's changes are published (invariant 5); txns
//! are applied in zxid order. A failed append or sync stops the server: never retried.

pub mod ensemble;
pub mod order;

use super::{now_ms, reads, ReactorHandle, Shared, ToReactor, ToWriter};
use crate::log::{LogError, TxnLog};
use crate::proto::ops::{event, op, ttl_of_owner, ZkError};
use crate::proto::records::{
    encode_connect_response, notification_frame, reply_frame, ConnectRequest, Id, Request,
};
use crate::proto::Writer as Jute;
use crate::server::recovery::Recent;
use crate::session::{password, SessionTracker};
use crate::tree::FastMap;
use crate::tree::{AclRef, NodeRef};
use crate::txn::commit::{self, Indexes, Source};
use crate::txn::prep::{
    prep_and_stage, prep_delete_container, Change, Overlay, PrepCtx, Recorder, TreeView,
};
use crate::txn::{apply, encode_record, Trigger, Txn, TxnHeader};
use crate::types::{conn_reactor, ConnId, SessionId, Zxid};
use crate::watch::{Kind, WatchTable};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use ensemble::{Ensemble, Forwarded, Role};
use order::{SessionOrder, NO_TICKET};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lets the calling thread run on every CPU the process may use (undoes a pinning). A
/// system call only: safe in a forked child.
pub fn unpin_current_thread() {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays within its bits. The
    // kernel keeps only the CPUs the process's cpuset allows.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..8 * std::mem::size_of::<libc::cpu_set_t>() {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Who waits for a txn's outcome.
enum Waiter {
    Reply {
        conn: ConnId,
        xid: i32,
        op: i32,
    },
    Connect {
        conn: ConnId,
        read_only: Option<bool>,
    },
    CloseSession {
        conn: Option<ConnId>,
        xid: i32,
    },
    Internal,
}

/// A request answered without a txn, waiting for an earlier request of its session.
struct DeferredRead {
    conn: ConnId,
    session: SessionId,
    xid: i32,
    req: Request,
    ids: Arc<[Id]>,
}

struct Pending {
    hdr: TxnHeader,
    txn: Txn,
    /// A multi's per-op nodes for its reply (txn::apply_with_results).
    results: Vec<Option<NodeRef>>,
    /// What applying the txn changes, recorded at prep: the commit publishes these.
    changes: Vec<Change>,
    triggers: Vec<Trigger>,
    waiter: Waiter,
    /// Its client's later requests that need no txn wait behind this (order::).
    ticket: u64,
}

/// A txn prepped (or taken) and applied to the batch's overlay.
struct Recorded {
    txn: Txn,
    changes: Vec<Change>,
    triggers: Vec<Trigger>,
    results: Vec<Option<NodeRef>>,
}

/// What to stage: a client request to prep, or a txn the server makes itself.
enum Make<'r> {
    Request {
        session: SessionId,
        ids: &'r [Id],
        req: &'r Request,
    },
    Txn(Txn),
    DeleteContainer(String),
}

pub struct WriterLoop<L: TxnLog> {
    shared: Arc<Shared>,
    log: L,
    inbox: Receiver<ToWriter>,
    reactors: Vec<ReactorHandle>,
    wake: Vec<bool>,
    /// Each client connection's outbound account (ConnInfo::unsent), from its Connect
    /// until it closes.
    outbound: FastMap<ConnId, Arc<crate::server::ConnInfo>>,
    pub sessions: SessionTracker,
    watches: WatchTable,
    idx: Indexes,
    staged: FastMap<String, Option<NodeRef>>,
    pending: VecDeque<Pending>,
    /// Requests answered without a txn, waiting for their session's earlier ones.
    order: SessionOrder<DeferredRead>,
    next_zxid: Zxid,
    last_container_check: Instant,
    scratch_sessions: Vec<SessionId>,
    /// Each session's auth ids, as of its latest request (for watch-event ACL checks).
    session_ids: FastMap<SessionId, Arc<[Id]>>,
    encode_buf: Vec<u8>,
    snaps: Snapshots,
    /// The tree digest with every staged txn applied (`idx.digest` once they commit).
    staged_digest: i64,
    /// The last batch was refused for want of disk space (logged once per episode).
    disk_full: bool,
    /// Moving averages, in ns, of one log sync and of the rest of a part's work per
    /// message (handling, applying, answering): they size the parts a long queue is
    /// taken in (`part_size`). `turn_sync_ns`: the current part's sync time.
    sync_ns: f64,
    handle_ns: f64,
    turn_sync_ns: f64,
    /// An ensemble member's part; `None` standalone.
    ens: Option<Ensemble>,
    role: Role,
    /// The newest logged txns (ensemble members only), for a leader's diff window.
    recent: Recent,
    /// A learner appended since its last sync.
    log_dirty: bool,
    /// The last zxid the log made durable.
    durable: Zxid,
    /// Since when this ensemble member has had no quorum (read-only mode starts later).
    looking_since: Option<Instant>,
    /// Sessions made in read-only mode: local, never logged, gone when it ends.
    ro_sessions: std::collections::HashSet<SessionId>,
}

/// A leader's overlay is pruned past this many paths while txns wait for a quorum.
const STAGED_PRUNE_LEN: usize = 4096;

/// An error reply to `xid`: the write was refused (ZooKeeper's SystemError).
fn reply_frame_err(zxid: Zxid) -> impl Fn(i32) -> Vec<u8> {
    move |xid| reply_frame(xid, zxid, ZkError::SystemError.code(), |_| {})
}

/// What start-up recovered, handed to the writer.
pub struct Recovered {
    pub sessions: SessionTracker,
    pub idx: Indexes,
    pub last_zxid: Zxid,
    /// Where snapshots go (dataDir/version-2).
    pub snap_dir: std::path::PathBuf,
    /// Replayed txns follow the newest snapshot: take one at the first chance.
    pub snapshot_soon: bool,
    /// Set for an ensemble member.
    pub ens: Option<Ensemble>,
    pub recent: Recent,
}

/// When to snapshot, and the child writing one.
struct Snapshots {
    dir: std::path::PathBuf,
    /// Txns logged since the last snapshot began.
    txns: u64,
    /// Snapshot after this many: random in [snapCount/2 + 1, snapCount], as ZooKeeper
    /// draws it, so the servers of an ensemble do not all snapshot at once.
    threshold: u64,
    rng: u64,
    child: Option<SnapChild>,
}

struct SnapChild {
    pid: libc::pid_t,
    zxid: Zxid,
    started: Instant,
}

impl Snapshots {
    fn draw(&mut self, snap_count: u64) {
        // xorshift64*: the writer's only randomness, seeded at start-up.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let half = (snap_count / 2).max(1);
        self.threshold = half + 1 + r % half;
    }
}

impl<L: TxnLog> WriterLoop<L> {
    pub fn new(
        shared: Arc<Shared>,
        log: L,
        inbox: Receiver<ToWriter>,
        reactors: Vec<ReactorHandle>,
        state: Recovered,
    ) -> Self {
        let Recovered {
            sessions,
            idx,
            last_zxid,
            snap_dir,
            snapshot_soon,
            ens,
            recent,
        } = state;
        let n = reactors.len();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32)
            | 1;
        let mut snaps = Snapshots {
            dir: snap_dir,
            txns: 0,
            threshold: 0,
            rng: seed,
            child: None,
        };
        snaps.draw(shared.cfg.snap_count);
        if snapshot_soon {
            snaps.txns = snaps.threshold;
        }
        let mut w = WriterLoop {
            shared,
            log,
            inbox,
            reactors,
            wake: vec![false; n],
            outbound: FastMap::default(),
            sessions,
            watches: WatchTable::default(),
            idx,
            staged: FastMap::default(),
            pending: VecDeque::new(),
            order: SessionOrder::default(),
            next_zxid: last_zxid + 1,
            last_container_check: Instant::now(),
            scratch_sessions: Vec::new(),
            session_ids: FastMap::default(),
            encode_buf: Vec::with_capacity(4096),
            snaps,
            staged_digest: 0,
            disk_full: false,
            sync_ns: 0.0,
            handle_ns: 0.0,
            turn_sync_ns: 0.0,
            role: if ens.is_some() {
                Role::Looking
            } else {
                Role::Standalone
            },
            ens,
            recent,
            log_dirty: false,
            durable: last_zxid,
            looking_since: None,
            ro_sessions: Default::default(),
        };
        if w.ens.is_some() {
            w.looking_since = Some(Instant::now());
        }
        w.staged_digest = w.idx.digest;
        // mntr may ask before the first batch: publish what recovery built.
        w.publish_stats();
        w
    }

    fn send(&mut self, conn: ConnId, msg: ToReactor) {
        let r = conn_reactor(conn);
        if let Some(h) = self.reactors.get(r) {
            let _ = h.tx.send(msg);
            self.wake[r] = true;
        }
    }

    /// Bytes for a client; `reply` = answers its oldest request at the writer.
    ///
    /// The bytes count against the connection's one outbound budget (ConnInfo::unsent,
    /// then its reactor's buffer) until they are written. Its reactor stops reading a
    /// connection over `outbound_bytes_max` and reserves room for what it sends here, so
    /// only replies far larger than its reactor saw coming (a node that grew meanwhile)
    /// can pass 4x that on their way: then the connection is closed and what it was owed
    /// is dropped, instead of queueing gigabytes for a client that does not read (its
    /// reactor closes it likewise when its buffer passes 4x).
    fn frame(&mut self, conn: ConnId, bytes: Vec<u8>, reply: bool) {
        if let Some(info) = self.outbound.get(&conn) {
            if info.overflowed.load(Relaxed) {
                return;
            }
            let hard = 4 * self.shared.cfg.outbound_bytes_max;
            let before = info.unsent.fetch_add(bytes.len(), Relaxed);
            // One frame alone always goes: what was accepted can be read back.
            if before > 0 && before + bytes.len() > hard {
                info.unsent.fetch_sub(bytes.len(), Relaxed);
                info.overflowed.store(true, Relaxed);
                self.send(conn, ToReactor::Overflow { conn });
                return;
            }
        }
        self.send(conn, ToReactor::Frame { conn, bytes, reply });
    }

    /// A session is established on `conn`: the ConnectResponse, then the reactor's cue.
    fn connected(&mut self, conn: ConnId, id: SessionId, timeout: i32, read_only: Option<bool>) {
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

    fn wake_reactors(&mut self) {
        for (i, w) in self.wake.iter_mut().enumerate() {
            if std::mem::take(w) {
                let _ = self.reactors[i].waker.wake();
            }
        }
    }

    pub fn run(mut self) {
        let tick = Duration::from_millis(self.shared.cfg.tick_ms as u64);
        let half_tick = tick / 2;
        let mut next_tick = Instant::now() + half_tick;
        let batch_max = self.shared.cfg.batch_txns_max;
        // What the reactors sent, in order; each turn takes a part of it (`part_size`), so
        // a reactor turn that carried every session's requests is answered in parts, and
        // the reactors send one part's answers while the writer does the next.
        let mut queue: std::collections::VecDeque<ToWriter> =
            std::collections::VecDeque::with_capacity(batch_max);
        loop {
            if queue.is_empty() {
                let wait = next_tick
                    .saturating_duration_since(Instant::now())
                    .min(self.until_expiry());
                match self.inbox.recv_timeout(wait) {
                    Ok(ToWriter::Batch(v)) => queue.extend(v),
                    Ok(m) => queue.push_back(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            while queue.len() < batch_max {
                match self.inbox.try_recv() {
                    Ok(ToWriter::Batch(v)) => queue.extend(v),
                    Ok(m) => queue.push_back(m),
                    Err(_) => break,
                }
            }
            let n = queue.len().min(self.part_size());
            let turn = Instant::now();
            self.turn_sync_ns = 0.0;
            for m in queue.drain(..n) {
                self.handle(m);
            }
            // Proposals and forwarded requests go before this server's own sync.
            self.flush_links();
            self.flush_or_die();
            // The part's own work (handling, applying, answering), without the sync and
            // without what follows only now and then (ticks, a snapshot's fork).
            if n > 0 {
                let work = turn.elapsed().as_nanos() as f64 - self.turn_sync_ns;
                self.handle_ns = average(self.handle_ns, work.max(0.0) / n as f64);
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + half_tick;
                self.on_tick();
                self.flush_or_die();
                self.reap_snapshot_child();
            } else if self.until_expiry().is_zero() {
                // A bucket fell due between ticks: sessions expire on time, at most a
                // tick past their deadline (ZooKeeper's bound), not at the next tick.
                self.expire_sessions();
                self.flush_or_die();
            }
            self.maybe_snapshot();
            // Acks, commits, pings.
            self.flush_links();
            // Answers that needed no txn (watch reads, sync, reconnects, 4lw) wake too.
            self.wake_reactors();
        }
    }

    /// How much of a long queue one group commit takes: enough that the sync costs at
    /// most about a third of the part's time (the rest of the turn's work for 2 syncs'
    /// worth of messages), at least `PART_MIN`, at most paddock.batchTxnsMax. A fast disk
    /// gives parts of a couple of hundred, so the reactors answer one part while the
    /// writer does the next instead of all waiting on one big batch (measured in
    /// tuning/runs/2026-12-04-vm/ab-writer-parts*.txt); a slow one gives whole batches,
    /// each sync covering as many writes as it can.
    fn part_size(&self) -> usize {
        const PART_MIN: usize = 64;
        let max = self.shared.cfg.batch_txns_max;
        let part = if self.handle_ns <= 0.0 {
            max
        } else {
            let want = (2.0 * self.sync_ns / self.handle_ns).min(max as f64) as usize;
            want.clamp(PART_MIN.min(max), max)
        };
        self.shared.stats.writer_part.store(part as u64, Relaxed);
        part
    }

    fn flush_or_die(&mut self) {
        if let Err(e) = self.flush() {
            crate::fatal(e);
        }
    }

    /// Stages a txn for `req` (prep + overlay) and appends it to the log.
    fn stage(&mut self, session: SessionId, xid: i32, ids: &[Id], req: &Request, waiter: Waiter) {
        if !self.zxid_available() {
            return;
        }
        let hdr = TxnHeader {
            client_id: session,
            cxid: xid,
            zxid: self.next_zxid,
            time: now_ms(),
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
    fn stage_server_txn(&mut self, session: SessionId, cxid: i32, txn: Txn, waiter: Waiter) {
        if !self.zxid_available() {
            return;
        }
        let hdr = TxnHeader {
            client_id: session,
            cxid,
            zxid: self.next_zxid,
            time: now_ms(),
            op: txn.op(),
        };
        self.stage_txn(hdr, txn, waiter);
    }

    /// Stages a txn the server makes itself (sessions, expiry).
    fn stage_txn(&mut self, hdr: TxnHeader, txn: Txn, waiter: Waiter) {
        if let Some(r) = self.record(&hdr, Make::Txn(txn)) {
            self.append(hdr, r, waiter);
        }
    }

    /// Preps (or takes) a txn and applies it to the batch's overlay through a `Recorder`,
    /// so later requests of the batch see it and the commit can publish what it recorded.
    fn record(&mut self, hdr: &TxnHeader, what: Make) -> Option<Recorded> {
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

    fn append(&mut self, hdr: TxnHeader, r: Recorded, waiter: Waiter) {
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
                self.proposed(hdr.zxid, &w.buf);
                self.encode_buf = w.buf;
            }
            Err(LogError::NoSpace { .. }) if self.ens.is_some() => {
                // Earlier proposals may be out already: a leader never takes a zxid back,
                // it leaves its role. This txn reached neither the log nor a learner: it
                // is not applied with the logged ones; its client hears nothing.
                self.encode_buf = w.buf;
                self.hang_up(p.waiter);
                self.abandon("the txn log is out of space");
            }
            Err(e @ LogError::NoSpace { .. }) => {
                self.encode_buf = w.buf;
                self.pending.push_back(p);
                self.refuse_batch(&e);
            }
            Err(e) => crate::fatal(e),
        }
    }

    fn session_ok(&self, session: SessionId) -> bool {
        self.sessions.get(session).is_some_and(|s| !s.closing)
    }

    fn handle(&mut self, m: ToWriter) {
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
                if self.is_learner() {
                    self.learner_request(conn, session, xid, opcode, req, &ids, raw);
                    return;
                }
                if let Some(me) = self.ens.as_ref().map(|e| e.my_id) {
                    if req.is_write() && !self.owned_by(session, me) {
                        log::info!(
                            "closing a connection of session 0x{session:x}: the session moved \
                             to another server"
                        );
                        if let Some(s) = self.sessions.get_mut(session) {
                            s.conn = None;
                        }
                        self.watches.remove_session(session);
                        self.send(conn, ToReactor::Close { conn });
                        return;
                    }
                }
                match &req {
                    Request::CloseSession => {
                        self.close_session(
                            session,
                            xid,
                            Waiter::CloseSession {
                                conn: Some(conn),
                                xid,
                            },
                        );
                    }
                    r if r.is_write() || matches!(r, Request::Reconfig) => self.stage(
                        session,
                        xid,
                        &ids,
                        &req,
                        Waiter::Reply {
                            conn,
                            xid,
                            op: opcode,
                        },
                    ),
                    _ => self.answer_in_order(DeferredRead {
                        conn,
                        session,
                        xid,
                        req,
                        ids,
                    }),
                }
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

    /// The auth ids of `session`'s live connection, for watch events' ACL checks.
    fn note_ids(&mut self, session: SessionId, ids: &Arc<[Id]>) {
        if !self
            .session_ids
            .get(&session)
            .is_some_and(|held| Arc::ptr_eq(held, ids))
        {
            self.session_ids.insert(session, ids.clone());
        }
    }

    /// What four-letter word `cmd` reports of the writer's state (only what it shows).
    fn report(&self, cmd: &str) -> crate::server::WriterReport {
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

    fn close_session(&mut self, session: SessionId, cxid: i32, waiter: Waiter) {
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
        for (path, node) in &self.staged {
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

    fn connect(&mut self, conn: ConnId, req: ConnectRequest) {
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
        if req.session_id == 0 && self.is_learner() {
            // The leader logs the session; this server answers when it commits.
            let id = self.sessions.next_session_id();
            let waiter = Waiter::Connect {
                conn,
                read_only: req.read_only,
            };
            let body = timeout.to_be_bytes();
            self.forward(
                id,
                0,
                op::CREATE_SESSION,
                &body,
                &[],
                Forwarded::Waiter(waiter),
            );
            return;
        }
        if req.session_id == 0 {
            let id = self.sessions.next_session_id();
            let waiter = Waiter::Connect {
                conn,
                read_only: req.read_only,
            };
            self.stage_server_txn(id, 0, Txn::CreateSession { timeout }, waiter);
            return;
        }
        let id = req.session_id;
        let valid = req.passwd.as_slice() == password(id) && self.session_ok(id);
        if !valid {
            self.refuse_reconnect(conn, id, req.read_only);
            return;
        }
        if self.is_learner() {
            // The leader says whether the session lives, and attaches it here.
            self.ask_revalidate(conn, id, timeout, req.read_only);
            return;
        }
        self.resume_session(conn, id, timeout, req.read_only);
    }

    /// A reconnect of `id` refused: the client is told its session is gone.
    fn refuse_reconnect(&mut self, conn: ConnId, id: SessionId, read_only: Option<bool>) {
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
    fn resume_session(
        &mut self,
        conn: ConnId,
        id: SessionId,
        timeout: i32,
        read_only: Option<bool>,
    ) {
        let now = now_ms() as u64;
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
        if let Some(me) = self.ens.as_ref().map(|e| e.my_id) {
            self.set_owner(id, me);
        }
        self.connected(conn, id, timeout, read_only);
    }

    /// Requests that run on the writer between batches: reads with watches, watch
    /// management, sync, getEphemerals.
    fn barrier_request(
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

    /// Group commit: one sync for everything appended; then, standalone, apply, notify,
    /// publish and answer all of it. A leader tells its ZAB core what is persisted (it
    /// applies on a quorum, `apply_upto`); a learner sends the acks that waited.
    fn flush(&mut self) -> Result<(), LogError> {
        let appended = self
            .pending
            .back()
            .is_some_and(|p| p.hdr.zxid > self.durable);
        if !appended && !self.log_dirty {
            return Ok(());
        }
        let t0 = Instant::now();
        let durable = match self.log.sync() {
            Ok(z) => z,
            Err(LogError::NoSpace { .. }) if self.ens.is_some() => {
                self.abandon("the txn log is out of space");
                return Ok(());
            }
            Err(e @ LogError::NoSpace { .. }) => {
                self.refuse_batch(&e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let sync_ns = t0.elapsed().as_nanos() as f64;
        self.sync_ns = average(self.sync_ns, sync_ns);
        self.turn_sync_ns += sync_ns;
        self.durable = durable;
        self.log_dirty = false;
        if self.disk_full {
            self.disk_full = false;
            self.shared.writes_refused.store(false, Relaxed);
            log::info!("txn log: space again; writes are accepted");
        }
        self.shared
            .stats
            .fsync_ms
            .record(t0.elapsed().as_millis() as u64);
        self.shared.stats.fsyncs.fetch_add(1, Relaxed);
        match self.role {
            Role::Standalone => self.apply_upto(durable),
            _ => self.synced(durable),
        }
        Ok(())
    }

    /// Applies the pending txns up to `zxid` (durable, and committed): publishes the node
    /// versions prep made, queues watch events, answers.
    fn apply_upto(&mut self, zxid: Zxid) {
        let n = self
            .pending
            .iter()
            .take_while(|p| p.hdr.zxid <= zxid)
            .count();
        if n == 0 {
            return;
        }
        self.shared.stats.txns.fetch_add(n as u64, Relaxed);
        self.snaps.txns += n as u64;
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

    /// The rest of committing a txn that `commit::apply` applied: sessions, watch events
    /// (queued before the changes are published: invariant 5), publish, the answer (with
    /// the multi results apply kept).
    fn finish_apply(&mut self, mut p: Pending, applied: commit::Applied) {
        let shared = self.shared.clone();
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

    /// A request that needs no txn (a read, a watch change, sync): answered now, or, if an
    /// earlier request of its session is still in flight here, right after that one
    /// (order::), from the tree as it then stands. It never waits for a sync.
    fn answer_in_order(&mut self, d: DeferredRead) {
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

    fn session_changes(
        &mut self,
        p: &Pending,
        created: Vec<(SessionId, i32)>,
        closed: Vec<SessionId>,
    ) {
        let now = now_ms() as u64;
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
                    if !is_requester {
                        self.send(c, ToReactor::Close { conn: c });
                    }
                }
            }
        }
    }

    fn notify(&mut self, t: &Trigger) {
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

    fn answer(&mut self, p: Pending) {
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
    fn write_reply(
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

    fn publish_stats(&self) {
        let s = &self.shared.stats;
        s.sessions.store(self.sessions.len() as u64, Relaxed);
        s.ephemerals_count.store(self.idx.ephemeral_count, Relaxed);
        s.watch_count.store(self.watches.count() as u64, Relaxed);
        s.data_bytes
            .store(self.idx.data_bytes.max(0) as u64, Relaxed);
    }

    fn on_tick(&mut self) {
        let now = now_ms() as u64;
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
            let interval = Duration::from_millis(self.shared.cfg.container_check_interval_ms);
            if self.last_container_check.elapsed() >= interval {
                self.last_container_check = Instant::now();
                self.reap_containers();
            }
        }
        self.publish_stats();
    }

    /// How long until the next expiry bucket falls due; `Duration::MAX` when this server
    /// does not end sessions (a learner) or none is in a bucket.
    fn until_expiry(&self) -> Duration {
        if !self.owns_sessions() {
            return Duration::MAX;
        }
        match self.sessions.next_expiry_ms() {
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms() as u64)),
            None => Duration::MAX,
        }
    }

    fn expire_sessions(&mut self) {
        self.expire_sessions_at(now_ms() as u64);
    }

    fn expire_sessions_at(&mut self, now: u64) {
        for id in self.sessions.expire(now) {
            log::info!("session 0x{id:x} expired");
            self.close_session_expired(id);
        }
    }

    /// Starts a snapshot when enough txns were applied since the last: at a txn boundary
    /// (everything applied is published), the log rolls to a new segment and a forked
    /// child writes the tree as it is now. The writer goes on at once; it never
    /// waits for the child, and starts no second one while one runs.
    fn maybe_snapshot(&mut self) {
        if self.snaps.child.is_some() {
            self.reap_snapshot_child();
        }
        if self.snaps.txns < self.snaps.threshold
            || self.snaps.child.is_some()
            || !self.established()
        {
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
        let t0 = Instant::now();
        // SAFETY: fork in a threaded process: the child is a copy of this thread only. It
        // reads the tree, the sessions and the ACL cache, which only this thread mutates
        // and which are consistent here (between batches); it allocates only from this
        // thread's own allocator heap (mimalloc's thread-local, lock-free path), takes no
        // lock another thread may have held, logs nothing, and leaves with _exit.
        let parent = unsafe { libc::getpid() };
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            self.snapshot_child(parent, zxid, &sessions);
        }
        let pause = t0.elapsed();
        if pid < 0 {
            log::error!(
                "cannot fork to snapshot at 0x{zxid:x}: {}; trying again after more txns",
                std::io::Error::last_os_error()
            );
            self.snaps.txns = 0;
            return;
        }
        self.shared
            .stats
            .snapshot_fork_us
            .store(pause.as_micros() as u64, Relaxed);
        log::info!(
            "snapshot 0x{zxid:x}: child {pid} writes it; the writer paused {} us to fork",
            pause.as_micros()
        );
        self.snaps.child = Some(SnapChild {
            pid,
            zxid,
            started: t0,
        });
        self.snaps.txns = 0;
        self.snaps.draw(self.shared.cfg.snap_count);
    }

    /// Every session and its timeout, as a snapshot records them.
    fn session_list(&self) -> Vec<(i64, i32)> {
        self.sessions
            .iter()
            .map(|(id, s)| (*id, s.timeout_ms))
            .collect()
    }

    /// What a snapshot of the applied tree at `zxid` serializes.
    fn snap_source<'a>(
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

    /// The forked child: write the snapshot and leave without running any destructor.
    fn snapshot_child(&self, parent: libc::pid_t, zxid: Zxid, sessions: &[(i64, i32)]) -> ! {
        // Die with the server, as ZooKeeper's snapshot thread would: after a kill -9
        // nothing may go on writing into the data directory. (If the server died before
        // this took hold, this process already has another parent.)
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
        }
        // Drop every inherited descriptor (client sockets, the log, the lock file's is kept
        // by the parent): a connection the parent closes must not stay open in here.
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
        // The writer's core pinning came along with the fork: the child would take turns
        // with the writer on one core for the whole snapshot. It may run on any core.
        unpin_current_thread();
        let src = self.snap_source(zxid, sessions);
        let code = match crate::snap::write_file(&self.snaps.dir, zxid, &src) {
            Ok(_) => 0,
            Err(e) => {
                let msg = format!("paddock: snapshot 0x{zxid:x} failed: {e}\n");
                unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
                1
            }
        };
        unsafe { libc::_exit(code) }
    }

    /// The log has no space for the staged txns: none of them reached it. Refuse them all
    /// and forget what they staged, so the tree, the zxids and the sessions stay as the
    /// log has them; reads go on, and a later batch is tried afresh (the disk may have
    /// room again). A client gets ZooKeeper's SystemError for its write.
    fn refuse_batch(&mut self, e: &LogError) {
        self.log.discard();
        let pending = std::mem::take(&mut self.pending);
        if !self.disk_full {
            self.disk_full = true;
            self.shared.writes_refused.store(true, Relaxed);
            log::error!(
                "{e}: refusing writes (SystemError to clients) until space is freed; reads go on"
            );
        }
        self.shared
            .stats
            .refused_writes
            .fetch_add(pending.len() as u64, Relaxed);
        self.staged.clear();
        self.next_zxid = self.shared.last_zxid() + 1;
        self.staged_digest = self.idx.digest;
        let zxid = self.shared.last_zxid();
        for p in pending {
            let session = p.hdr.client_id;
            let refused = reply_frame_err(zxid);
            match p.waiter {
                Waiter::Reply { conn, xid, .. } => self.frame(conn, refused(xid), true),
                Waiter::Connect { conn, .. } => self.send(conn, ToReactor::Close { conn }),
                Waiter::CloseSession { conn, xid } => {
                    if let Some(conn) = conn {
                        self.frame(conn, refused(xid), true);
                    }
                    self.reopen(session);
                }
                Waiter::Internal => self.reopen(session),
            }
            // Reads behind a refused write are still answered, after its error.
            self.answered(session, p.ticket);
        }
        self.wake_reactors();
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
        let now = now_ms() as u64;
        if let Some(s) = self.sessions.get_mut(session) {
            s.closing = false;
        }
        self.sessions.touch(session, now);
    }

    /// Notes a finished snapshot child, without waiting for one that still runs.
    fn reap_snapshot_child(&mut self) {
        self.reap_snapshot_child_waiting(false);
    }

    /// Notes a finished snapshot child; `wait`: for one that still runs, too (before a
    /// learner's TRUNC or SNAP removes snapshots, so none appears behind it).
    fn reap_snapshot_child_waiting(&mut self, wait: bool) {
        let Some(c) = &self.snaps.child else { return };
        let mut status = 0;
        let flags = if wait { 0 } else { libc::WNOHANG };
        let r = unsafe { libc::waitpid(c.pid, &mut status, flags) };
        if r == 0 {
            return;
        }
        let name = crate::snap::snapshot_name(c.zxid);
        if r == c.pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            let size = std::fs::metadata(self.snaps.dir.join(&name)).map_or(0, |m| m.len());
            log::info!(
                "snapshot {name} written: {size} bytes in {} ms",
                c.started.elapsed().as_millis()
            );
            self.shared.stats.snapshots.fetch_add(1, Relaxed);
        } else {
            let how = if r < 0 {
                std::io::Error::last_os_error().to_string()
            } else if libc::WIFSIGNALED(status) {
                format!("killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!("exit status {}", libc::WEXITSTATUS(status))
            };
            let tmp = self
                .snaps
                .dir
                .join(format!("{}{:x}", crate::snap::TMP_PREFIX, c.zxid));
            let _ = std::fs::remove_file(tmp);
            log::error!(
                "snapshot {name} failed ({how}); the next one is tried after snapCount txns"
            );
        }
        self.snaps.child = None;
    }

    fn close_session_expired(&mut self, id: SessionId) {
        let conn = self.sessions.get(id).and_then(|s| s.conn);
        self.close_session(id, 0, Waiter::Internal);
        if let Some(c) = conn {
            self.send(c, ToReactor::Close { conn: c });
        }
    }

    /// Containers whose last child went and TTL nodes past their TTL go, by deleteContainer
    /// txns, at most `znode.container.maxPerMinute` per minute.
    fn reap_containers(&mut self) {
        let cfg = &self.shared.cfg;
        let per_check = ((cfg.container_max_per_minute as u64 * cfg.container_check_interval_ms)
            / 60_000)
            .max(1) as usize;
        let now = now_ms();
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
                time: now_ms(),
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
}

/// An exponential moving average (weight 1/8 for the new sample); the first sample starts it.
fn average(avg: f64, sample: f64) -> f64 {
    if avg <= 0.0 {
        sample
    } else {
        avg + (sample - avg) / 8.0
    }
}

#[cfg(test)]
mod tests {
    /// A pinned thread (the writer; a snapshot child inherits its mask) gets every CPU
    /// the process may use back.
    #[test]
    fn unpinning_restores_every_allowed_cpu() {
        let all = core_affinity::get_core_ids().expect("cpu mask");
        std::thread::spawn(move || {
            core_affinity::set_for_current(all[0]);
            assert_eq!(core_affinity::get_core_ids().unwrap().len(), 1);
            super::unpin_current_thread();
            assert_eq!(core_affinity::get_core_ids().unwrap().len(), all.len());
        })
        .join()
        .unwrap();
    }
}
