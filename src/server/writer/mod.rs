//! The writer thread: the only mutator of the tree, the sessions and the watches.
//!
//! One loop (STYLE.md 8) whose body is the stages, in order (`run`):
//!
//! 1. take a part of what the reactors and the quorum links sent (`take`, `part_size`);
//! 2. prep and append: each write is prepped into a txn staged in an overlay and its
//!    record appended to the log (stage.rs); a learner forwards it instead; a request
//!    that needs no txn is answered in its session's order (requests.rs, order.rs);
//! 3. timers: ticks, session expiry and container reaping stage their txns (timers.rs);
//! 4. propose: proposals and forwarded requests leave before this server's own sync;
//! 5. sync: one group commit for everything appended;
//! 6. apply → notify → answer, as far as the role allows (apply.rs): standalone at once,
//!    a leader on a quorum of acks, a learner on the leader's COMMIT;
//! 7. snapshot at a txn boundary (snap::fork), and the acks, commits and answers go out.
//!
//! What differs between standalone, leader, learner and read-only is in role.rs, one
//! hook per stage, and each role's own work in its file. Request handling never syncs:
//! only stage 5 does (and, outside request handling, a learner taking a new epoch and a
//! member leaving its role: ensemble.rs).
//!
//! Holds: a write is answered only after its txn is durable (invariant 2); events of a txn
//! are in the reactors' inboxes before the txn's changes are published (invariant 5); txns
//! are applied in zxid order; replies of one session leave in its order (invariant 3). A
//! failed append or sync stops the server: never retried.

mod apply;
pub mod ensemble;
mod leader;
mod learner;
pub mod order;
mod read_only;
mod requests;
pub mod role;
mod stage;
mod standalone;
mod timers;

use super::{reads, ReactorHandle, Shared, ToReactor, ToWriter};
use crate::log::{LogError, TxnLog};
use crate::mutation::{self, Mutation};
use crate::proto::ops::{event, op, ttl_of_owner, ZkError};
use crate::proto::records::{
    encode_connect_response, notification_frame, reply_frame, ConnectRequest, Id, Request,
};
use crate::proto::Writer as Jute;
use crate::server::recovery::Recent;
use crate::session::{password, SessionTracker};
use crate::snap::fork::Snapshots;
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
use ensemble::Ensemble;
use learner::Forwarded;
use order::{SessionOrder, NO_TICKET};
use role::Role;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The txn log, and what a learner's TRUNC and SNAP need of the data directory around
/// it: rebuilding the state as start-up does. The writer is generic over it: the files
/// (`FileTxnLog`), or the simulator's disk (testing/).
pub trait Storage: TxnLog {
    /// The state from the newest snapshot in `snap_dir` and the log after it; `now`
    /// (ms since the epoch) touches its sessions.
    fn recover(
        &mut self,
        cfg: &crate::config::Config,
        snap_dir: &std::path::Path,
        now: i64,
    ) -> Result<crate::server::recovery::RecoveredState, crate::server::recovery::StartError>;
}

impl Storage for crate::log::FileTxnLog {
    fn recover(
        &mut self,
        cfg: &crate::config::Config,
        snap_dir: &std::path::Path,
        now: i64,
    ) -> Result<crate::server::recovery::RecoveredState, crate::server::recovery::StartError> {
        let log_v2 = cfg.data_log_dir.join("version-2");
        crate::server::recovery::recover_state_from(cfg, snap_dir, now, |after, f| {
            crate::log::recover(&log_v2, after, f)
        })
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

pub struct WriterLoop<L: Storage> {
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
    /// When containers were last reaped (Clock::mono_ms).
    last_container_check: u64,
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
    looking_since: Option<u64>,
    /// The writer's time (Clock::Real, or the simulator's).
    clock: crate::server::Clock,
    /// The ZAB core's clock starts here (Clock::mono_ms).
    core_zero: u64,
    /// What the reactors sent and the loop has yet to take (stage 1).
    queue: VecDeque<ToWriter>,
    /// When the next half tick falls due (Clock::mono_ms).
    next_tick: u64,
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
    /// Clock::Real; the simulator's clock in testing/.
    pub clock: crate::server::Clock,
}

impl<L: Storage> WriterLoop<L> {
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
            clock,
        } = state;
        let n = reactors.len();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32)
            | 1;
        let snaps = Snapshots::new(snap_dir, shared.cfg.snap_count, seed, snapshot_soon);
        let first_tick = clock.mono_ms() + shared.cfg.tick_ms as u64 / 2;
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
            last_container_check: clock.mono_ms(),
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
            core_zero: clock.mono_ms(),
            queue: VecDeque::new(),
            next_tick: first_tick,
            clock,
            ro_sessions: Default::default(),
        };
        if w.ens.is_some() {
            w.looking_since = Some(w.clock.mono_ms());
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

    fn wake_reactors(&mut self) {
        for (i, w) in self.wake.iter_mut().enumerate() {
            if std::mem::take(w) {
                let _ = self.reactors[i].waker.wake();
            }
        }
    }

    /// The loop: waits for work, then one turn of the stages (`turn`).
    pub fn run(mut self) {
        loop {
            if self.queue.is_empty() {
                let wait = self
                    .next_tick
                    .saturating_sub(self.clock.mono_ms())
                    .min(self.until_expiry().as_millis() as u64);
                match self.inbox.recv_timeout(Duration::from_millis(wait)) {
                    Ok(ToWriter::Batch(v)) => self.queue.extend(v),
                    Ok(m) => self.queue.push_back(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            self.turn();
        }
    }

    /// One turn of the loop; its body is the stages (module doc). It never waits for
    /// work: the simulator (testing/) drives the writer by calling this.
    pub fn turn(&mut self) {
        let half_tick = (self.shared.cfg.tick_ms as u64 / 2).max(1);
        // 1. Take what came, up to paddock.batchTxnsMax, and a part of it. What the
        // reactors sent stays in order; a reactor turn that carried every session's
        // requests is answered in parts, and the reactors send one part's answers while
        // the writer does the next.
        while self.queue.len() < self.shared.cfg.batch_txns_max {
            match self.inbox.try_recv() {
                Ok(ToWriter::Batch(v)) => self.queue.extend(v),
                Ok(m) => self.queue.push_back(m),
                Err(_) => break,
            }
        }
        let n = self.queue.len().min(self.part_size());
        let turn = Instant::now();
        self.turn_sync_ns = 0.0;
        // 2. Prep and append (or forward, or answer in session order).
        for _ in 0..n {
            let m = self.queue.pop_front().expect("n messages queued");
            self.handle(m);
        }
        // 3. Timers: what they stage goes to this turn's sync.
        let t = Instant::now();
        let now = self.clock.mono_ms();
        if now >= self.next_tick {
            self.next_tick = now + half_tick;
            self.on_tick();
        } else if self.until_expiry().is_zero() {
            // A bucket fell due between ticks: sessions expire on time, at most a
            // tick past their deadline (ZooKeeper's bound), not at the next tick.
            self.expire_sessions();
        }
        let timers_ns = t.elapsed().as_nanos() as f64;
        // 4. Propose: proposals and forwarded requests go before this server's sync.
        self.flush_links();
        // 5. Sync, then 6. apply → notify → answer, as far as the role allows.
        self.sync();
        self.measure_part(n, turn, timers_ns);
        #[cfg(debug_assertions)]
        if let Err(why) = self.check_state(false) {
            panic!("writer state: {why}");
        }
        // 7. Snapshot at a txn boundary; acks, commits, pings and answers go out.
        self.maybe_snapshot();
        self.flush_links();
        self.wake_reactors();
    }

    /// The part's own work per message (handling, applying, answering), without the
    /// sync and without the timers, for `part_size`.
    fn measure_part(&mut self, n: usize, turn: Instant, timers_ns: f64) {
        if n > 0 {
            let work = turn.elapsed().as_nanos() as f64 - self.turn_sync_ns - timers_ns;
            self.handle_ns = average(self.handle_ns, work.max(0.0) / n as f64);
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
        let part = if self.handle_ns <= 0.0 || self.clock.simulated() {
            max
        } else {
            let want = (2.0 * self.sync_ns / self.handle_ns).min(max as f64) as usize;
            want.clamp(PART_MIN.min(max), max)
        };
        self.shared.stats.writer_part.store(part as u64, Relaxed);
        part
    }

    /// Stage 5, sync: one group commit makes everything appended durable; the role's
    /// pipeline goes on from there (`after_sync`: standalone applies and answers, a
    /// leader's ZAB core hears it persisted, a learner's acks go). A failed sync stops
    /// the server (never retried); a full disk is the role's to handle.
    fn sync(&mut self) {
        let appended = self
            .pending
            .back()
            .is_some_and(|p| p.hdr.zxid > self.durable);
        if !appended && !self.log_dirty {
            return;
        }
        let t0 = Instant::now();
        let durable = match self.log.sync() {
            Ok(z) => z,
            Err(e @ LogError::NoSpace { .. }) => return self.out_of_space(&e),
            Err(e) => crate::fatal(e),
        };
        // Control plane: what is durable never goes back.
        assert!(
            durable >= self.durable,
            "the log says 0x{durable:x} is durable after 0x{:x}",
            self.durable
        );
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
        self.after_sync(durable);
    }

    /// The control plane's invariants between turns (TigerBeetle-style): the simulator
    /// checks them after every turn (`full`: the indexes against the whole tree too),
    /// debug builds after every turn. `Err` says which one broke.
    pub fn check_state(&self, full: bool) -> Result<(), StateBroken> {
        let applied = self.shared.last_zxid();
        // Pending txns: in zxid order, all past what is applied, none past what is next.
        let mut prev = applied;
        for p in &self.pending {
            if p.hdr.zxid <= prev {
                return broken(format!("pending txn 0x{:x} after 0x{prev:x}", p.hdr.zxid));
            }
            prev = p.hdr.zxid;
        }
        if prev >= self.next_zxid {
            return broken(format!(
                "txn 0x{prev:x} staged, but 0x{:x} is next",
                self.next_zxid
            ));
        }
        if self.durable > self.next_zxid - 1 {
            return broken(format!("0x{:x} durable, beyond the last txn", self.durable));
        }
        // Standalone, everything applied is durable; nothing staged outlives its txns.
        if matches!(self.role, Role::Standalone) {
            if applied > self.durable {
                return broken(format!(
                    "0x{applied:x} applied, only 0x{:x} durable",
                    self.durable
                ));
            }
            if self.pending.is_empty() && !self.staged.is_empty() {
                return broken(format!(
                    "{} staged changes with no txn pending",
                    self.staged.len()
                ));
            }
        }
        // Epochs: the accepted one is never behind the current one, nor behind any txn
        // this member has logged (it proposes or accepts only in its accepted epoch).
        if let Some(ens) = &self.ens {
            let (accepted, current) = (ens.epochs.accepted, ens.epochs.current);
            let logged = crate::zab::broadcast::epoch_of(self.next_zxid - 1);
            if current > accepted || logged > accepted {
                return broken(format!(
                    "epochs {accepted}/{current} (accepted/current), a txn of epoch {logged} logged"
                ));
            }
        }
        // Every ephemeral index entry names a session the table has.
        for s in self.idx.ephemerals.keys() {
            if self.sessions.get(*s).is_none() {
                return broken(format!(
                    "ephemerals indexed for session 0x{s:x}, not in the table"
                ));
            }
        }
        if full {
            let tree = &self.shared.tree;
            let mut count = 0u64;
            let mut bad = None;
            tree.for_each(|p, n| {
                let owner = n.fields().ephemeral_owner;
                let ext = self.shared.cfg.extended_types;
                if crate::proto::ops::ephemeral_session(owner, ext).is_some() {
                    count += 1;
                    let indexed = self
                        .idx
                        .ephemerals
                        .get(&owner)
                        .is_some_and(|s| s.contains(p));
                    if !indexed && bad.is_none() {
                        bad = Some(format!("ephemeral {p} of 0x{owner:x} is not indexed"));
                    }
                }
            });
            if let Some(b) = bad {
                return Err(StateBroken(b));
            }
            if count != self.idx.ephemeral_count {
                return broken(format!(
                    "{count} ephemerals in the tree, {} counted",
                    self.idx.ephemeral_count
                ));
            }
        }
        Ok(())
    }

    /// An ensemble member's (accepted, current) epochs.
    pub fn epochs(&self) -> Option<(i64, i64)> {
        self.ens
            .as_ref()
            .map(|e| (e.epochs.accepted, e.epochs.current))
    }

    /// The digest of the published tree (ZooKeeper's tree digest), with every applied
    /// txn in it.
    pub fn digest(&self) -> i64 {
        self.idx.digest
    }

    fn publish_stats(&self) {
        let s = &self.shared.stats;
        s.sessions.store(self.sessions.len() as u64, Relaxed);
        s.ephemerals_count.store(self.idx.ephemeral_count, Relaxed);
        s.watch_count.store(self.watches.count() as u64, Relaxed);
        s.data_bytes
            .store(self.idx.data_bytes.max(0) as u64, Relaxed);
    }
}

/// A control-plane invariant that does not hold (`WriterLoop::check_state`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateBroken(pub String);

fn broken(why: String) -> Result<(), StateBroken> {
    Err(StateBroken(why))
}

/// An exponential moving average (weight 1/8 for the new sample); the first sample starts it.
fn average(avg: f64, sample: f64) -> f64 {
    if avg <= 0.0 {
        sample
    } else {
        avg + (sample - avg) / 8.0
    }
}
