//! Whole-server deterministic simulation (issue 15, item 4), standalone: the real writer
//! (its loop turned by hand, `WriterLoop::turn`), its sessions, watches, session order and
//! the published read view, on a simulated clock (`Clock::Sim`) and a simulated disk
//! (`SimLog`) that loses the unsynced tail or tears the last record in a crash, fails a
//! sync (the server stops: `fatal` unwinds under the simulator) and fills up. A model of
//! the reactor stands between the writer and seeded clients: it keeps each connection's
//! replies in order as the real one does (plain reads run on the published tree with the
//! real read path; a read behind its session's writes waits or goes to the writer), and
//! delivers what the writer sends in order.
//!
//! Clients issue writes to their own keys (setData, pipelined), multis that write two
//! keys with one value, ephemeral creates and deletes, plain and watching reads, multiReads,
//! closes, reconnects, and silences long enough to expire. Checked at every step:
//!
//! - replies of a connection come in xid order;
//! - no answered write is lost, across crashes: a read never returns less than the
//!   newest write of its key answered before the read was sent;
//! - no refused write (SystemError, full disk) is ever seen, and no value is seen before
//!   it was written;
//! - a session's reads never go back (values and reply zxids), across reconnects;
//! - a multi is seen whole (multiRead of its two keys agrees);
//! - a watch event comes before any reply that shows the data it announces;
//! - no ephemeral outlives its session: every ephemeral in the published tree belongs to
//!   a session of the writer's table, and none of a session whose close was answered;
//! - a close is answered before its connection closes, unless the server stopped.
//!
//! A failing seed prints itself; `StandaloneSim::run(seed, None)` replays it exactly.

use super::{Entropy, Violation};
use crate::config::{Config, RawConfig};
use crate::log::{LogError, TxnLog};
use crate::mutation::{self, Mutation};
use crate::proto::ops::{event, op, xid as xids, ZkError};
use crate::proto::records::{ConnectRequest, CreateRequest, Id, MultiOp, Request};
use crate::proto::Reader;
use crate::server::recovery::{recover_state_from, Recent, RecoveredState, StartError};
use crate::server::writer::{Recovered, Storage, WriterLoop};
use crate::server::{reads, Clock, ConnInfo, ReactorHandle, Shared, ToReactor, ToWriter};
use crate::session::password;
use crate::types::{ConnId, SessionId, Zxid};
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
    /// Records made durable by a sync, in order.
    durable: Vec<Vec<u8>>,
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
        for (i, (_, mut r)) in unsynced.into_iter().take(keep).enumerate() {
            if i + 1 == keep && rng.below(3) == 0 {
                r.truncate(rng.below(r.len() as u64) as usize);
            }
            self.durable.push(r);
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
        if d.full {
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
            d.durable.push(r);
        }
        Ok(d.last)
    }
    fn discard(&mut self) {
        self.0.borrow_mut().unsynced.clear();
    }
    fn roll(&mut self) -> Result<(), LogError> {
        Ok(())
    }
    fn truncate_after(&mut self, _zxid: Zxid) -> Result<(), LogError> {
        unreachable!("a standalone server never truncates")
    }
    fn reset(&mut self, _zxid: Zxid) -> Result<(), LogError> {
        unreachable!("a standalone server never installs a snapshot")
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
            let mut good = 0;
            for r in &d.durable {
                match f(r) {
                    Ok(z) => {
                        out.last_zxid = out.last_zxid.max(z);
                        out.records += 1;
                        good += 1;
                    }
                    Err(e) => {
                        out.truncated.push(format!("a torn record: {e}"));
                        break;
                    }
                }
            }
            d.durable.truncate(good);
            d.last = out.last_zxid;
            Ok(out)
        })
    }
}

/// One server: its writer and what the reactor model needs.
struct Node {
    writer: WriterLoop<SimLog>,
    shared: Arc<Shared>,
    to_writer: Sender<ToWriter>,
    from_writer: Receiver<ToReactor>,
    // Kept for the handle's waker.
    _poll: Box<dyn std::any::Any>,
}

/// Starts a server on `disk` as start-up does (`Storage::recover`: a snapshot in `dir`
/// if there is one, the durable records after it, the sessions they leave, touched now).
fn boot(cfg: &Config, disk: &Rc<RefCell<Disk>>, dir: &Path, clock: &Clock) -> Node {
    let mut log = SimLog(disk.clone());
    let st = log
        .recover(cfg, dir, clock.now_ms())
        .expect("the simulated disk recovers");
    let last = st.last_zxid;
    let (tree, sessions, idx) = (st.tree, st.sessions, st.idx);
    let shared = Arc::new(Shared::new(cfg.clone(), tree, last));
    let (handle, rrx, poll) = ReactorHandle::detached().expect("a reactor handle");
    let (wtx, wrx) = crossbeam_channel::unbounded();
    let writer = WriterLoop::new(
        shared.clone(),
        log,
        wrx,
        vec![handle],
        Recovered {
            sessions,
            idx,
            last_zxid: last,
            snap_dir: dir.to_owned(),
            snapshot_soon: false,
            ens: None,
            recent: Recent::default(),
            clock: clock.clone(),
        },
    );
    Node {
        writer,
        shared,
        to_writer: wtx,
        from_writer: rrx,
        _poll: poll,
    }
}

/// What a client asked, to check its reply.
#[derive(Clone, Debug)]
enum Asked {
    Set { key: usize, value: u64 },
    Multi { value: u64 },
    Get { key: usize, watch: bool },
    MultiRead { client: usize },
    CreateEphemeral { path: String },
    DeleteEphemeral,
    Close,
}

#[derive(Debug)]
struct Sent {
    xid: i32,
    asked: Asked,
    /// Newest answered value of each key when it was sent (for reads).
    floor: u64,
}

/// The reactor's side of one connection.
struct Conn {
    id: ConnId,
    /// Not yet dispatched (behind a request at the writer), in order.
    held: VecDeque<(Request, Sent)>,
    /// Sent to the writer or answered, awaiting the client's check, in order.
    waiting: VecDeque<Sent>,
    at_writer: usize,
    established: bool,
    closed: bool,
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
    ephemerals: Vec<String>,
    next_ephemeral: u64,
    /// No touches until this step (its session may expire).
    silent_until: u64,
    /// The session is known gone (close answered, or refused as expired).
    gone: bool,
    /// A close was sent and not yet answered on this connection.
    closing: bool,
}

/// Keys: 0..clients are one client's own register each; `multi_a(c)`/`multi_b(c)` the
/// two keys its multis write.
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
}

pub struct StandaloneSim {
    seed: u64,
    rng: Entropy,
    cfg: Config,
    clock_ms: Arc<AtomicI64>,
    clock: Clock,
    disk: Rc<RefCell<Disk>>,
    /// The data directory: the snapshot recovery writes at the first start.
    dir: tempfile::TempDir,
    node: Option<Node>,
    clients: Vec<Client>,
    next_conn: ConnId,
    step: u64,
    /// Per key: values answered OK (value → step answered), refused values, the newest
    /// value sent.
    acked: HashMap<usize, Vec<(u64, u64)>>,
    refused: HashMap<usize, HashSet<u64>>,
    sent_max: HashMap<usize, u64>,
    /// Sessions whose close was answered or that were refused as expired.
    ended: HashSet<SessionId>,
    report: SimReport,
    trace: VecDeque<String>,
}

const CLIENTS: usize = 4;

impl StandaloneSim {
    pub fn new(seed: u64) -> StandaloneSim {
        let raw = RawConfig::parse(
            "tickTime=100\ndataDir=/nonexistent\nclientPort=2181\nminSessionTimeout=400\n\
             maxSessionTimeout=4000\nsnapCount=100000000\n",
        )
        .expect("sim config");
        let cfg = Config::from_raw(raw).expect("sim config");
        let clock_ms = Arc::new(AtomicI64::new(1_700_000_000_000));
        let clock = Clock::Sim(clock_ms.clone());
        let disk = Rc::new(RefCell::new(Disk::default()));
        let clients = (0..CLIENTS)
            .map(|_| Client {
                session: 0,
                conn: None,
                next_xid: 1,
                seen_zxid: 0,
                seen: HashMap::new(),
                armed: HashMap::new(),
                next_value: 1,
                ephemerals: Vec::new(),
                next_ephemeral: 0,
                silent_until: 0,
                gone: false,
                closing: false,
            })
            .collect();
        StandaloneSim {
            seed,
            rng: Entropy::new(seed),
            cfg,
            clock_ms,
            clock,
            disk,
            dir: tempfile::Builder::new()
                .prefix("paddock-sim")
                .tempdir_in(sim_tmp())
                .expect("a directory for the simulated server"),
            node: None,
            clients,
            next_conn: 1,
            step: 0,
            acked: HashMap::new(),
            refused: HashMap::new(),
            sent_max: HashMap::new(),
            ended: HashSet::new(),
            report: SimReport::default(),
            trace: VecDeque::new(),
        }
    }

    /// Runs `steps` steps of seed `seed` with `mutation` put back; the first broken
    /// guarantee ends it.
    pub fn run(seed: u64, steps: u64, m: Option<Mutation>) -> Result<SimReport, Violation> {
        let _guard = mutation::put_back(m);
        crate::SIMULATED.with(|s| s.set(true));
        let mut sim = StandaloneSim::new(seed);
        let out = sim.go(steps);
        crate::SIMULATED.with(|s| s.set(false));
        out.map(|()| std::mem::take(&mut sim.report))
            .map_err(|why| sim.violation(m, why.0))
    }

    fn violation(&self, m: Option<Mutation>, why: String) -> Violation {
        let trace: Vec<&str> = self.trace.iter().map(String::as_str).collect();
        Violation(format!(
            "seed {:#x} step {}{}: {why}\nreplay: StandaloneSim::run({:#x}, .., {m:?})\nlast events:\n  {}",
            self.seed,
            self.step,
            m.map(|m| format!(" (mutation {m:?})")).unwrap_or_default(),
            self.seed,
            trace.join("\n  ")
        ))
    }

    fn note(&mut self, what: String) {
        if self.trace.len() == 40 {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("[{}] {what}", self.step));
    }

    fn go(&mut self, steps: u64) -> Result<(), Broken> {
        self.node = Some(boot(&self.cfg, &self.disk, self.dir.path(), &self.clock));
        self.setup()?;
        while self.step < steps {
            self.step += 1;
            self.report.steps += 1;
            self.clock_ms
                .fetch_add(1 + self.rng.below(30) as i64, Relaxed);
            self.faults();
            if self.node.is_none() {
                continue;
            }
            // Each client sends up to 3 requests a step, pipelined: they reach the
            // writer in one part.
            for c in 0..CLIENTS {
                for _ in 0..self.rng.below(4) {
                    self.client_acts(c)?;
                }
            }
            self.touch();
            self.turn()?;
            if let Some(n) = &self.node {
                n.writer.check_state(true).map_err(|e| Broken(e.0))?;
            }
            self.deliver()?;
            self.check_tree()?;
        }
        Ok(())
    }

    /// The keys exist before the clients start (one txn each, through the real writer).
    fn setup(&mut self) -> Result<(), Broken> {
        // A setup session: a connect, then creates, answered before anything else runs.
        let node = self.node.as_ref().unwrap();
        let tree = &node.shared.tree;
        let mut paths: Vec<String> = (0..CLIENTS).map(key_path).collect();
        paths.extend((0..CLIENTS).flat_map(|c| [format!("/m{c}a"), format!("/m{c}b")]));
        paths.push("/e".into());
        let ops = paths
            .iter()
            .filter(|p| tree.get(p).is_none())
            .map(|p| MultiOp::Create {
                op: op::CREATE,
                req: CreateRequest {
                    path: p.clone(),
                    data: Some(b"0".to_vec()),
                    acl: crate::acl::open_acl(),
                    flags: 0,
                    ttl: -1,
                },
            })
            .collect::<Vec<_>>();
        let conn = self.new_conn();
        self.send(ToWriter::Connect {
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
        });
        self.turn()?;
        let mut session = 0;
        for m in self.node.as_ref().unwrap().from_writer.try_iter() {
            if let ToReactor::Connected { session: s, .. } = m {
                session = s;
            }
        }
        self.send(ToWriter::Request {
            conn,
            session,
            xid: 1,
            op: op::MULTI,
            req: Request::Multi { ops },
            ids: Arc::from(Vec::<Id>::new()),
            raw: None,
        });
        self.send(ToWriter::Request {
            conn,
            session,
            xid: 2,
            op: op::CLOSE_SESSION,
            req: Request::CloseSession,
            ids: Arc::from(Vec::<Id>::new()),
            raw: None,
        });
        self.turn()?;
        let _ = self.node.as_ref().unwrap().from_writer.try_iter().count();
        for p in &paths {
            if self.node.as_ref().unwrap().shared.tree.get(p).is_none() {
                return broken(format!("setup: {p} was not created"));
            }
        }
        Ok(())
    }

    fn new_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        self.next_conn
    }

    fn send(&self, m: ToWriter) {
        if let Some(n) = &self.node {
            let _ = n.to_writer.send(m);
        }
    }

    /// One turn of the real writer; a `fatal` inside is a crash.
    fn turn(&mut self) -> Result<(), Broken> {
        let Some(node) = self.node.as_mut() else {
            return Ok(());
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| node.writer.turn()));
        match r {
            Ok(()) => Ok(()),
            Err(p) => match p.downcast::<crate::Fatal>() {
                Ok(f) => {
                    self.note(format!("server stopped: {}", f.0));
                    self.crash();
                    Ok(())
                }
                Err(p) => std::panic::resume_unwind(p),
            },
        }
    }

    /// The server process dies: connections close, the disk keeps what it keeps.
    fn crash(&mut self) {
        self.report.crashes += 1;
        self.node = None;
        let mut rng = Entropy::new(self.rng.next_u64());
        self.disk.borrow_mut().crash(&mut rng);
        for c in &mut self.clients {
            if let Some(conn) = c.conn.take() {
                c.armed.clear();
                // A close in flight has no answer: its outcome is unknown.
                let _ = conn;
                c.closing = false;
            }
        }
    }

    fn faults(&mut self) {
        let r = self.rng.below(1000);
        if self.node.is_none() {
            if r < 300 {
                self.note("server restarts".into());
                self.node = Some(boot(&self.cfg, &self.disk, self.dir.path(), &self.clock));
            }
            return;
        }
        match r {
            0..=5 => {
                self.note("kill -9".into());
                self.crash();
            }
            6..=8 => {
                self.note("the next sync fails".into());
                self.disk.borrow_mut().fail_sync = true;
            }
            9..=14 => {
                let full = !self.disk.borrow().full;
                self.note(format!("disk full: {full}"));
                self.disk.borrow_mut().full = full;
            }
            15..=25 => {
                // A client goes silent for longer than its session timeout.
                let c = self.rng.below(CLIENTS as u64) as usize;
                self.clients[c].silent_until = self.step + 150 + self.rng.below(150);
                self.note(format!("client {c} goes silent"));
            }
            _ => {}
        }
        if self.disk.borrow().full && self.rng.below(20) == 0 {
            self.note("disk has space again".into());
            self.disk.borrow_mut().full = false;
        }
    }

    fn touch(&mut self) {
        let now = self.clock.now_ms() as u64;
        let touches: Vec<(SessionId, u64)> = self
            .clients
            .iter()
            .filter(|c| {
                c.session != 0
                    && c.silent_until <= self.step
                    && c.conn.as_ref().is_some_and(|k| k.established)
            })
            .map(|c| (c.session, now))
            .collect();
        if !touches.is_empty() {
            self.send(ToWriter::Touch(touches));
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
            65..=74 => {
                let o = self.rng.below(CLIENTS as u64) as usize;
                let ops = [format!("/m{o}a"), format!("/m{o}b")]
                    .into_iter()
                    .map(|path| MultiOp::GetData { path })
                    .collect();
                (Request::MultiRead { ops }, Asked::MultiRead { client: o })
            }
            75..=84 => {
                let n = self.clients[c].next_ephemeral;
                self.clients[c].next_ephemeral += 1;
                let path = format!("/e/c{c}-{n}");
                let req = Request::Create {
                    op: op::CREATE,
                    req: CreateRequest {
                        path: path.clone(),
                        data: None,
                        acl: crate::acl::open_acl(),
                        flags: 1,
                        ttl: -1,
                    },
                };
                (req, Asked::CreateEphemeral { path })
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
                self.send(ToWriter::Closed {
                    conn: conn.id,
                    session: self.clients[c].session,
                });
                self.clients[c].armed.clear();
                return Ok(());
            }
            95 => {
                self.clients[c].closing = true;
                (Request::CloseSession, Asked::Close)
            }
            _ => return Ok(()),
        };
        self.request(c, req, asked)
    }

    fn connect(&mut self, c: usize) -> Result<(), Broken> {
        if self.clients[c].gone {
            // A new session for this client.
            self.clients[c].session = 0;
            self.clients[c].gone = false;
            self.clients[c].seen.clear();
            self.clients[c].seen_zxid = 0;
            self.clients[c].ephemerals.clear();
        }
        let applied = self.node.as_ref().map_or(0, |n| n.shared.last_zxid());
        if applied < self.clients[c].seen_zxid {
            return broken(format!(
                "client {c}: the server has applied 0x{applied:x}, behind 0x{:x} the session saw \
                 (txns lost)",
                self.clients[c].seen_zxid
            ));
        }
        let id = self.new_conn();
        let cl = &mut self.clients[c];
        cl.conn = Some(Conn {
            id,
            held: VecDeque::new(),
            waiting: VecDeque::new(),
            at_writer: 0,
            established: false,
            closed: false,
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
            "client {c} connects on {id} (session 0x{session:x})"
        ));
        self.send(ToWriter::Connect {
            conn: id,
            req,
            info: Arc::new(ConnInfo::new("127.0.0.1:1".parse().unwrap())),
        });
        Ok(())
    }

    /// A request enters the reactor model: answered, sent to the writer, or held.
    fn request(&mut self, c: usize, req: Request, asked: Asked) -> Result<(), Broken> {
        let xid = self.clients[c].next_xid;
        self.clients[c].next_xid += 1;
        let floor = match &asked {
            Asked::Get { key, .. } => self.answered_max(*key),
            _ => 0,
        };
        let sent = Sent { xid, asked, floor };
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
        loop {
            let session = self.clients[c].session;
            let coin = self.rng.below(2) == 0;
            let conn = self.clients[c].conn.as_mut().unwrap();
            let Some((req, _)) = conn.held.front() else {
                return Ok(());
            };
            let local = req.is_plain_read();
            let behind = conn.at_writer > 0;
            // Standalone: a plain read behind writes may go to the writer, which answers
            // it right after them.
            let to_writer = !local || (behind && coin);
            if local && behind && !to_writer {
                return Ok(());
            }
            let (req, sent) = conn.held.pop_front().unwrap();
            let id = conn.id;
            if to_writer {
                conn.at_writer += 1;
                let xid = sent.xid;
                conn.waiting.push_back(sent);
                let opcode = req_op(&req);
                self.send(ToWriter::Request {
                    conn: id,
                    session,
                    xid,
                    op: opcode,
                    req,
                    ids: Arc::from(Vec::<Id>::new()),
                    raw: None,
                });
                continue;
            }
            // Invariant 5: events the writer queued go first (they may close it).
            self.deliver()?;
            if self.clients[c].conn.as_ref().is_none_or(|k| k.id != id) {
                return Ok(());
            }
            let node = self.node.as_ref().unwrap();
            let frame = match reads::reply_consistent(
                &node.shared.tree,
                &node.shared.last_zxid,
                || true,
                &node.shared.cfg,
                &[],
                sent.xid,
                &req,
            ) {
                reads::Consistent::Answered { frame, .. } => frame,
                other => {
                    return broken(format!(
                        "a standalone read was not answered: {}",
                        matches!(other, reads::Consistent::Busy)
                    ))
                }
            };
            let conn = self.clients[c].conn.as_mut().unwrap();
            conn.waiting.push_back(sent);
            self.reply(c, &frame, false)?;
        }
    }

    /// Everything the writer sent, in order, to the clients.
    fn deliver(&mut self) -> Result<(), Broken> {
        loop {
            let Some(node) = self.node.as_ref() else {
                return Ok(());
            };
            let Ok(m) = node.from_writer.try_recv() else {
                return Ok(());
            };
            let Some(conn) = m.conn() else { continue };
            let Some(c) = self
                .clients
                .iter()
                .position(|cl| cl.conn.as_ref().is_some_and(|k| k.id == conn))
            else {
                continue; // a connection the client left
            };
            match m {
                ToReactor::Frame { bytes, reply, .. } => {
                    let k = self.clients[c].conn.as_ref().unwrap();
                    // Before `Connected`: the ConnectResponse.
                    if k.closed || !k.established {
                        continue;
                    }
                    self.reply(c, &bytes, reply)?;
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
                                "client {c}: session 0x{session:x} resumed at 0x{zxid:x}, behind 0x{:x} it saw",
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
                    let cl = &mut self.clients[c];
                    if cl.closing {
                        return broken(format!(
                            "client {c}: its close was not answered before the connection closed"
                        ));
                    }
                    cl.conn = None;
                    cl.armed.clear();
                }
                _ => {}
            }
        }
    }

    /// A frame reaches client `c`: a notification, or the reply to its oldest request.
    fn reply(&mut self, c: usize, frame: &[u8], _from_writer: bool) -> Result<(), Broken> {
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
                self.report.writes_answered += 1;
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
            Asked::Get { key, watch } => {
                if err != 0 {
                    return broken(format!("client {c}: getData of /k{key} failed with {err}"));
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

    /// Between turns the writer is at a txn boundary: every ephemeral in the published
    /// tree belongs to a session in its table, and none to a session that ended.
    fn check_tree(&mut self) -> Result<(), Broken> {
        let Some(node) = self.node.as_ref() else {
            return Ok(());
        };
        let mut bad = None;
        node.shared.tree.for_each(|p, n| {
            let owner = n.fields().ephemeral_owner;
            if owner != 0 && bad.is_none() {
                if node.writer.sessions.get(owner).is_none() {
                    bad = Some(format!(
                        "ephemeral {p} of session 0x{owner:x}, not in the session table"
                    ));
                } else if self.ended.contains(&owner) {
                    bad = Some(format!("ephemeral {p} of session 0x{owner:x}, which ended"));
                }
            }
        });
        bad.map_or(Ok(()), |b| Err(Broken(b)))
    }
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

fn set(path: &str, v: u64) -> Request {
    Request::SetData {
        path: path.into(),
        data: Some(v.to_string().into_bytes()),
        version: -1,
    }
}

fn req_op(r: &Request) -> i32 {
    match r {
        Request::Create { .. } => op::CREATE,
        Request::Delete { .. } => op::DELETE,
        Request::SetData { .. } => op::SET_DATA,
        Request::GetData { .. } => op::GET_DATA,
        Request::Multi { .. } => op::MULTI,
        Request::MultiRead { .. } => op::MULTI_READ,
        Request::CloseSession => op::CLOSE_SESSION,
        _ => op::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds of the standalone sweep: `PADDOCK_SIM_SEEDS` (default 2000), each 400 steps.
    #[test]
    fn standalone_servers_keep_every_guarantee() {
        let n = super::super::seeds("PADDOCK_SIM_SEEDS", 2000);
        let mut total = SimReport::default();
        for seed in 0..n {
            let r = StandaloneSim::run(seed, 400, None).unwrap_or_else(|v| panic!("{v}"));
            total.steps += r.steps;
            total.writes_answered += r.writes_answered;
            total.reads_checked += r.reads_checked;
            total.crashes += r.crashes;
            total.refused += r.refused;
            total.expired += r.expired;
            total.closes += r.closes;
        }
        eprintln!("standalone simulation, {n} seeds: {total:?}");
        assert!(total.writes_answered > 0 && total.reads_checked > 0);
        assert!(total.crashes > 0 && total.refused > 0 && total.expired > 0);
    }

    /// Each bug put back is caught by the sweep; the first seed that catches it is
    /// printed (the notes list them).
    #[test]
    fn every_mutation_is_caught() {
        for m in Mutation::ALL {
            let caught = (0..300u64).find_map(|seed| {
                StandaloneSim::run(seed, 400, Some(m))
                    .err()
                    .map(|v| (seed, v))
            });
            match caught {
                Some((seed, v)) => {
                    // Caught by the mutation, not by a checker that is wrong: the same
                    // seed passes without it.
                    if let Err(e) = StandaloneSim::run(seed, 400, None) {
                        panic!("seed {seed:#x} fails without mutation {m:?} too: {e}");
                    }
                    let first = v.0.lines().next().unwrap_or("").to_owned();
                    eprintln!("{m:?}: caught by seed {seed:#x}: {first}");
                }
                None => panic!("mutation {m:?} was not caught by 300 seeds"),
            }
        }
    }
}
