//! Whole-server deterministic simulation (issue 15, item 4), standalone and ensembles:
//! the real writer of each member (its loop turned by hand, `WriterLoop::turn`), with its
//! sessions, watches, session order, ZAB core and published read view, on a simulated
//! clock (`Clock::Sim`), a simulated disk per member (`SimLog`: loses the unsynced tail or
//! tears the last record in a crash, fails a sync, so that the server stops (`fatal`
//! unwinds under the simulator), fills up; recovery is the real one, `Storage::recover`)
//! and a simulated network (`Link::simulated`: each learner link carries its bytes in
//! order with delays; partitions cut links; a member that dies closes its links). The
//! election is its outcome, as FLE reaches it: in each part of the network, looking
//! members follow a leader that is there, or a quorum of looking voters elects the
//! highest (epoch, zxid, id). A model of the reactor stands between the writers and the
//! seeded clients: it keeps each connection's replies in order as the real one does
//! (plain reads run on the published tree with the real read path; a read behind its
//! session's writes waits, or standalone may go to the writer) and delivers what the
//! writers send in order.
//!
//! Clients connect to any member and move between them; they issue writes to their own
//! keys (setData, pipelined), multis that write two keys with one value, ephemeral
//! creates and deletes, sequential creates, plain and watching reads (getData, exists,
//! getChildren2), multiReads, syncs, addauth, closes, reconnects, and silences long
//! enough to expire. Checked at every step (and no sequential name handed out twice):
//!
//! - replies of a connection come in xid order;
//! - no answered write is lost, across crashes and leader changes: standalone a read
//!   never returns less than the newest write answered before it was sent (reads are
//!   linearizable there); in an ensemble not less than the session's own (ZooKeeper's
//!   reads are sequentially consistent), and once healed every member holds every
//!   answered write;
//! - no refused write (SystemError, full disk) is ever seen, and no value before it was
//!   written;
//! - a session's reads never go back (values and reply zxids), across reconnects;
//! - a multi is seen whole: by multiReads, and in every tree state readers may see (the
//!   end of each publish window, `mutation::published`);
//! - a watch event comes before any reply that shows the data it announces;
//! - no ephemeral outlives its session: every ephemeral in a member's published tree
//!   belongs to a session of its table; standalone (and, healed, on every member) none
//!   of a session whose close was answered or that expired;
//! - a close is answered before its connection closes, unless the server stopped serving;
//! - each writer's control-plane state holds (`WriterLoop::check_state`);
//! - members that applied the same zxid have the same tree digest (one history: no split
//!   brain, no bad sync); a serving leader has applied every zxid a client saw; and an
//!   ensemble healed for its last quarter converges: every member serving at the same
//!   zxid.
//!
//! A failing seed prints itself and its replay, `ServerSim::run(seed, members, steps,
//! mutation)`, which runs it again exactly (`PADDOCK_SIM_TRACE=N` keeps the last N events
//! instead of 60). Snapshots are off (snapCount 1e8): a snapshot is a fork of the process.

use super::{Entropy, Violation};
use crate::config::{Config, RawConfig};
use crate::log::{LogError, TxnLog};
use crate::mutation::{self, Mutation};
use crate::proto::ops::{event, op, xid as xids, ZkError};
use crate::proto::records::{ConnectRequest, CreateRequest, Id, MultiOp, Request};
use crate::proto::Reader;
use crate::quorum::links::{Link, LinkEvent, SimPipe};
use crate::quorum::role::QuorumEvent;
use crate::server::recovery::Epochs;
use crate::server::recovery::{recover_state_from, RecoveredState, StartError};
use crate::server::writer::ensemble::Ensemble;
use crate::server::writer::{Recovered, Storage, WriterLoop};
use crate::server::{reads, Clock, ConnInfo, ReactorHandle, Shared, ToReactor, ToWriter};
use crate::session::password;
use crate::types::{ConnId, SessionId, Zxid};
use crate::zab::broadcast::Limits;
use crate::zab::election::Vote;
use crate::zab::packet::QuorumPacket;
use crossbeam_channel::{Receiver, Sender};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;

/// A guarantee one step found broken (`run` makes it a `Violation`, with the seed, the
/// mutation and the last events).
#[derive(Debug)]
struct Broken(String);

fn broken<T>(why: String) -> Result<T, Broken> {
    Err(Broken(why))
}

/// The simulated disk of one server.
#[derive(Default)]
pub struct Disk {
    /// Records made durable by a sync, in order, each framed as the log file frames it
    /// (checksum, length, payload, trailer: `log::frame_record`).
    durable: Vec<(Zxid, Vec<u8>)>,
    /// Appended since the last sync: lost in a crash, all or in part.
    unsynced: Vec<(Zxid, Vec<u8>)>,
    last: Zxid,
    /// The next sync fails (EIO): the server stops.
    fail_sync: bool,
    /// No space: appends and syncs fail with NoSpace.
    full: bool,
    pub syncs: u64,
}

impl Disk {
    /// A crash (kill -9, or power lost): what was appended and not synced survives in
    /// part (its pwrite may have reached the page cache), and the last record that
    /// survives may be torn.
    fn crash(&mut self, rng: &mut Entropy) {
        let unsynced = std::mem::take(&mut self.unsynced);
        let keep = rng.below(unsynced.len() as u64 + 1) as usize;
        for (i, (z, r)) in unsynced.into_iter().take(keep).enumerate() {
            let mut framed = Vec::with_capacity(r.len() + 13);
            crate::log::frame_record(&r, &mut framed);
            if i + 1 == keep && rng.below(3) == 0 {
                // Torn: the write stopped partway (the reader finds the frame cut short).
                framed.truncate(rng.below(framed.len() as u64) as usize);
            }
            self.durable.push((z, framed));
        }
        self.fail_sync = false;
    }
}

/// The writer's log on a `Disk`.
pub struct SimLog(Rc<RefCell<Disk>>);

fn no_space() -> LogError {
    LogError::NoSpace {
        path: "sim".into(),
        error: std::io::ErrorKind::StorageFull.into(),
    }
}

impl TxnLog for SimLog {
    fn append(&mut self, zxid: Zxid, txn: &[u8]) -> Result<(), LogError> {
        let mut d = self.0.borrow_mut();
        // As the file log: a full disk shows when a segment starts (here: every other
        // zxid) or when the sync preallocates, with the records still pending.
        if d.full && zxid % 2 == 0 {
            return Err(no_space());
        }
        d.unsynced.push((zxid, txn.to_vec()));
        Ok(())
    }
    fn sync(&mut self) -> Result<Zxid, LogError> {
        let mut d = self.0.borrow_mut();
        if d.fail_sync {
            return Err(LogError::Poisoned);
        }
        if d.full && !d.unsynced.is_empty() {
            return Err(no_space());
        }
        d.syncs += 1;
        let recs = std::mem::take(&mut d.unsynced);
        for (z, r) in recs {
            d.last = z;
            let mut framed = Vec::with_capacity(r.len() + 13);
            crate::log::frame_record(&r, &mut framed);
            d.durable.push((z, framed));
        }
        Ok(d.last)
    }
    fn discard(&mut self) {
        self.0.borrow_mut().unsynced.clear();
    }
    fn roll(&mut self) -> Result<(), LogError> {
        Ok(())
    }
    fn truncate_after(&mut self, zxid: Zxid) -> Result<(), LogError> {
        let mut d = self.0.borrow_mut();
        d.durable.retain(|(z, _)| *z <= zxid);
        d.unsynced.clear();
        d.last = zxid;
        Ok(())
    }
    fn reset(&mut self, zxid: Zxid) -> Result<(), LogError> {
        let mut d = self.0.borrow_mut();
        d.durable.clear();
        d.unsynced.clear();
        d.last = zxid;
        Ok(())
    }
}

impl Storage for SimLog {
    /// As start-up: the newest snapshot in `snap_dir` (a real directory, where a
    /// learner installs its leader's SNAP), then the durable records after it, up to the
    /// first that does not decode (a torn tail), which is cut off.
    fn recover(
        &mut self,
        cfg: &Config,
        snap_dir: &Path,
        now: i64,
    ) -> Result<RecoveredState, StartError> {
        let disk = self.0.clone();
        recover_state_from(cfg, snap_dir, now, |after, f| {
            let mut d = disk.borrow_mut();
            let mut out = crate::log::Recovered {
                last_zxid: after,
                ..Default::default()
            };
            // One segment's bytes, read by the log's own reader: a torn or corrupt tail
            // ends the replay and is cut off, as `log::recover` cuts it from a file.
            let mut seg = crate::log::LOG_MAGIC.to_be_bytes().to_vec();
            seg.extend_from_slice(&crate::log::LOG_VERSION.to_be_bytes());
            seg.extend_from_slice(&0i64.to_be_bytes());
            for (_, r) in &d.durable {
                seg.extend_from_slice(r);
            }
            let mut good = 0;
            let mut bad = None;
            let (_, tail) = crate::log::scan_segment(&seg, |_, payload| match f(payload) {
                Ok(z) => {
                    out.last_zxid = out.last_zxid.max(z);
                    out.records += 1;
                    good += 1;
                    true
                }
                Err(e) => {
                    bad = Some(e.to_string());
                    false
                }
            })
            .expect("a segment the simulator wrote");
            if tail != crate::log::Tail::Clean || bad.is_some() {
                out.truncated
                    .push(format!("{tail:?} tail after {good} records {bad:?}"));
            }
            d.durable.truncate(good);
            d.last = out.last_zxid;
            Ok(out)
        })
    }
}

/// One server process: its writer and what the reactor model needs.
struct Node {
    writer: WriterLoop<SimLog>,
    shared: Arc<Shared>,
    to_writer: Sender<ToWriter>,
    from_writer: Receiver<ToReactor>,
    // Kept for the handle's waker.
    _poll: Box<dyn std::any::Any>,
}

/// One member: its process (when up), disk, data directory, and the election's view.
struct Member {
    node: Option<Node>,
    disk: Rc<RefCell<Disk>>,
    /// dataDir: myid, the epoch files, snapshots (recovery's first, a leader's SNAP).
    dir: tempfile::TempDir,
    cfg: Config,
    /// Looking, with its vote: (last logged zxid, current epoch).
    looking: Option<(Zxid, i64)>,
    relook: Option<Receiver<(i64, i64)>>,
    /// Told to follow this leader at this step; its link is not made yet.
    following: Option<(i64, u64)>,
    /// Its side of the network (members on different sides cannot talk).
    side: u8,
}

/// Starts a member's process as start-up does (`Storage::recover`: a snapshot in its
/// directory if there is one, the durable records after it, the sessions they leave,
/// touched now); an ensemble member starts looking.
fn boot(m: &mut Member, id: i64, voters: &[i64], clock: &Clock) -> Result<Node, Broken> {
    let mut log = SimLog(m.disk.clone());
    let dir = m.dir.path().to_owned();
    let st = log
        .recover(&m.cfg, &dir, clock.now_ms())
        .expect("the simulated disk recovers");
    let last = st.last_zxid;
    let shared = Arc::new(Shared::new(m.cfg.clone(), st.tree, last));
    let (handle, rrx, poll) = ReactorHandle::detached().expect("a reactor handle");
    let (wtx, wrx) = crossbeam_channel::unbounded();
    let ens = if voters.len() > 1 {
        let (relook, relook_rx) = crossbeam_channel::unbounded();
        let epochs = Epochs::load(&dir, last)
            .map_err(|e| Broken(format!("server {id} cannot start: {e}")))?;
        m.looking = Some((last, epochs.current));
        m.relook = Some(relook_rx);
        let cfg = &m.cfg;
        Some(Ensemble {
            my_id: id,
            voters: voters.to_vec(),
            observer: false,
            limits: Limits {
                tick_ms: cfg.tick_ms as u64,
                init_ms: cfg.tick_ms as u64 * cfg.init_limit as u64,
                sync_ms: cfg.tick_ms as u64 * cfg.sync_limit as u64,
                window_max: cfg.diff_window_txns,
            },
            relook,
            epochs,
        })
    } else {
        None
    };
    let writer = WriterLoop::new(
        shared.clone(),
        log,
        wrx,
        vec![handle],
        Recovered {
            sessions: st.sessions,
            idx: st.idx,
            last_zxid: last,
            snap_dir: dir,
            snapshot_soon: false,
            ens,
            recent: st.recent,
            clock: clock.clone(),
        },
    );
    Ok(Node {
        writer,
        shared,
        to_writer: wtx,
        from_writer: rrx,
        _poll: poll,
    })
}

/// A learner's connection to its leader: one direction of it. Bytes go in order, each
/// chunk after a delay; a partition or either end going away closes it.
struct Wire {
    from: usize,
    to: usize,
    /// What the `from` side's writer flushes.
    pipe: Arc<SimPipe>,
    /// The `to` side's link id (its writer's handle for this connection).
    to_link: u64,
    /// Leader side only: the handle announced (QuorumEvent::Learner) with the first
    /// packet, and the learner's id.
    announce: Option<(Link, i64)>,
    buf: Vec<u8>,
    in_flight: VecDeque<(u64, Vec<u8>)>,
    /// The other direction's pipe: when either end goes, both do.
    other: Arc<SimPipe>,
    closed: bool,
}

/// What a client asked, to check its reply.
#[derive(Clone, Debug)]
enum Asked {
    Set {
        key: usize,
        value: u64,
    },
    Multi {
        value: u64,
    },
    Get {
        key: usize,
        watch: bool,
    },
    MultiRead {
        client: usize,
    },
    AddAuth,
    /// exists, getChildren2, sync: answered in order, with these errors only.
    Other {
        errs: &'static [i32],
    },
    Sequential,
    CreateEphemeral {
        path: String,
    },
    DeleteEphemeral,
    Close,
}

#[derive(Debug)]
struct Sent {
    xid: i32,
    asked: Asked,
    /// The newest value of the key read must not be below (for reads).
    floor: u64,
    /// The connection had authenticated when this was sent (its registers need it to
    /// be read).
    authed: bool,
}

/// The reactor's side of one connection.
struct Conn {
    id: ConnId,
    member: usize,
    /// Not yet dispatched (behind a request at the writer), in order.
    held: VecDeque<(Request, Sent)>,
    /// Sent to the writer or answered, awaiting the client's check, in order.
    waiting: VecDeque<Sent>,
    at_writer: usize,
    established: bool,
    closed: bool,
    /// Its auth ids (addauth), as its reactor attaches them to what it sends on.
    ids: Arc<[Id]>,
    /// An addauth was sent on it.
    auth_sent: bool,
}

struct Client {
    session: SessionId,
    conn: Option<Conn>,
    next_xid: i32,
    /// Newest zxid of a reply (the session's view).
    seen_zxid: Zxid,
    /// Newest value this session read of each key.
    seen: HashMap<usize, u64>,
    /// Data watches armed: key → mzxid of the data the watch was set on.
    armed: HashMap<usize, i64>,
    next_value: u64,
    /// Newest value of its own key answered OK to it.
    own_acked: u64,
    ephemerals: Vec<String>,
    next_ephemeral: u64,
    /// No touches until this step (its session may expire).
    silent_until: u64,
    /// The session is known gone (close answered, or refused as expired).
    gone: bool,
    /// A close was sent and not yet answered on this connection.
    closing: bool,
}

const NO_NODE: i32 = -101;
const BAD_VERSION: i32 = -103;
const NO_WATCHER: i32 = -121;
const SYSTEM_ERROR: i32 = -1;

/// Keys: client c's register is /k<c>; its multis write /m<c>a and /m<c>b.
fn key_path(k: usize) -> String {
    format!("/k{k}")
}

/// What a run did.
#[derive(Debug, Default)]
pub struct SimReport {
    pub steps: u64,
    pub writes_answered: u64,
    pub reads_checked: u64,
    pub crashes: u64,
    pub refused: u64,
    pub expired: u64,
    pub closes: u64,
    pub elections: u64,
    pub partitions: u64,
    /// Healed members left out because their accepted epoch is past the leader's.
    pub stuck_on_epoch: u64,
}

impl SimReport {
    pub fn add(&mut self, r: &SimReport) {
        self.steps += r.steps;
        self.writes_answered += r.writes_answered;
        self.reads_checked += r.reads_checked;
        self.crashes += r.crashes;
        self.refused += r.refused;
        self.expired += r.expired;
        self.closes += r.closes;
        self.elections += r.elections;
        self.partitions += r.partitions;
        self.stuck_on_epoch += r.stuck_on_epoch;
    }
}

/// Whole servers, standalone (one member) or an ensemble, under seeded clients and
/// faults.
pub struct ServerSim {
    seed: u64,
    rng: Entropy,
    clock_ms: Arc<AtomicI64>,
    clock: Clock,
    members: Vec<Member>,
    voters: Vec<i64>,
    wires: Vec<Wire>,
    clients: Vec<Client>,
    next_conn: ConnId,
    step: u64,
    /// Per key: values answered OK (value, step), refused values, the newest value sent.
    acked: HashMap<usize, Vec<(u64, u64)>>,
    refused: HashMap<usize, HashSet<u64>>,
    sent_max: HashMap<usize, u64>,
    /// Sessions whose close was answered or that were refused as expired.
    ended: HashSet<SessionId>,
    /// The tree digest each member had with a zxid applied: members that applied the
    /// same zxid must agree (one history).
    digests: HashMap<Zxid, (i64, usize)>,
    /// Faults stop here; the rest of the run heals and must converge.
    faults_until: u64,
    /// The setup's connection: (member, conn, session: 0 until connected, -1 once its
    /// multi is sent).
    setup_conn: Option<(usize, ConnId, SessionId)>,
    report: SimReport,
    trace: VecDeque<String>,
    /// The first published tree state that held part of a multi (`run`'s observer).
    torn: Rc<RefCell<Option<String>>>,
    /// The newest zxid any client saw in a reply: committed (a member applies only what
    /// is committed while it serves).
    max_seen: Zxid,
    /// The run's length (for the replay line).
    steps: u64,
    /// Sequential nodes answered as created.
    sequential: HashSet<String>,
    /// Events kept for a report (`PADDOCK_SIM_TRACE`, default 60).
    trace_keep: usize,
}

const CLIENTS: usize = 4;

impl ServerSim {
    pub fn new(seed: u64, members: usize) -> ServerSim {
        let clock_ms = Arc::new(AtomicI64::new(1_700_000_000_000));
        let clock = Clock::Sim(clock_ms.clone());
        let voters: Vec<i64> = (1..=members as i64).collect();
        let servers: String = if members > 1 {
            voters
                .iter()
                .map(|id| format!("server.{id}=127.0.0.{id}:2888:3888\n"))
                .collect()
        } else {
            String::new()
        };
        let members = voters
            .iter()
            .map(|id| {
                let dir = tempfile::Builder::new()
                    .prefix("paddock-sim")
                    .tempdir_in(sim_tmp())
                    .expect("a directory for a simulated server");
                std::fs::write(dir.path().join("myid"), format!("{id}\n")).expect("myid");
                let raw = RawConfig::parse(&format!(
                    "tickTime=100\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort=2181\n\
                     minSessionTimeout=400\nmaxSessionTimeout=4000\nsnapCount=100000000\n\
                     extendedTypesEnabled=true\n\
                     paddock.diffWindowTxns=200\n{servers}",
                    dir.path().display()
                ))
                .expect("sim config");
                Member {
                    node: None,
                    disk: Rc::new(RefCell::new(Disk::default())),
                    cfg: Config::from_raw(raw).expect("sim config"),
                    dir,
                    looking: None,
                    relook: None,
                    following: None,
                    side: 0,
                }
            })
            .collect();
        let clients = (0..CLIENTS)
            .map(|_| Client {
                session: 0,
                conn: None,
                next_xid: 1,
                seen_zxid: 0,
                seen: HashMap::new(),
                armed: HashMap::new(),
                next_value: 1,
                own_acked: 0,
                ephemerals: Vec::new(),
                next_ephemeral: 0,
                silent_until: 0,
                gone: false,
                closing: false,
            })
            .collect();
        ServerSim {
            seed,
            rng: Entropy::new(seed),
            clock_ms,
            clock,
            members,
            voters,
            wires: Vec::new(),
            clients,
            next_conn: 1,
            step: 0,
            acked: HashMap::new(),
            refused: HashMap::new(),
            sent_max: HashMap::new(),
            ended: HashSet::new(),
            digests: HashMap::new(),
            faults_until: 0,
            setup_conn: None,
            report: SimReport::default(),
            trace: VecDeque::new(),
            torn: Rc::default(),
            max_seen: 0,
            steps: 0,
            sequential: HashSet::new(),
            trace_keep: std::env::var("PADDOCK_SIM_TRACE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(60),
        }
    }

    /// Runs seed `seed` on `members` servers for `steps` steps with `mutation` put back
    /// (an ensemble's last quarter heals and must converge); the first broken guarantee
    /// ends it.
    pub fn run(
        seed: u64,
        members: usize,
        steps: u64,
        m: Option<Mutation>,
    ) -> Result<SimReport, Violation> {
        let _guard = mutation::put_back(m);
        crate::SIMULATED.with(|s| s.set(true));
        // Every state a reader may see (each publish window's end) shows each multi
        // whole: its two keys agree.
        let torn: Rc<RefCell<Option<String>>> = Rc::default();
        let seen = torn.clone();
        mutation::observe(Some(Box::new(move |tree| {
            for c in 0..CLIENTS {
                let (a, b) = (tree.get(&format!("/m{c}a")), tree.get(&format!("/m{c}b")));
                if let (Some(a), Some(b)) = (a, b) {
                    if a.data() != b.data() && seen.borrow().is_none() {
                        *seen.borrow_mut() = Some(format!(
                            "a published tree holds part of client {c}'s multi: {:?} / {:?}",
                            a.data().map(String::from_utf8_lossy),
                            b.data().map(String::from_utf8_lossy)
                        ));
                    }
                }
            }
        })));
        let mut sim = ServerSim::new(seed, members);
        sim.torn = torn;
        sim.steps = steps;
        // Any panic inside (a writer's assert, a debug build's state check) is reported
        // with the seed, like a broken guarantee; the thread's switches are reset.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.go(steps)))
            .unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into());
                broken(format!("panicked: {what}"))
            });
        mutation::observe(None);
        crate::SIMULATED.with(|s| s.set(false));
        out.map(|()| std::mem::take(&mut sim.report))
            .map_err(|why| sim.violation(m, why.0))
    }

    fn ensemble(&self) -> bool {
        self.members.len() > 1
    }

    fn violation(&self, m: Option<Mutation>, why: String) -> Violation {
        let trace: Vec<&str> = self.trace.iter().map(String::as_str).collect();
        Violation(format!(
            "seed {:#x} on {} member(s), step {}{}: {why}\nreplay: ServerSim::run({:#x}, {}, {}, {m:?})\nlast events:\n  {}",
            self.seed,
            self.members.len(),
            self.step,
            m.map(|m| format!(" (mutation {m:?})")).unwrap_or_default(),
            self.seed,
            self.members.len(),
            self.steps,
            trace.join("\n  ")
        ))
    }

    fn note(&mut self, what: String) {
        if self.trace.len() >= self.trace_keep {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("[{}] {what}", self.step));
    }

    fn go(&mut self, steps: u64) -> Result<(), Broken> {
        for i in 0..self.members.len() {
            self.start(i)?;
        }
        self.faults_until = if self.ensemble() {
            steps * 3 / 4
        } else {
            steps
        };
        // The keys exist before the clients start (through the real writers).
        let mut setup_done = false;
        while self.step < steps {
            self.step += 1;
            self.report.steps += 1;
            self.clock_ms
                .fetch_add(1 + self.rng.below(30) as i64, Relaxed);
            if self.step <= self.faults_until && setup_done {
                self.faults()?;
            } else if self.step > self.faults_until {
                self.heal()?;
            }
            self.elect();
            if !setup_done {
                setup_done = self.setup()?;
            } else if self.step <= self.faults_until || !self.ensemble() {
                // Each client sends up to 3 requests a step, pipelined: they reach the
                // writer in one part.
                for c in 0..CLIENTS {
                    for _ in 0..self.rng.below(4) {
                        self.client_acts(c)?;
                    }
                }
            }
            self.touch();
            for i in 0..self.members.len() {
                self.turn(i)?;
            }
            self.carry();
            self.deliver()?;
            self.check_members()?;
        }
        if self.ensemble() {
            self.converged()?;
        }
        Ok(())
    }

    fn start(&mut self, i: usize) -> Result<(), Broken> {
        let id = i as i64 + 1;
        let node = boot(&mut self.members[i], id, &self.voters, &self.clock)?;
        self.members[i].node = Some(node);
        self.members[i].following = None;
        Ok(())
    }

    /// The member that serves writes now: standalone, or the leader once it serves.
    fn serving_leader(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            m.node.as_ref().is_some_and(|n| {
                n.shared.serving() && matches!(n.shared.mode_name(), "standalone" | "leader")
            })
        })
    }

    /// Creates the keys through the serving leader, with a session of its own; true once
    /// they exist. (Its connect and its multi each take their commit.)
    fn setup(&mut self) -> Result<bool, Broken> {
        let Some(l) = self.serving_leader() else {
            return Ok(false);
        };
        let node = self.members[l].node.as_ref().unwrap();
        let tree = &node.shared.tree;
        let mut paths: Vec<String> = (0..CLIENTS).map(key_path).collect();
        paths.extend((0..CLIENTS).flat_map(|c| [format!("/m{c}a"), format!("/m{c}b")]));
        paths.push("/e".into());
        paths.push("/s".into());
        if paths.iter().all(|p| tree.get(p).is_some()) {
            return Ok(true);
        }
        match self.setup_conn {
            Some((m, _, _)) if m != l => self.setup_conn = None,
            Some((_, conn, session)) if session != 0 => {
                let ops = paths
                    .iter()
                    .filter(|p| tree.get(p).is_none())
                    .map(|p| MultiOp::Create {
                        op: op::CREATE,
                        req: CreateRequest {
                            path: p.clone(),
                            data: Some(b"0".to_vec()),
                            acl: if p.starts_with("/k") {
                                register_acl()
                            } else {
                                crate::acl::open_acl()
                            },
                            flags: 0,
                            ttl: -1,
                        },
                    })
                    .collect::<Vec<_>>();
                let req = Request::Multi { ops };
                let raw = Some(encode_body(&req));
                self.send(
                    l,
                    ToWriter::Request {
                        conn,
                        session,
                        xid: 1,
                        op: op::MULTI,
                        req,
                        ids: Arc::from(Vec::<Id>::new()),
                        raw,
                    },
                );
                // Sent once; a new connection tries again if it does not land.
                self.setup_conn = Some((l, conn, -1));
            }
            Some(_) => {}
            None => {
                let conn = self.new_conn();
                self.setup_conn = Some((l, conn, 0));
                self.send(
                    l,
                    ToWriter::Connect {
                        conn,
                        req: ConnectRequest {
                            protocol_version: 0,
                            last_zxid_seen: 0,
                            timeout_ms: 4000,
                            session_id: 0,
                            passwd: vec![0; 16],
                            read_only: Some(false),
                        },
                        info: Arc::new(ConnInfo::new("127.0.0.1:1".parse().unwrap())),
                    },
                );
            }
        }
        Ok(false)
    }

    fn new_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        self.next_conn
    }

    fn send(&self, member: usize, m: ToWriter) {
        if let Some(n) = &self.members[member].node {
            let _ = n.to_writer.send(m);
        }
    }

    /// One turn of member `i`'s real writer; a `fatal` inside is a crash.
    fn turn(&mut self, i: usize) -> Result<(), Broken> {
        let Some(node) = self.members[i].node.as_mut() else {
            return Ok(());
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| node.writer.turn()));
        match r {
            Ok(()) => Ok(()),
            Err(p) => match p.downcast::<crate::Fatal>() {
                Ok(f) => {
                    self.note(format!("server {} stopped: {}", i + 1, f.0));
                    self.crash(i);
                    Ok(())
                }
                Err(p) => std::panic::resume_unwind(p),
            },
        }
    }

    /// Member `i`'s process dies: its connections close, its disk keeps what it keeps.
    fn crash(&mut self, i: usize) {
        self.report.crashes += 1;
        self.members[i].node = None;
        self.members[i].relook = None;
        self.members[i].looking = None;
        self.members[i].following = None;
        let mut rng = Entropy::new(self.rng.next_u64());
        self.members[i].disk.borrow_mut().crash(&mut rng);
        for c in &mut self.clients {
            if c.conn.as_ref().is_some_and(|k| k.member == i) {
                c.conn = None;
                c.armed.clear();
                // A close in flight has no answer: its outcome is unknown.
                c.closing = false;
            }
        }
    }

    fn faults(&mut self) -> Result<(), Broken> {
        let n = self.members.len();
        for i in 0..n {
            if self.members[i].node.is_none() && self.rng.below(1000) < 300 {
                self.note(format!("server {} restarts", i + 1));
                self.start(i)?;
            }
        }
        let r = self.rng.below(1000);
        let i = self.rng.below(n as u64) as usize;
        let up = self.members[i].node.is_some();
        match r {
            0..=5 if up => {
                self.note(format!("kill -9 of server {}", i + 1));
                self.crash(i);
            }
            6..=8 if up => {
                self.note(format!("the next sync of server {} fails", i + 1));
                self.members[i].disk.borrow_mut().fail_sync = true;
            }
            9..=14 => {
                let full = !self.members[i].disk.borrow().full;
                self.note(format!("disk of server {} full: {full}", i + 1));
                self.members[i].disk.borrow_mut().full = full;
            }
            15..=25 => {
                // A client goes silent for longer than its session timeout.
                let c = self.rng.below(CLIENTS as u64) as usize;
                self.clients[c].silent_until = self.step + 150 + self.rng.below(150);
                self.note(format!("client {c} goes silent"));
            }
            26..=31 if n > 1 => {
                // A partition: each member on a random side, or healed.
                self.report.partitions += 1;
                for m in 0..n {
                    self.members[m].side = self.rng.below(2) as u8;
                }
                let sides: Vec<u8> = self.members.iter().map(|m| m.side).collect();
                self.note(format!("partition: sides {sides:?}"));
            }
            32..=40 if n > 1 => {
                self.note("the network heals".into());
                for m in &mut self.members {
                    m.side = 0;
                }
            }
            _ => {}
        }
        for i in 0..n {
            if self.members[i].disk.borrow().full && self.rng.below(20) == 0 {
                self.note(format!("disk of server {} has space again", i + 1));
                self.members[i].disk.borrow_mut().full = false;
            }
        }
        Ok(())
    }

    /// The end of an ensemble run: every member up, the network whole, disks with room.
    fn heal(&mut self) -> Result<(), Broken> {
        for i in 0..self.members.len() {
            self.members[i].side = 0;
            self.members[i].disk.borrow_mut().full = false;
            self.members[i].disk.borrow_mut().fail_sync = false;
            if self.members[i].node.is_none() {
                self.start(i)?;
            }
        }
        for c in &mut self.clients {
            c.silent_until = 0;
        }
        Ok(())
    }

    /// The election, as its outcome (FLE's): in each part of the network, looking
    /// members follow a leader that is there; else, once a quorum of voters there is
    /// looking, the one with the highest (epoch, zxid, id) leads and the rest follow.
    /// A follower gets its link to the leader (or Unreachable after the init limit).
    fn elect(&mut self) {
        if !self.ensemble() {
            return;
        }
        let n = self.members.len();
        for m in &mut self.members {
            if let Some(rx) = &m.relook {
                while let Ok((zxid, epoch)) = rx.try_recv() {
                    m.looking = Some((zxid, epoch));
                    m.following = None;
                }
            }
        }
        for side in 0..2u8 {
            let here: Vec<usize> = (0..n)
                .filter(|&i| self.members[i].side == side && self.members[i].node.is_some())
                .collect();
            let leader = here.iter().copied().find(|&i| {
                self.members[i]
                    .node
                    .as_ref()
                    .is_some_and(|nd| nd.shared.mode_name() == "leader")
            });
            let looking: Vec<usize> = here
                .iter()
                .copied()
                .filter(|&i| self.members[i].looking.is_some())
                .collect();
            if looking.is_empty() {
                continue;
            }
            let leader = match leader {
                Some(l) => l,
                None if looking.len() > n / 2 => {
                    let l = *looking
                        .iter()
                        .max_by_key(|&&i| {
                            let (z, e) = self.members[i].looking.unwrap();
                            (e, z, i)
                        })
                        .unwrap();
                    let (zxid, epoch) = self.members[l].looking.unwrap();
                    self.report.elections += 1;
                    self.note(format!(
                        "server {} is elected (epoch {epoch}, zxid 0x{zxid:x})",
                        l + 1
                    ));
                    self.members[l].looking = None;
                    self.send(
                        l,
                        ToWriter::Quorum(QuorumEvent::Lead {
                            vote: Vote {
                                leader: l as i64 + 1,
                                zxid,
                                peer_epoch: epoch,
                            },
                        }),
                    );
                    l
                }
                None => continue,
            };
            for &i in &looking {
                if i != leader {
                    self.members[i].looking = None;
                    self.members[i].following = Some((leader as i64 + 1, self.step));
                    self.send(
                        i,
                        ToWriter::Quorum(QuorumEvent::Follow {
                            leader: leader as i64 + 1,
                        }),
                    );
                }
            }
        }
        // Followers connect to their leader.
        for i in 0..n {
            let Some((leader, since)) = self.members[i].following else {
                continue;
            };
            let l = (leader - 1) as usize;
            let reachable = self.members[l].side == self.members[i].side
                && self.members[l]
                    .node
                    .as_ref()
                    .is_some_and(|nd| nd.shared.mode_name() == "leader");
            if reachable {
                self.members[i].following = None;
                let (to_leader, up) = Link::simulated();
                let (to_learner, down) = Link::simulated();
                self.wires.push(Wire {
                    from: i,
                    to: l,
                    pipe: up.clone(),
                    to_link: to_learner.id,
                    announce: Some((to_learner, i as i64 + 1)),
                    buf: Vec::new(),
                    in_flight: VecDeque::new(),
                    other: down.clone(),
                    closed: false,
                });
                self.wires.push(Wire {
                    from: l,
                    to: i,
                    pipe: down,
                    to_link: to_leader.id,
                    announce: None,
                    buf: Vec::new(),
                    in_flight: VecDeque::new(),
                    other: up,
                    closed: false,
                });
                self.send(
                    i,
                    ToWriter::Quorum(QuorumEvent::Learn {
                        leader,
                        link: to_leader,
                    }),
                );
                // Crashes while syncing with a leader are where ZAB's order of writes
                // matters most: now and then the learner's next sync fails.
                if self.step <= self.faults_until && self.rng.below(6) == 0 {
                    self.note(format!("the next sync of server {} fails", i + 1));
                    self.members[i].disk.borrow_mut().fail_sync = true;
                }
            } else if self.step - since > 40 {
                self.members[i].following = None;
                self.send(i, ToWriter::Quorum(QuorumEvent::Unreachable { leader }));
            }
        }
    }

    /// The network: what each link's writer flushed reaches the other end after a
    /// delay, in order; a partition, or an end that went away, closes both directions.
    fn carry(&mut self) {
        let mut events: Vec<(usize, QuorumEvent)> = Vec::new();
        for w in &mut self.wires {
            if w.closed {
                continue;
            }
            let from_up = self.members[w.from].node.is_some();
            let to_up = self.members[w.to].node.is_some();
            let apart = self.members[w.from].side != self.members[w.to].side;
            // The simulator holds one Arc of each pipe; the writers' handles the rest
            // (the announce handle counts as the leader's until it is handed over).
            let from_gone = Arc::strong_count(&w.pipe) <= 1;
            let to_gone = w.announce.is_none() && Arc::strong_count(&w.other) <= 1;
            if !from_up || !to_up || apart || from_gone || to_gone {
                w.closed = true;
                if to_up && w.announce.is_none() {
                    events.push((
                        w.to,
                        QuorumEvent::Link(LinkEvent::Closed { link: w.to_link }),
                    ));
                }
                continue;
            }
            let bytes = w.pipe.take();
            if !bytes.is_empty() {
                let delay = self.rng.below(3);
                w.in_flight.push_back((self.step + delay, bytes));
            }
            while w.in_flight.front().is_some_and(|(at, _)| *at <= self.step) {
                let (_, b) = w.in_flight.pop_front().unwrap();
                w.buf.extend_from_slice(&b);
            }
            let mut pkts = Vec::new();
            let mut used_total = 0;
            while let Ok(Some((p, used))) =
                QuorumPacket::decode(&w.buf[used_total..], usize::MAX >> 1)
            {
                used_total += used;
                pkts.push(p);
            }
            w.buf.drain(..used_total);
            if pkts.is_empty() {
                continue;
            }
            if let Some((link, sid)) = w.announce.take() {
                events.push((w.to, QuorumEvent::Learner { sid, link }));
            }
            events.push((
                w.to,
                QuorumEvent::Link(LinkEvent::Packets {
                    link: w.to_link,
                    pkts,
                }),
            ));
        }
        self.wires.retain(|w| !w.closed);
        for (i, ev) in events {
            self.send(i, ToWriter::Quorum(ev));
        }
    }

    fn touch(&mut self) {
        let now = self.clock.now_ms() as u64;
        for m in 0..self.members.len() {
            let touches: Vec<(SessionId, u64)> = self
                .clients
                .iter()
                .filter(|c| {
                    c.session != 0
                        && c.silent_until <= self.step
                        && c.conn
                            .as_ref()
                            .is_some_and(|k| k.established && k.member == m)
                })
                .map(|c| (c.session, now))
                .collect();
            if !touches.is_empty() {
                self.send(m, ToWriter::Touch(touches));
            }
        }
    }

    fn client_acts(&mut self, c: usize) -> Result<(), Broken> {
        if self.clients[c].silent_until > self.step {
            return Ok(());
        }
        let Some(conn) = self.clients[c].conn.as_ref() else {
            return self.connect(c);
        };
        if !conn.established || conn.closed || self.clients[c].closing {
            return Ok(());
        }
        let inflight = conn.waiting.len() + conn.held.len();
        if inflight > 12 {
            return Ok(());
        }
        let r = self.rng.below(100);
        let (req, asked) = match r {
            0..=29 => {
                let v = self.clients[c].next_value;
                self.clients[c].next_value += 1;
                self.sent_max.insert(c, v);
                (set(&key_path(c), v), Asked::Set { key: c, value: v })
            }
            30..=36 => {
                let v = self.clients[c].next_value;
                self.clients[c].next_value += 1;
                let ops = [format!("/m{c}a"), format!("/m{c}b")]
                    .into_iter()
                    .map(|p| MultiOp::SetData {
                        path: p,
                        data: Some(v.to_string().into_bytes()),
                        version: -1,
                    })
                    .collect();
                (Request::Multi { ops }, Asked::Multi { value: v })
            }
            37..=64 => {
                let key = self.rng.below(CLIENTS as u64) as usize;
                let watch = self.rng.below(4) == 0;
                let req = Request::GetData {
                    path: key_path(key),
                    watch,
                };
                (req, Asked::Get { key, watch })
            }
            71 => {
                let n = self.rng.below(self.clients[c].next_ephemeral + 1);
                let req = Request::Exists {
                    path: format!("/e/c{c}-{n}"),
                    watch: self.rng.below(2) == 0,
                };
                (
                    req,
                    Asked::Other {
                        errs: &[0, NO_NODE],
                    },
                )
            }
            72 => {
                let req = Request::GetChildren2 {
                    path: "/e".into(),
                    watch: self.rng.below(2) == 0,
                };
                (req, Asked::Other { errs: &[0] })
            }
            73 => (
                Request::Sync { path: "/".into() },
                Asked::Other { errs: &[0] },
            ),
            74 => {
                let (o, req) = create("/s/n-".into(), op::CREATE, 2, -1);
                (Request::Create { op: o, req }, Asked::Sequential)
            }
            65..=70 => {
                let o = self.rng.below(CLIENTS as u64) as usize;
                let ops = [format!("/m{o}a"), format!("/m{o}b")]
                    .into_iter()
                    .map(|path| MultiOp::GetData { path })
                    .collect();
                (Request::MultiRead { ops }, Asked::MultiRead { client: o })
            }
            75..=84 => {
                let path = self.fresh_name(c, "c");
                let (o, req) = create(path.clone(), op::CREATE, 1, -1);
                (
                    Request::Create { op: o, req },
                    Asked::CreateEphemeral { path },
                )
            }
            85..=91 => {
                let Some(path) = self.clients[c].ephemerals.pop() else {
                    return Ok(());
                };
                let req = Request::Delete {
                    path: path.clone(),
                    version: -1,
                };
                (req, Asked::DeleteEphemeral)
            }
            92..=94 => {
                // The client drops its connection (the session lives on).
                let conn = self.clients[c].conn.take().unwrap();
                self.note(format!("client {c} drops connection {}", conn.id));
                self.send(
                    conn.member,
                    ToWriter::Closed {
                        conn: conn.id,
                        session: self.clients[c].session,
                    },
                );
                self.clients[c].armed.clear();
                return Ok(());
            }
            96..=98 => (
                Request::Auth {
                    scheme: "digest".into(),
                    auth: Some(b"sim:secret".to_vec()),
                },
                Asked::AddAuth,
            ),
            95 => {
                self.note(format!("client {c} closes its session"));
                self.clients[c].closing = true;
                (Request::CloseSession, Asked::Close)
            }
            _ => self.rarer_op(c),
        };
        self.request(c, req, asked)
    }

    /// The op kinds sent less often: ACLs, a check inside a multi, ephemerals listed,
    /// persistent and recursive watches added and removed, whoAmI, children counted,
    /// containers. Answered in order with the errors ZooKeeper gives them.
    fn rarer_op(&mut self, c: usize) -> (Request, Asked) {
        const OK: &[i32] = &[0];
        match self.rng.below(10) {
            8 => {
                // setACL of a node of its own (an ephemeral, if it has one), to what it was.
                let path = self.clients[c]
                    .ephemerals
                    .last()
                    .cloned()
                    .unwrap_or_else(|| "/s".into());
                let req = Request::SetAcl {
                    path,
                    acl: crate::acl::open_acl(),
                    version: -1,
                };
                (
                    req,
                    Asked::Other {
                        errs: &[0, NO_NODE, SYSTEM_ERROR],
                    },
                )
            }
            9 => {
                let ttl = 1 + self.rng.below(3000) as i64;
                let (o, req) = create(self.fresh_name(c, "ttl-"), op::CREATE_TTL, 5, ttl);
                (
                    Request::Create { op: o, req },
                    Asked::Other {
                        errs: &[0, SYSTEM_ERROR],
                    },
                )
            }
            0 => (
                Request::GetAcl { path: key_path(c) },
                Asked::Other { errs: OK },
            ),
            1 => {
                // A multi with a check: of the right version it applies, else neither op.
                let version = if self.rng.below(2) == 0 { -1 } else { 1 << 30 };
                let (o, req) = create("/s/m-".into(), op::CREATE, 2, -1);
                let ops = vec![
                    MultiOp::Check {
                        path: "/e".into(),
                        version,
                    },
                    MultiOp::Create { op: o, req },
                ];
                let errs: &[i32] = &[0, BAD_VERSION, SYSTEM_ERROR];
                (Request::Multi { ops }, Asked::Other { errs })
            }
            2 => (
                Request::GetEphemerals {
                    prefix: "/e".into(),
                },
                Asked::Other { errs: OK },
            ),
            3 => (
                Request::AddWatch {
                    path: "/e".into(),
                    mode: self.rng.below(2) as i32,
                },
                Asked::Other { errs: OK },
            ),
            4 => (
                Request::RemoveWatches {
                    path: "/e".into(),
                    kind: 3,
                },
                Asked::Other {
                    errs: &[0, NO_WATCHER],
                },
            ),
            5 => (Request::WhoAmI, Asked::Other { errs: OK }),
            6 => (
                Request::GetAllChildrenNumber { path: "/e".into() },
                Asked::Other { errs: OK },
            ),
            _ => {
                let (o, req) = create(self.fresh_name(c, "box-"), op::CREATE_CONTAINER, 4, -1);
                (
                    Request::Create { op: o, req },
                    Asked::Other {
                        errs: &[0, SYSTEM_ERROR],
                    },
                )
            }
        }
    }

    /// A name under /e no node of client `c` had before: /e/<kind><c>-<n>.
    fn fresh_name(&mut self, c: usize, kind: &str) -> String {
        let n = self.clients[c].next_ephemeral;
        self.clients[c].next_ephemeral += 1;
        format!("/e/{kind}{c}-{n}")
    }

    fn connect(&mut self, c: usize) -> Result<(), Broken> {
        if self.clients[c].gone {
            // A new session for this client.
            let cl = &mut self.clients[c];
            cl.session = 0;
            cl.gone = false;
            cl.seen.clear();
            cl.seen_zxid = 0;
            cl.ephemerals.clear();
        }
        // Any member that is up: the client's list has them all.
        let up: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].node.is_some())
            .collect();
        if up.is_empty() {
            return Ok(());
        }
        let member = up[self.rng.below(up.len() as u64) as usize];
        if !self.ensemble() {
            // Standalone, what the server applied is durable: a session never saw more.
            let applied = self.members[member]
                .node
                .as_ref()
                .map_or(0, |n| n.shared.last_zxid());
            if applied < self.clients[c].seen_zxid {
                return broken(format!(
                    "client {c}: the server has applied 0x{applied:x}, behind 0x{:x} the \
                     session saw (txns lost)",
                    self.clients[c].seen_zxid
                ));
            }
        }
        let id = self.new_conn();
        let cl = &mut self.clients[c];
        cl.conn = Some(Conn {
            id,
            member,
            held: VecDeque::new(),
            waiting: VecDeque::new(),
            at_writer: 0,
            established: false,
            closed: false,
            ids: Arc::from(Vec::<Id>::new()),
            auth_sent: false,
        });
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: cl.seen_zxid,
            timeout_ms: 1000,
            session_id: cl.session,
            passwd: if cl.session == 0 {
                vec![0; 16]
            } else {
                password(cl.session).to_vec()
            },
            read_only: Some(false),
        };
        let session = cl.session;
        self.note(format!(
            "client {c} connects to server {} on {id} (session 0x{session:x})",
            member + 1
        ));
        self.send(
            member,
            ToWriter::Connect {
                conn: id,
                req,
                info: Arc::new(ConnInfo::new("127.0.0.1:1".parse().unwrap())),
            },
        );
        Ok(())
    }

    /// A request enters the reactor model: answered, sent to the writer, or held.
    fn request(&mut self, c: usize, req: Request, asked: Asked) -> Result<(), Broken> {
        let xid = self.clients[c].next_xid;
        self.clients[c].next_xid += 1;
        // Standalone, reads are linearizable: not below any write answered before the
        // read was sent. In an ensemble a member may lag (ZooKeeper's reads are
        // sequentially consistent): not below the session's own writes.
        let floor = match &asked {
            Asked::Get { key, .. } if !self.ensemble() => self.answered_max(*key),
            Asked::Get { key, .. } if *key == c => self.clients[c].own_acked,
            _ => 0,
        };
        // An addauth sent before on this connection is answered before this (in order).
        let conn = self.clients[c].conn.as_mut().unwrap();
        let authed = conn.auth_sent;
        if matches!(asked, Asked::AddAuth) {
            conn.auth_sent = true;
        }
        if self.trace_keep > 60 {
            let m = self.clients[c].conn.as_ref().map_or(0, |k| k.member + 1);
            self.note(format!(
                "client {c} sends xid {xid} {asked:?} to server {m}"
            ));
        }
        let sent = Sent {
            xid,
            asked,
            floor,
            authed,
        };
        self.clients[c]
            .conn
            .as_mut()
            .unwrap()
            .held
            .push_back((req, sent));
        self.drive(c)
    }

    fn answered_max(&self, key: usize) -> u64 {
        self.acked
            .get(&key)
            .and_then(|v| v.iter().map(|(v, _)| *v).max())
            .unwrap_or(0)
    }

    /// The reactor's `drive`: moves a connection's queue forward as far as order allows.
    fn drive(&mut self, c: usize) -> Result<(), Broken> {
        let standalone = !self.ensemble();
        loop {
            let session = self.clients[c].session;
            let coin = self.rng.below(2) == 0;
            let Some(conn) = self.clients[c].conn.as_mut() else {
                return Ok(());
            };
            let Some((req, _)) = conn.held.front() else {
                return Ok(());
            };
            let auth = matches!(req, Request::Auth { .. });
            let local = req.is_plain_read() || auth;
            let behind = conn.at_writer > 0;
            // Standalone, a plain read behind writes may go to the writer, which answers
            // it right after them; in an ensemble it waits here.
            let to_writer = !local || (behind && standalone && coin && !auth);
            if local && behind && !to_writer {
                return Ok(());
            }
            let (req, sent) = conn.held.pop_front().unwrap();
            let (id, member, ids) = (conn.id, conn.member, conn.ids.clone());
            if to_writer {
                conn.at_writer += 1;
                let xid = sent.xid;
                conn.waiting.push_back(sent);
                let opcode = req_op(&req);
                let raw = (!local).then(|| encode_body(&req));
                self.send(
                    member,
                    ToWriter::Request {
                        conn: id,
                        session,
                        xid,
                        op: opcode,
                        req,
                        ids,
                        raw,
                    },
                );
                continue;
            }
            if auth {
                // addauth, answered by the reactor: the connection's ids grow, and the
                // writer hears of them (for watch events).
                let mut all = ids.to_vec();
                if !all.contains(&sim_user()) {
                    all.push(sim_user());
                }
                let all: Arc<[Id]> = Arc::from(all);
                conn.ids = all.clone();
                conn.waiting.push_back(sent);
                self.send(
                    member,
                    ToWriter::Auth {
                        conn: id,
                        session,
                        ids: all,
                    },
                );
                let frame =
                    crate::proto::records::reply_frame(xid_of(&self.clients[c]), 0, 0, |_| {});
                self.reply(c, &frame)?;
                continue;
            }
            // Invariant 5: events the writer queued go first (they may close it).
            self.deliver()?;
            if self.clients[c].conn.as_ref().is_none_or(|k| k.id != id) {
                return Ok(());
            }
            let Some(node) = self.members[member].node.as_ref() else {
                return Ok(());
            };
            let shared = &node.shared;
            let frame = match reads::reply_consistent(
                &shared.tree,
                &shared.last_zxid,
                || shared.serving(),
                &shared.cfg,
                &ids,
                sent.xid,
                &req,
            ) {
                reads::Consistent::Answered { frame, .. } => frame,
                reads::Consistent::NotServing => {
                    // The reactor closes the connection: the client tries elsewhere.
                    self.drop_conn(c);
                    return Ok(());
                }
                reads::Consistent::Busy => return broken("a read found no consistent view".into()),
            };
            let conn = self.clients[c].conn.as_mut().unwrap();
            conn.waiting.push_back(sent);
            self.reply(c, &frame)?;
        }
    }

    /// The client's connection closes; the server hears of it.
    fn drop_conn(&mut self, c: usize) {
        if let Some(conn) = self.clients[c].conn.take() {
            let session = self.clients[c].session;
            self.send(
                conn.member,
                ToWriter::Closed {
                    conn: conn.id,
                    session,
                },
            );
        }
        self.clients[c].armed.clear();
        self.clients[c].closing = false;
    }

    /// Everything the writers sent, in order, to the clients.
    fn deliver(&mut self) -> Result<(), Broken> {
        for member in 0..self.members.len() {
            while let Some(node) = self.members[member].node.as_ref() {
                let Ok(m) = node.from_writer.try_recv() else {
                    break;
                };
                let serving = node.shared.serving();
                self.reach_client(member, m, serving)?;
            }
        }
        Ok(())
    }

    fn reach_client(&mut self, member: usize, m: ToReactor, serving: bool) -> Result<(), Broken> {
        let Some(conn) = m.conn() else {
            return Ok(());
        };
        if let Some((sm, sc, _)) = self.setup_conn {
            if (sm, sc) == (member, conn) {
                match m {
                    ToReactor::Connected { session, ok, .. } if ok => {
                        self.setup_conn = Some((sm, sc, session));
                    }
                    ToReactor::Close { .. } | ToReactor::Connected { .. } => {
                        self.setup_conn = None;
                    }
                    _ => {}
                }
                return Ok(());
            }
        }
        let Some(c) = self.clients.iter().position(|cl| {
            cl.conn
                .as_ref()
                .is_some_and(|k| k.id == conn && k.member == member)
        }) else {
            return Ok(()); // a connection the client left
        };
        match m {
            ToReactor::Frame { bytes, reply, .. } => {
                let k = self.clients[c].conn.as_ref().unwrap();
                // Before `Connected`: the ConnectResponse.
                if k.closed || !k.established {
                    return Ok(());
                }
                self.reply(c, &bytes)?;
                if reply {
                    // (A close's reply ends the connection.)
                    if let Some(conn) = self.clients[c].conn.as_mut() {
                        conn.at_writer = conn.at_writer.saturating_sub(1);
                        self.drive(c)?;
                    }
                }
            }
            ToReactor::Connected {
                session, ok, zxid, ..
            } => {
                let cl = &mut self.clients[c];
                if ok {
                    if cl.session != 0 && cl.session != session {
                        return broken(format!("client {c}: reconnect gave another session"));
                    }
                    cl.session = session;
                    if zxid < cl.seen_zxid {
                        return broken(format!(
                            "client {c}: session 0x{session:x} resumed at 0x{zxid:x}, behind \
                             0x{:x} it saw",
                            cl.seen_zxid
                        ));
                    }
                    cl.conn.as_mut().unwrap().established = true;
                } else {
                    // Expired (or never existed): its ephemerals must be gone.
                    let s = cl.session;
                    cl.gone = true;
                    cl.conn = None;
                    cl.armed.clear();
                    self.note(format!("client {c}: session 0x{s:x} expired"));
                    self.report.expired += 1;
                    self.ended.insert(s);
                }
            }
            ToReactor::Close { .. } | ToReactor::Overflow { .. } => {
                // A serving server answers a close before it closes the connection; one
                // that stopped serving (leaving its role) answers nothing.
                self.note(format!(
                    "server {} closes client {c}'s connection {conn}",
                    member + 1
                ));
                if self.clients[c].closing && serving {
                    return broken(format!(
                        "client {c}: its close was not answered before the connection closed"
                    ));
                }
                let cl = &mut self.clients[c];
                cl.conn = None;
                cl.armed.clear();
                cl.closing = false;
            }
            _ => {}
        }
        Ok(())
    }

    /// A frame reaches client `c`: a notification, or the reply to its oldest request.
    fn reply(&mut self, c: usize, frame: &[u8]) -> Result<(), Broken> {
        let mut r = Reader::new(&frame[4..]);
        let xid = r.read_i32().map_err(|e| Broken(e.to_string()))?;
        let zxid = r.read_i64().map_err(|e| Broken(e.to_string()))?;
        let err = r.read_i32().map_err(|e| Broken(e.to_string()))?;
        if xid == xids::NOTIFICATION {
            let typ = r.read_i32().map_err(|e| Broken(e.to_string()))?;
            let _state = r.read_i32().map_err(|e| Broken(e.to_string()))?;
            let path = r
                .read_string()
                .map_err(|e| Broken(e.to_string()))?
                .to_owned();
            if typ == event::NODE_DATA_CHANGED || typ == event::NODE_DELETED {
                if let Some(k) = path.strip_prefix("/k").and_then(|k| k.parse().ok()) {
                    self.clients[c].armed.remove(&k);
                }
            }
            return Ok(());
        }
        let conn = self.clients[c].conn.as_mut().unwrap();
        let Some(sent) = conn.waiting.pop_front() else {
            return broken(format!("client {c}: reply xid {xid} to nothing asked"));
        };
        if sent.xid != xid {
            return broken(format!(
                "client {c}: reply xid {xid} where xid {} ({:?}) comes first",
                sent.xid, sent.asked
            ));
        }
        self.max_seen = self.max_seen.max(zxid);
        let cl = &mut self.clients[c];
        if zxid > 0 {
            if zxid < cl.seen_zxid {
                return broken(format!(
                    "client {c}: reply zxid 0x{zxid:x} behind 0x{:x} the session saw",
                    cl.seen_zxid
                ));
            }
            cl.seen_zxid = zxid;
        }
        match sent.asked {
            Asked::Set { key, value } if err == 0 => {
                if self.trace_keep > 60 {
                    let m = self.clients[c].conn.as_ref().map_or(0, |k| k.member + 1);
                    self.note(format!("client {c}: /k{key} = {value} answered OK at zxid 0x{zxid:x} by server {m}"));
                }
                self.report.writes_answered += 1;
                self.clients[c].own_acked = value;
                self.acked.entry(key).or_default().push((value, self.step));
            }
            Asked::Multi { .. } if err == 0 => {
                // Checked through multiReads (seen whole, never refused).
                self.report.writes_answered += 1;
            }
            Asked::Set { key, value } if err == ZkError::SystemError.code() => {
                self.report.refused += 1;
                self.refused.entry(key).or_default().insert(value);
            }
            Asked::Multi { value } if err == ZkError::SystemError.code() => {
                self.report.refused += 1;
                self.refused
                    .entry(usize::MAX - 1 - c)
                    .or_default()
                    .insert(value);
            }
            Asked::Set { .. } | Asked::Multi { .. } => {
                return broken(format!("client {c}: a write failed with {err}"));
            }
            // Not readable without the user's auth: as it should be.
            Asked::Get { .. } if err == ZkError::NoAuth.code() && !sent.authed => {}
            Asked::Get { key, watch } => {
                if err != 0 {
                    return broken(format!("client {c}: getData of /k{key} failed with {err}"));
                }
                if !sent.authed {
                    return broken(format!(
                        "client {c}: read /k{key} without the auth it needs"
                    ));
                }
                let data = r.read_buffer().map_err(|e| Broken(e.to_string()))?;
                let value: u64 = std::str::from_utf8(data)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Broken("a value that is not a number".into()))?;
                let _czxid = r.read_i64().map_err(|e| Broken(e.to_string()))?;
                let mzxid = r.read_i64().map_err(|e| Broken(e.to_string()))?;
                self.report.reads_checked += 1;
                self.check_read(c, key, value, sent.floor)?;
                let cl = &mut self.clients[c];
                if let Some(&at) = cl.armed.get(&key) {
                    if mzxid > at {
                        return broken(format!(
                            "client {c}: /k{key} read at mzxid 0x{mzxid:x} before the event of its \
                             watch set at 0x{at:x}"
                        ));
                    }
                }
                if watch {
                    cl.armed.insert(key, mzxid);
                }
            }
            Asked::MultiRead { client } => {
                if err != 0 {
                    return broken(format!("client {c}: multiRead failed with {err}"));
                }
                let mut values = Vec::new();
                for _ in 0..2 {
                    let (typ, _done, e) = (
                        r.read_i32().map_err(|e| Broken(e.to_string()))?,
                        r.read_bool().map_err(|e| Broken(e.to_string()))?,
                        r.read_i32().map_err(|e| Broken(e.to_string()))?,
                    );
                    if typ != op::GET_DATA || e != 0 {
                        return broken(format!("client {c}: multiRead op failed ({typ}, {e})"));
                    }
                    let data = r.read_buffer().map_err(|e| Broken(e.to_string()))?.to_vec();
                    for _ in 0..17 {
                        // The Stat: 4 longs, 3 ints, a long, 2 ints, a long (68 bytes).
                        let _ = r.read_i32();
                    }
                    values.push(data);
                }
                self.report.reads_checked += 1;
                if values[0] != values[1] {
                    return broken(format!(
                        "client {c}: multiRead saw part of client {client}'s multi: {:?} / {:?}",
                        String::from_utf8_lossy(&values[0]),
                        String::from_utf8_lossy(&values[1])
                    ));
                }
                let v: u64 = String::from_utf8_lossy(&values[0]).parse().unwrap_or(0);
                if self
                    .refused
                    .get(&(usize::MAX - 1 - client))
                    .is_some_and(|s| s.contains(&v))
                {
                    return broken(format!(
                        "client {c}: saw client {client}'s refused multi {v}"
                    ));
                }
            }
            Asked::CreateEphemeral { path } => {
                if err == 0 {
                    self.clients[c].ephemerals.push(path);
                }
            }
            Asked::DeleteEphemeral => {}
            Asked::Other { errs } if errs.contains(&err) => {}
            Asked::Other { .. } => {
                return broken(format!("client {c}: a request failed with {err}"));
            }
            Asked::Sequential if err == 0 => {
                let path = r
                    .read_string()
                    .map_err(|e| Broken(e.to_string()))?
                    .to_owned();
                // A sequence number is handed out once, across crashes and leaders.
                if !self.sequential.insert(path.clone()) {
                    return broken(format!("client {c}: {path} was created twice"));
                }
            }
            Asked::Sequential if err == ZkError::SystemError.code() => {}
            Asked::Sequential => {
                return broken(format!("client {c}: a sequential create failed with {err}"));
            }
            Asked::AddAuth if err == 0 => {}
            Asked::AddAuth => return broken(format!("client {c}: addauth failed with {err}")),
            Asked::Close => {
                if err == 0 {
                    let s = cl.session;
                    cl.gone = true;
                    cl.closing = false;
                    if let Some(conn) = cl.conn.as_mut() {
                        conn.closed = true;
                    }
                    cl.conn = None;
                    cl.armed.clear();
                    self.report.closes += 1;
                    self.note(format!("client {c}: session 0x{s:x} closed"));
                    self.ended.insert(s);
                } else {
                    cl.closing = false;
                }
            }
        }
        Ok(())
    }

    /// Linearizable single-writer registers, read by every session.
    fn check_read(&mut self, c: usize, key: usize, value: u64, floor: u64) -> Result<(), Broken> {
        if value < floor {
            return broken(format!(
                "client {c}: read /k{key} = {value}, but {floor} was answered before the read \
                 was sent (a lost write)"
            ));
        }
        if value > *self.sent_max.get(&key).unwrap_or(&0) {
            return broken(format!("client {c}: read /k{key} = {value}, never written"));
        }
        if self.refused.get(&key).is_some_and(|s| s.contains(&value)) {
            return broken(format!(
                "client {c}: read /k{key} = {value}, a write refused with SystemError"
            ));
        }
        let seen = self.clients[c].seen.entry(key).or_insert(0);
        if value < *seen {
            return broken(format!(
                "client {c}: read /k{key} = {value} after it read {} (went back)",
                *seen
            ));
        }
        *seen = value;
        Ok(())
    }

    /// Between turns every writer is at a txn boundary: its control-plane state holds;
    /// every ephemeral in its published tree belongs to a session in its table (and,
    /// standalone, none to a session that ended); and members that applied the same zxid
    /// have the same tree digest (one history: no split brain, no bad sync).
    fn check_members(&mut self) -> Result<(), Broken> {
        if let Some(why) = self.torn.borrow_mut().take() {
            return broken(why);
        }
        for i in 0..self.members.len() {
            let Some(node) = self.members[i].node.as_ref() else {
                continue;
            };
            node.writer
                .check_state(true)
                .map_err(|e| Broken(format!("server {}: {e}", i + 1)))?;
            let mut bad = None;
            let ended = (!self.ensemble()).then_some(&self.ended);
            node.shared.tree.for_each(|p, n| {
                let owner = n.fields().ephemeral_owner;
                if crate::proto::ops::ephemeral_session(owner, true).is_some() && bad.is_none() {
                    if node.writer.sessions.get(owner).is_none() {
                        bad = Some(format!(
                            "server {}: ephemeral {p} of session 0x{owner:x}, not in the session table",
                            i + 1
                        ));
                    } else if ended.is_some_and(|e| e.contains(&owner)) {
                        bad = Some(format!("ephemeral {p} of session 0x{owner:x}, which ended"));
                    }
                }
            });
            if let Some(b) = bad {
                return broken(b);
            }
            let (zxid, digest) = (node.shared.last_zxid(), node.writer.digest());
            // A leader that serves has applied its whole history, which holds every
            // committed txn (ZAB): one a client saw cannot be missing.
            if self.ensemble()
                && node.shared.serving()
                && node.shared.mode_name() == "leader"
                && zxid < self.max_seen
            {
                return broken(format!(
                    "server {} leads and serves at 0x{zxid:x}, but a client saw 0x{:x} \
                     committed (lost txns)",
                    i + 1,
                    self.max_seen
                ));
            }
            match self.digests.get(&zxid) {
                Some(&(d, other)) if d != digest => {
                    return broken(format!(
                        "servers {} and {} both applied up to 0x{zxid:x} with different trees \
                         (digests {d} and {digest})",
                        other + 1,
                        i + 1
                    ));
                }
                Some(_) => {}
                None => {
                    self.digests.insert(zxid, (digest, i));
                }
            }
        }
        Ok(())
    }

    /// After the heal: every member serves under one leader with the same tree, which
    /// has every answered write and no ephemeral of a session that ended.
    fn converged(&mut self) -> Result<(), Broken> {
        // What is in flight lands: more steps, no clients, until every member serves at
        // the same zxid (bounded).
        let mut quiet = 0;
        loop {
            let heads: Vec<Option<(Zxid, bool)>> = self
                .members
                .iter()
                .map(|m| {
                    m.node
                        .as_ref()
                        .map(|n| (n.shared.last_zxid(), n.shared.serving()))
                })
                .collect();
            // A member whose accepted epoch is past the serving leader's cannot follow
            // it (ZAB refuses a leader's older epoch) until the leader changes: known
            // (issue 15's notes, seed 0x10d); counted, and the rest must converge.
            let leader_epoch = self
                .members
                .iter()
                .filter_map(|m| m.node.as_ref())
                .find(|n| n.shared.serving() && n.shared.mode_name() == "leader")
                .and_then(|n| n.writer.epochs())
                .map(|(_, current)| current);
            let stuck: Vec<bool> = self
                .members
                .iter()
                .map(|m| {
                    m.node.as_ref().is_some_and(|n| {
                        !n.shared.serving()
                            && n.writer
                                .epochs()
                                .zip(leader_epoch)
                                .is_some_and(|((accepted, _), l)| accepted > l)
                    })
                })
                .collect();
            let live: Vec<Option<(Zxid, bool)>> = heads
                .iter()
                .zip(&stuck)
                .filter(|(_, s)| !**s)
                .map(|(h, _)| *h)
                .collect();
            let first = live[0];
            let quorum = live.len() > self.members.len() / 2;
            if quorum
                && live
                    .iter()
                    .all(|h| h.is_some_and(|(_, s)| s) && *h == first)
            {
                self.report.stuck_on_epoch += stuck.iter().filter(|s| **s).count() as u64;
                break;
            }
            quiet += 1;
            if quiet > 400 {
                return broken(format!(
                    "healed, the ensemble did not converge in 400 steps: (applied zxid, \
                     serving) by member {heads:?}"
                ));
            }
            self.step += 1;
            self.clock_ms.fetch_add(10, Relaxed);
            self.elect();
            self.touch();
            for i in 0..self.members.len() {
                self.turn(i)?;
            }
            self.carry();
            self.deliver()?;
            self.check_members()?;
        }
        let node = self
            .members
            .iter()
            .filter_map(|m| m.node.as_ref())
            .find(|n| n.shared.serving())
            .expect("a serving member");
        for c in 0..CLIENTS {
            let want = self.answered_max(c);
            let have: u64 = node
                .shared
                .tree
                .get(&key_path(c))
                .and_then(|n| {
                    n.data()
                        .and_then(|d| std::str::from_utf8(d).ok()?.parse().ok())
                })
                .unwrap_or(0);
            if have < want {
                return broken(format!(
                    "/k{c} is {have} on every member, but {want} was answered (a lost write)"
                ));
            }
        }
        let mut bad = None;
        node.shared.tree.for_each(|p, n| {
            let owner = n.fields().ephemeral_owner;
            if crate::proto::ops::ephemeral_session(owner, true).is_some()
                && self.ended.contains(&owner)
            {
                bad = Some(format!("ephemeral {p} of session 0x{owner:x}, which ended"));
            }
        });
        bad.map_or(Ok(()), broken)
    }
}

/// A request's body as a client sends it (a learner forwards these bytes as they came).
fn encode_body(r: &Request) -> Vec<u8> {
    let mut w = crate::proto::Writer::new();
    fn create(w: &mut crate::proto::Writer, c: &CreateRequest) {
        w.string(&c.path).opt_buffer(&c.data);
        crate::proto::records::write_acls(w, &c.acl);
        w.i32(c.flags);
        if c.ttl > 0 {
            w.i64(c.ttl); // createTTL's
        }
    }
    match r {
        Request::SetData {
            path,
            data,
            version,
        } => {
            w.string(path).opt_buffer(data).i32(*version);
        }
        Request::Create { req, .. } => create(&mut w, req),
        Request::Delete { path, version } => {
            w.string(path).i32(*version);
        }
        Request::Sync { path } => {
            w.string(path);
        }
        Request::SetAcl { path, acl, version } => {
            w.string(path);
            crate::proto::records::write_acls(&mut w, acl);
            w.i32(*version);
        }
        Request::Multi { ops } => {
            for o in ops {
                match o {
                    MultiOp::Create { op, req } => {
                        w.i32(*op).bool(false).i32(-1);
                        create(&mut w, req);
                    }
                    MultiOp::SetData {
                        path,
                        data,
                        version,
                    } => {
                        w.i32(op::SET_DATA).bool(false).i32(-1);
                        w.string(path).opt_buffer(data).i32(*version);
                    }
                    MultiOp::Check { path, version } => {
                        w.i32(op::CHECK).bool(false).i32(-1);
                        w.string(path).i32(*version);
                    }
                    _ => unreachable!("the simulator's multis create, set and check"),
                }
            }
            w.i32(-1).bool(true).i32(-1);
        }
        _ => {}
    }
    w.buf
}

/// Where simulated data directories go: memory, where there is a tmpfs.
fn sim_tmp() -> std::path::PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// The registers /k<c>: anyone may write them, only the user `sim` may read them (and
/// so hear of their changes).
fn register_acl() -> Vec<crate::proto::records::Acl> {
    use crate::proto::ops::perm;
    use crate::proto::records::Acl;
    vec![
        Acl {
            perms: perm::ALL & !perm::READ,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        },
        Acl {
            perms: perm::READ,
            id: sim_user(),
        },
    ]
}

fn sim_user() -> Id {
    Id {
        scheme: "digest".into(),
        id: crate::acl::digest("sim:secret"),
    }
}

/// A create of `path` with no data, open to all: (opcode, request), for a request or a
/// multi's op.
fn create(path: String, op: i32, flags: i32, ttl: i64) -> (i32, CreateRequest) {
    let req = CreateRequest {
        path,
        data: None,
        acl: crate::acl::open_acl(),
        flags,
        ttl,
    };
    (op, req)
}

fn set(path: &str, v: u64) -> Request {
    Request::SetData {
        path: path.into(),
        data: Some(v.to_string().into_bytes()),
        version: -1,
    }
}

/// The xid of the request a client's connection just moved to `waiting`.
fn xid_of(cl: &Client) -> i32 {
    cl.conn
        .as_ref()
        .and_then(|k| k.waiting.back())
        .map_or(0, |s| s.xid)
}

fn req_op(r: &Request) -> i32 {
    match r {
        Request::Create { op, .. } => *op,
        Request::Delete { .. } => op::DELETE,
        Request::SetData { .. } => op::SET_DATA,
        Request::GetData { .. } => op::GET_DATA,
        Request::Multi { .. } => op::MULTI,
        Request::MultiRead { .. } => op::MULTI_READ,
        Request::Exists { .. } => op::EXISTS,
        Request::GetChildren2 { .. } => op::GET_CHILDREN2,
        Request::Sync { .. } => op::SYNC,
        Request::GetAcl { .. } => op::GET_ACL,
        Request::SetAcl { .. } => op::SET_ACL,
        Request::GetEphemerals { .. } => op::GET_EPHEMERALS,
        Request::AddWatch { .. } => op::ADD_WATCH,
        Request::RemoveWatches { .. } => op::REMOVE_WATCHES,
        Request::WhoAmI => op::WHO_AM_I,
        Request::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
        Request::CloseSession => op::CLOSE_SESSION,
        _ => op::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(members: usize, var: &str, default: u64, steps: u64) {
        let n = super::super::seeds(var, default);
        let mut total = SimReport::default();
        for seed in 0..n {
            let r = ServerSim::run(seed, members, steps, None).unwrap_or_else(|v| panic!("{v}"));
            total.add(&r);
        }
        eprintln!("{members}-member simulation, {n} seeds of {steps} steps: {total:?}");
        assert!(total.writes_answered > 0 && total.reads_checked > 0);
        assert!(total.crashes > 0 && total.expired > 0);
        if members == 1 {
            // (An ensemble member out of space leaves its role instead.)
            assert!(total.refused > 0);
        } else {
            assert!(total.elections > 0 && total.partitions > 0);
        }
    }

    /// Standalone: `PADDOCK_SIM_SEEDS` seeds (default 2000), 400 steps each.
    #[test]
    fn standalone_servers_keep_every_guarantee() {
        sweep(1, "PADDOCK_SIM_SEEDS", 2000, 400);
    }

    /// Three members: `PADDOCK_SIM_ENSEMBLE_SEEDS` seeds (default 1000), 800 steps each,
    /// the last quarter healed.
    #[test]
    fn ensembles_keep_every_guarantee() {
        sweep(3, "PADDOCK_SIM_ENSEMBLE_SEEDS", 1000, 800);
    }

    /// Each bug put back is caught by the sweep; the first seed that catches it is
    /// printed (the notes list them), and it passes without the bug.
    #[test]
    fn every_mutation_is_caught() {
        for m in Mutation::ALL {
            let (members, steps) = (m.members(), if m.members() > 1 { 800 } else { 400 });
            let caught = (0..1000u64).find_map(|seed| {
                ServerSim::run(seed, members, steps, Some(m))
                    .err()
                    .map(|v| (seed, v))
            });
            match caught {
                Some((seed, v)) => {
                    if let Err(e) = ServerSim::run(seed, members, steps, None) {
                        panic!("seed {seed:#x} fails without mutation {m:?} too: {e}");
                    }
                    let first = v.0.lines().next().unwrap_or("").to_owned();
                    eprintln!("{m:?}: caught by seed {seed:#x}: {first}");
                }
                None => panic!("mutation {m:?} was not caught by 1000 seeds"),
            }
        }
    }
}
