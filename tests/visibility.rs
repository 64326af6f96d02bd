//! Issue 13, item 1 (invariant 4): readers see every txn whole or not at all, and a
//! session's view never goes back. A checker, not an example: for RUN seconds writers
//! commit multis of setData over KEYS nodes, create and delete children (plain creates
//! and deletes, and multis of them), and close sessions holding EPHEMERALS ephemerals,
//! while raw reader sessions on every member pipeline reads and check each reply against
//! what the same session read before. It stops by itself and prints what it checked.
//!
//! A family is a set of parents and children that txns change together: /pc<i> and its
//! child c (plain create, plain delete), or all of /pm0../pm<MULTI_PARENTS-1> and their
//! children c (one multi creates every child, the next deletes every child).
//!
//! Checks (each counted, the first few violations kept):
//! - (a) `multiread-split`: one multiRead of every key shows one multi (one value, one
//!   mzxid). `session-back`: a later getData (or multiRead) of a session never shows an
//!   older multi than an earlier read of that session showed (reads go k0, kLast, k0...).
//! - (b) `parent-behind-child`: once a session saw a child with czxid Z, its later reads
//!   of a parent of that family have pzxid >= Z (counted when the session saw a child
//!   newer than every parent it read). `deleted-child-found`: once it saw a parent of the
//!   family list no child at pzxid P, a later exists finds no child created before P
//!   (counted when that listing is newer than every child it saw). `pzxid-back`: the
//!   family's pzxid never goes back within a session.
//! - (c) `close-partial`: a getChildren2 of /e lists all or none of a closed session's
//!   ephemerals. /e's data version counts completed sessions (the writer sets it after
//!   creating a session's ephemerals and before closing it), so in one reply every
//!   session `g < version` must have 0 or EPHEMERALS children listed.
//! - (d) `header-behind-data`: a reply's header zxid >= czxid, mzxid and pzxid of every
//!   Stat it carries (counted per reply). `header-back`: a session's header zxids never
//!   go back.
//!
//! Not checked here: a session's view across members (reconnects); each reader session
//! stays on one member.

use crate::ensemble::Ensemble;
use crate::harness::{create_body, jute_string, Raw, Server};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paddock::proto::ops::op::{
    CLOSE_SESSION, CREATE, DELETE, EXISTS, GET_CHILDREN2, GET_DATA, MULTI, MULTI_READ, SET_DATA,
    SYNC,
};
const NO_NODE: i32 = -101;

/// How long writers and readers run.
const RUN: Duration = Duration::from_secs(10);
/// Nodes every multi sets, /v/k0../v/k{KEYS-1}.
const KEYS: usize = 300;
/// Multis a writer keeps in flight (group commit takes several per sync).
const MULTIS_IN_FLIGHT: usize = 4;
/// Ephemerals each closed session holds.
const EPHEMERALS: usize = 32;
/// (k0, kLast) getData pairs a reader pipelines per round.
const PAIRS_PER_ROUND: usize = 16;
/// Parents /pc0.. whose child c plain creates and deletes come and go.
const PLAIN_PARENTS: usize = 4;
/// Parents /pm0.. whose children /pm<i>/c one multi creates and the next deletes.
const MULTI_PARENTS: usize = 32;
/// (child, parent, parent, child) probes of the multi family a reader pipelines per round.
const MULTI_FAMILY_PROBES_PER_ROUND: usize = 4;
/// getChildren2 of /e a reader pipelines per round.
const EPHEMERAL_PROBES_PER_ROUND: usize = 2;
/// Violations kept per check for the failure message.
const EXAMPLES_MAX: usize = 4;

#[derive(Clone, Copy)]
enum Check {
    MultiReadSplit,
    SessionBack,
    ParentBehindChild,
    DeletedChildFound,
    PzxidBack,
    ClosePartial,
    HeaderBehindData,
    HeaderBack,
}

const CHECKS: [(Check, &str); 8] = [
    (Check::MultiReadSplit, "(a) multiread-split"),
    (Check::SessionBack, "(a) session-back"),
    (Check::ParentBehindChild, "(b) parent-behind-child"),
    (Check::DeletedChildFound, "(b) deleted-child-found"),
    (Check::PzxidBack, "(b) pzxid-back"),
    (Check::ClosePartial, "(c) close-partial"),
    (Check::HeaderBehindData, "(d) header-behind-data"),
    (Check::HeaderBack, "(d) header-back"),
];

/// What every thread reports into: per check, how often it was checked and violated, and
/// the first few violations; errors that stop a thread (lost connection, failed write).
#[derive(Default)]
struct Audit {
    checked: [AtomicU64; 8],
    violated: [AtomicU64; 8],
    examples: Mutex<[Vec<String>; 8]>,
    errors: Mutex<Vec<String>>,
    replies: AtomicU64,
    multis: AtomicU64,
    child_pairs: AtomicU64,
    closes: AtomicU64,
}

impl Audit {
    /// Counts one check of `c`; `bad` says (lazily) what was violated, if anything.
    fn check(&self, c: Check, ok: bool, bad: impl FnOnce() -> String) {
        self.checked[c as usize].fetch_add(1, Relaxed);
        if !ok {
            self.violated[c as usize].fetch_add(1, Relaxed);
            let mut ex = self.examples.lock().unwrap();
            let bad = bad();
            if ex[c as usize].len() < EXAMPLES_MAX && !ex[c as usize].contains(&bad) {
                ex[c as usize].push(bad);
            }
        }
    }
    fn error(&self, e: String) {
        self.errors.lock().unwrap().push(e);
    }

    /// Prints what was checked and found; panics on any violation or error.
    fn verdict(&self, what: &str, ran: Duration) {
        let mut report = format!(
            "visibility {what}: {:.1} s; writes: {} multis of {KEYS} setData, {} rounds creating and \
             deleting {PLAIN_PARENTS} children one by one and {MULTI_PARENTS} in one multi, {} closeSessions of {EPHEMERALS} ephemerals; {} read replies\n",
            ran.as_secs_f64(),
            self.multis.load(Relaxed),
            self.child_pairs.load(Relaxed),
            self.closes.load(Relaxed),
            self.replies.load(Relaxed),
        );
        let mut total = 0;
        for (c, name) in CHECKS {
            let (n, v) = (
                self.checked[c as usize].load(Relaxed),
                self.violated[c as usize].load(Relaxed),
            );
            total += v;
            report.push_str(&format!(
                "  {name:<26} {n:>9} checked {v:>7} violations ({:.3}%)\n",
                100.0 * v as f64 / n.max(1) as f64
            ));
        }
        eprint!("{report}");
        let examples = self.examples.lock().unwrap();
        let mut first = String::new();
        for (c, name) in CHECKS {
            for e in &examples[c as usize] {
                first.push_str(&format!("  {name}: {e}\n"));
            }
        }
        let errors = self.errors.lock().unwrap();
        assert!(
            errors.is_empty(),
            "visibility {what}: the checker could not run as planned: {errors:?}\n{report}"
        );
        for (c, name) in CHECKS {
            assert!(
                self.checked[c as usize].load(Relaxed) > 0,
                "visibility {what}: {name} was never checked\n{report}"
            );
        }
        assert!(
            total == 0,
            "visibility {what}: {total} reads showed part of a txn or went back \
             (invariant 4)\n{report}first violations:\n{first}"
        );
    }
}

/// A raw session at `addr`, retried until `within` passes (a member may not serve yet).
fn session_at(addr: &str, within: Duration) -> Result<Raw, String> {
    let deadline = Instant::now() + within;
    loop {
        let attempt = || -> Option<Raw> {
            let (raw, _, _) = Raw::try_session(addr, 0, &[], 4000)?;
            raw.sock
                .set_read_timeout(Some(Duration::from_secs(10)))
                .ok()?;
            Some(raw)
        };
        if let Some(r) = attempt() {
            return Ok(r);
        }
        if Instant::now() > deadline {
            return Err(format!("no session at {addr} within {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn path_watch(path: &str) -> Vec<u8> {
    let mut b = jute_string(path);
    b.push(0);
    b
}

fn set_body(path: &str, data: &[u8]) -> Vec<u8> {
    let mut b = jute_string(path);
    b.extend_from_slice(&(data.len() as i32).to_be_bytes());
    b.extend_from_slice(data);
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b
}

fn delete_body(path: &str) -> Vec<u8> {
    let mut b = jute_string(path);
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b
}

/// A multi (or multiRead) body of `(op, body)` pairs.
fn multi_body(ops: &[(i32, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (op, body) in ops {
        b.extend_from_slice(&op.to_be_bytes());
        b.push(0);
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(body);
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(1);
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b
}

fn key(i: usize) -> String {
    format!("/v/k{i}")
}

/// Reads jute from a reply body; `None` past the end (a malformed reply).
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

#[derive(Debug, Clone, Copy)]
struct Stat {
    czxid: i64,
    mzxid: i64,
    version: i32,
    pzxid: i64,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Self {
        Cursor { b, i: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.i..self.i + n)?;
        self.i += n;
        Some(s)
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn bool(&mut self) -> Option<bool> {
        Some(self.take(1)?[0] != 0)
    }
    fn buffer(&mut self) -> Option<&'a [u8]> {
        let n = self.i32()?;
        if n < 0 {
            return Some(&[]);
        }
        self.take(n as usize)
    }
    fn stat(&mut self) -> Option<Stat> {
        let czxid = self.i64()?;
        let mzxid = self.i64()?;
        let _times = self.take(16)?;
        let version = self.i32()?;
        let _cversion_aversion_owner_len_children = self.take(4 + 4 + 8 + 4 + 4)?;
        let pzxid = self.i64()?;
        Some(Stat {
            czxid,
            mzxid,
            version,
            pzxid,
        })
    }
    fn strings(&mut self) -> Option<Vec<&'a str>> {
        let n = self.i32()?;
        (0..n.max(0))
            .map(|_| std::str::from_utf8(self.buffer()?).ok())
            .collect()
    }
}

/// The multi generation a key's value names ("0" before the first multi).
fn generation(data: &[u8]) -> Option<u64> {
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// What one reader session has read of a family of parents and children that txns
/// change together: one /pc<i> and its child, or every /pm<i> and its child.
#[derive(Default, Clone, Copy)]
struct Family {
    /// Newest child seen (its czxid): every parent of the family has pzxid >= it.
    child_czxid_max: i64,
    /// Newest parent pzxid seen.
    pzxid_max: i64,
    /// pzxid of the newest parent listing no child: every child created before is gone.
    delete_seen: i64,
}

/// What one reader session has read so far.
#[derive(Default)]
struct View {
    /// Newest multi seen, and where.
    gen_max: u64,
    gen_seen: String,
    /// PLAIN_PARENTS families, then the multi family.
    families: [Family; PLAIN_PARENTS + 1],
    header_max: i64,
}

#[derive(Clone, Copy)]
enum Read {
    Key(usize),
    AllKeys,
    /// exists(child) of a family.
    Child(usize),
    /// getChildren2(parent) of a family.
    Parent(usize),
    Ephemerals,
}

/// One round of a reader: everything pipelined in one write.
fn round() -> Vec<(Read, i32, Vec<u8>)> {
    let mut reqs = Vec::new();
    for _ in 0..PAIRS_PER_ROUND {
        reqs.push((Read::Key(0), GET_DATA, path_watch(&key(0))));
        reqs.push((Read::Key(KEYS - 1), GET_DATA, path_watch(&key(KEYS - 1))));
    }
    let all: Vec<(i32, Vec<u8>)> = (0..KEYS).map(|i| (GET_DATA, path_watch(&key(i)))).collect();
    reqs.push((Read::AllKeys, MULTI_READ, multi_body(&all)));
    // Child then parent catches a create half published; parent then child a delete.
    for i in 0..PLAIN_PARENTS {
        reqs.push((Read::Child(i), EXISTS, path_watch(&format!("/pc{i}/c"))));
        reqs.push((
            Read::Parent(i),
            GET_CHILDREN2,
            path_watch(&format!("/pc{i}")),
        ));
        reqs.push((Read::Child(i), EXISTS, path_watch(&format!("/pc{i}/c"))));
    }
    // A multi publishes /pm0's changes first and /pm<last>'s last.
    let (first, last) = (0, MULTI_PARENTS - 1);
    let m = PLAIN_PARENTS;
    for _ in 0..MULTI_FAMILY_PROBES_PER_ROUND {
        reqs.push((Read::Child(m), EXISTS, path_watch(&format!("/pm{first}/c"))));
        reqs.push((
            Read::Parent(m),
            GET_CHILDREN2,
            path_watch(&format!("/pm{last}")),
        ));
        reqs.push((
            Read::Parent(m),
            GET_CHILDREN2,
            path_watch(&format!("/pm{first}")),
        ));
        reqs.push((Read::Child(m), EXISTS, path_watch(&format!("/pm{last}/c"))));
    }
    for _ in 0..EPHEMERAL_PROBES_PER_ROUND {
        reqs.push((Read::Ephemerals, GET_CHILDREN2, path_watch("/e")));
    }
    reqs
}

/// Names for messages: family `f`'s parents and children.
fn family_parent(f: usize) -> String {
    if f < PLAIN_PARENTS {
        format!("/pc{f}")
    } else {
        "a /pm parent".into()
    }
}
fn family_child(f: usize) -> String {
    if f < PLAIN_PARENTS {
        format!("exists /pc{f}/c")
    } else {
        "exists of a /pm child".into()
    }
}

/// Checks one reply against the session's view; `None` if the reply is malformed.
fn check_reply(
    audit: &Audit,
    who: &str,
    view: &mut View,
    read: Read,
    (zxid, err, body): (i64, i32, &[u8]),
) -> Option<()> {
    audit.replies.fetch_add(1, Relaxed);
    audit.check(Check::HeaderBack, zxid >= view.header_max, || {
        format!("{who}: header zxid {zxid:#x} after {:#x}", view.header_max)
    });
    view.header_max = view.header_max.max(zxid);
    let header_covers = |audit: &Audit, what: &str, st: &Stat| {
        let newest = st.czxid.max(st.mzxid).max(st.pzxid);
        audit.check(Check::HeaderBehindData, zxid >= newest, || {
            format!(
                "{who}: {what}: header zxid {zxid:#x} < data zxid {newest:#x} (czxid {:#x} \
                 mzxid {:#x} pzxid {:#x}), {} txns behind",
                st.czxid,
                st.mzxid,
                st.pzxid,
                newest - zxid
            )
        });
    };
    let mut c = Cursor::new(body);
    match read {
        Read::Key(k) => {
            if err != 0 {
                audit.error(format!("{who}: getData {} answered {err}", key(k)));
                return None;
            }
            let g = generation(c.buffer()?)?;
            let st = c.stat()?;
            header_covers(audit, &key(k), &st);
            audit.check(Check::SessionBack, g >= view.gen_max, || {
                format!(
                    "{who}: getData {} shows multi {g} (mzxid {:#x}) after {} showed multi {}",
                    key(k),
                    st.mzxid,
                    view.gen_seen,
                    view.gen_max
                )
            });
            if g > view.gen_max {
                view.gen_max = g;
                view.gen_seen = key(k);
            }
        }
        Read::AllKeys => {
            if err != 0 {
                audit.error(format!("{who}: multiRead answered {err}"));
                return None;
            }
            let mut gens = Vec::with_capacity(KEYS);
            let mut mzxids = Vec::with_capacity(KEYS);
            let mut newest = Stat {
                czxid: 0,
                mzxid: 0,
                version: 0,
                pzxid: 0,
            };
            loop {
                let (t, done, e) = (c.i32()?, c.bool()?, c.i32()?);
                if done {
                    break;
                }
                if t != GET_DATA {
                    audit.error(format!("{who}: multiRead op {} failed: {e}", gens.len()));
                    return None;
                }
                gens.push(generation(c.buffer()?)?);
                let st = c.stat()?;
                newest.czxid = newest.czxid.max(st.czxid);
                newest.mzxid = newest.mzxid.max(st.mzxid);
                newest.pzxid = newest.pzxid.max(st.pzxid);
                mzxids.push(st.mzxid);
            }
            header_covers(audit, "multiRead", &newest);
            let (lo, hi) = (*gens.iter().min()?, *gens.iter().max()?);
            let whole = lo == hi && mzxids.iter().all(|&m| m == mzxids[0]);
            audit.check(Check::MultiReadSplit, whole, || {
                let first_new = gens.iter().position(|&g| g == hi).unwrap_or(0);
                let old = gens.iter().filter(|&&g| g < hi).count();
                format!(
                    "{who}: one multiRead shows multis {lo}..={hi}: {old} of {KEYS} keys \
                     older (k{first_new} is the first at {hi})"
                )
            });
            audit.check(Check::SessionBack, lo >= view.gen_max, || {
                format!(
                    "{who}: multiRead shows multi {lo} after {} showed multi {}",
                    view.gen_seen, view.gen_max
                )
            });
            if hi > view.gen_max {
                view.gen_max = hi;
                view.gen_seen = "multiRead".into();
            }
        }
        Read::Child(f) => {
            let view = &mut view.families[f];
            if err != 0 && err != NO_NODE {
                audit.error(format!(
                    "{who}: exists of family {f}'s child answered {err}"
                ));
                return None;
            }
            let st = if err == 0 { Some(c.stat()?) } else { None };
            if let Some(st) = &st {
                header_covers(audit, "exists child", st);
            }
            // Counted only once the session saw a parent list no child after the newest child
            // it saw: then the child it finds must be a newer one.
            if view.delete_seen > view.child_czxid_max {
                let found = st.map_or(0, |st| st.czxid);
                audit.check(
                    Check::DeletedChildFound,
                    st.is_none() || found >= view.delete_seen,
                    || {
                        format!(
                            "{who}: {} finds the child created at {found:#x} after its \
                             family's parent listed no child at pzxid {:#x}",
                            family_child(f),
                            view.delete_seen
                        )
                    },
                );
            }
            if let Some(st) = st {
                view.child_czxid_max = view.child_czxid_max.max(st.czxid);
            }
        }
        Read::Parent(f) => {
            let view = &mut view.families[f];
            if err != 0 {
                audit.error(format!(
                    "{who}: getChildren2 of family {f}'s parent answered {err}"
                ));
                return None;
            }
            let kids = c.strings()?;
            let st = c.stat()?;
            header_covers(audit, "getChildren2 parent", &st);
            // Counted only once the session saw a child newer than every parent it read.
            if view.child_czxid_max > view.pzxid_max {
                audit.check(
                    Check::ParentBehindChild,
                    st.pzxid >= view.child_czxid_max,
                    || {
                        format!(
                            "{who}: {} has pzxid {:#x} after a child of its family showed \
                             czxid {:#x}",
                            family_parent(f),
                            st.pzxid,
                            view.child_czxid_max
                        )
                    },
                );
            }
            audit.check(Check::PzxidBack, st.pzxid >= view.pzxid_max, || {
                format!(
                    "{who}: {} pzxid {:#x} after {:#x}",
                    family_parent(f),
                    st.pzxid,
                    view.pzxid_max
                )
            });
            view.pzxid_max = view.pzxid_max.max(st.pzxid);
            if kids.is_empty() {
                view.delete_seen = view.delete_seen.max(st.pzxid);
            }
        }
        Read::Ephemerals => {
            if err != 0 {
                audit.error(format!("{who}: getChildren2 /e answered {err}"));
                return None;
            }
            let kids = c.strings()?;
            let st = c.stat()?;
            header_covers(audit, "getChildren2 /e", &st);
            let done = st.version as u64;
            let mut counts: std::collections::BTreeMap<u64, usize> = Default::default();
            for k in &kids {
                let g: u64 = k.strip_prefix('g')?.split('-').next()?.parse().ok()?;
                *counts.entry(g).or_default() += 1;
            }
            let partial: Vec<(u64, usize)> = counts
                .iter()
                .filter(|&(&g, &n)| g < done && n != EPHEMERALS)
                .map(|(&g, &n)| (g, n))
                .collect();
            audit.check(Check::ClosePartial, partial.is_empty(), || {
                format!(
                    "{who}: /e (version {done}, pzxid {:#x}) lists {:?} (session, ephemerals \
                     listed) of sessions that held {EPHEMERALS}",
                    st.pzxid, partial
                )
            });
        }
    }
    Some(())
}

/// A reader session at `addr`: rounds of pipelined reads until `stop`, every reply checked.
fn reader(addr: String, who: String, audit: Arc<Audit>, stop: Arc<AtomicBool>) {
    let mut r = match session_at(&addr, Duration::from_secs(10)) {
        Ok(r) => r,
        Err(e) => return audit.error(format!("{who}: {e}")),
    };
    // Catch up with the setup before the first read (a follower may be behind).
    r.send(1, SYNC, &jute_string("/"));
    if r.reply().map(|(_, _, err, _)| err) != Some(0) {
        return audit.error(format!("{who}: sync failed"));
    }
    let plan = round();
    let mut view = View::default();
    let mut xid = 2;
    while !stop.load(Relaxed) {
        let reqs: Vec<(i32, i32, &[u8])> = plan
            .iter()
            .enumerate()
            .map(|(i, (_, op, body))| (xid + i as i32, *op, &body[..]))
            .collect();
        r.send_all(&reqs);
        for (i, (read, _, _)) in plan.iter().enumerate() {
            let Some((got, zxid, err, body)) = r.reply() else {
                return audit.error(format!("{who}: connection lost"));
            };
            if got != xid + i as i32 {
                return audit.error(format!("{who}: reply xid {got}, not {}", xid + i as i32));
            }
            if check_reply(&audit, &who, &mut view, *read, (zxid, err, &body)).is_none() {
                return audit.error(format!("{who}: malformed reply to xid {got}"));
            }
        }
        xid += plan.len() as i32;
    }
}

/// Answers `n` replies on `r`, each of which must be OK.
fn expect_ok(r: &mut Raw, n: usize, what: &str) -> Result<(), String> {
    for _ in 0..n {
        match r.reply() {
            Some((_, _, 0, body)) if !body.starts_with(&(-1i32).to_be_bytes()) => {}
            Some((xid, _, err, body)) => {
                return Err(format!(
                    "{what}: xid {xid} answered {err} ({:?})",
                    &body[..body.len().min(16)]
                ))
            }
            None => return Err(format!("{what}: connection lost")),
        }
    }
    Ok(())
}

/// Multis setting every key to the next generation, MULTIS_IN_FLIGHT at a time.
fn multi_writer(addr: String, audit: Arc<Audit>, stop: Arc<AtomicBool>) -> Result<(), String> {
    let mut r = session_at(&addr, Duration::from_secs(10))?;
    let multi = |g: u64| {
        let v = g.to_string();
        let ops: Vec<(i32, Vec<u8>)> = (0..KEYS)
            .map(|i| (SET_DATA, set_body(&key(i), v.as_bytes())))
            .collect();
        multi_body(&ops)
    };
    let mut g = 1u64;
    for _ in 0..MULTIS_IN_FLIGHT {
        r.send(g as i32, MULTI, &multi(g));
        g += 1;
    }
    while !stop.load(Relaxed) {
        expect_ok(&mut r, 1, "multi")?;
        audit.multis.fetch_add(1, Relaxed);
        r.send(g as i32, MULTI, &multi(g));
        g += 1;
    }
    expect_ok(&mut r, MULTIS_IN_FLIGHT, "multi")
}

/// Rounds of: create /pc<i>/c (one create each) and every /pm<i>/c (one multi), pipelined;
/// then delete them the same way. Children are there about half the time.
fn child_writer(addr: String, audit: Arc<Audit>, stop: Arc<AtomicBool>) -> Result<(), String> {
    let mut r = session_at(&addr, Duration::from_secs(10))?;
    let plain = |op: i32, i: usize| {
        let path = format!("/pc{i}/c");
        match op {
            CREATE => (CREATE, create_body(&path, b"c", 0)),
            _ => (DELETE, delete_body(&path)),
        }
    };
    let multi = |op: i32| {
        let ops: Vec<(i32, Vec<u8>)> = (0..MULTI_PARENTS)
            .map(|i| {
                let path = format!("/pm{i}/c");
                match op {
                    CREATE => (CREATE, create_body(&path, b"c", 0)),
                    _ => (DELETE, delete_body(&path)),
                }
            })
            .collect();
        (MULTI, multi_body(&ops))
    };
    let rounds: Vec<Vec<(i32, Vec<u8>)>> = [CREATE, DELETE]
        .into_iter()
        .map(|op| {
            let mut reqs: Vec<(i32, Vec<u8>)> = (0..PLAIN_PARENTS).map(|i| plain(op, i)).collect();
            reqs.push(multi(op));
            reqs
        })
        .collect();
    let mut xid = 1;
    while !stop.load(Relaxed) {
        for reqs in &rounds {
            let batch: Vec<(i32, i32, &[u8])> = reqs
                .iter()
                .enumerate()
                .map(|(i, (op, body))| (xid + i as i32, *op, &body[..]))
                .collect();
            r.send_all(&batch);
            expect_ok(&mut r, batch.len(), "create/delete of children")?;
            xid += batch.len() as i32;
        }
        audit.child_pairs.fetch_add(1, Relaxed);
    }
    Ok(())
}

/// Sessions, one after another (at `addrs` in turn), each creating EPHEMERALS ephemerals
/// /e/g<n>-<i>, then counting itself done in /e's version, then closing; all pipelined.
fn closer(addrs: Vec<String>, audit: Arc<Audit>, stop: Arc<AtomicBool>) -> Result<(), String> {
    let mut gen = 0u64;
    while !stop.load(Relaxed) {
        let mut r = session_at(&addrs[gen as usize % addrs.len()], Duration::from_secs(10))?;
        let bodies: Vec<Vec<u8>> = (0..EPHEMERALS)
            .map(|i| create_body(&format!("/e/g{gen}-{i}"), b"", 1))
            .collect();
        let mark = set_body("/e", gen.to_string().as_bytes());
        let mut reqs: Vec<(i32, i32, &[u8])> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (i as i32 + 1, CREATE, &b[..]))
            .collect();
        reqs.push((EPHEMERALS as i32 + 1, SET_DATA, &mark));
        reqs.push((EPHEMERALS as i32 + 2, CLOSE_SESSION, &[]));
        r.send_all(&reqs);
        expect_ok(&mut r, reqs.len(), "ephemerals, mark, closeSession")?;
        audit.closes.fetch_add(1, Relaxed);
        gen += 1;
    }
    Ok(())
}

/// Creates /v/k* (value "0"), the parents /pc<i> and /pm<i>, and /e through `addr`.
fn setup(addr: &str) {
    let mut r = session_at(addr, Duration::from_secs(10)).unwrap();
    let mut ops: Vec<(i32, Vec<u8>)> = vec![(CREATE, create_body("/v", b"", 0))];
    ops.extend((0..KEYS).map(|i| (CREATE, create_body(&key(i), b"0", 0))));
    ops.extend((0..PLAIN_PARENTS).map(|i| (CREATE, create_body(&format!("/pc{i}"), b"", 0))));
    ops.extend((0..MULTI_PARENTS).map(|i| (CREATE, create_body(&format!("/pm{i}"), b"", 0))));
    ops.push((CREATE, create_body("/e", b"", 0)));
    r.send(1, MULTI, &multi_body(&ops));
    expect_ok(&mut r, 1, "setup").unwrap();
}

/// Runs the writers (at `multi_at`, `child_at`, `close_at` in turn) and `readers_per`
/// readers at each of `read_at` for RUN, then judges.
fn run(
    what: &str,
    multi_at: &str,
    child_at: &str,
    close_at: &[String],
    read_at: &[String],
    readers_per: usize,
) {
    setup(multi_at);
    let audit = Arc::new(Audit::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut writers = Vec::new();
    let (a, s, addr) = (audit.clone(), stop.clone(), multi_at.to_owned());
    writers.push(std::thread::spawn(move || multi_writer(addr, a, s)));
    let (a, s, addr) = (audit.clone(), stop.clone(), child_at.to_owned());
    writers.push(std::thread::spawn(move || child_writer(addr, a, s)));
    let (a, s, addrs) = (audit.clone(), stop.clone(), close_at.to_vec());
    writers.push(std::thread::spawn(move || closer(addrs, a, s)));
    let mut readers = Vec::new();
    for addr in read_at {
        for i in 0..readers_per {
            let (a, s, addr) = (audit.clone(), stop.clone(), addr.clone());
            let who = format!("reader {i} at {addr}");
            readers.push(std::thread::spawn(move || reader(addr, who, a, s)));
        }
    }
    while started.elapsed() < RUN && audit.errors.lock().unwrap().is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Relaxed);
    for w in writers {
        if let Err(e) = w.join().expect("writer thread") {
            audit.error(e);
        }
    }
    for r in readers {
        r.join().expect("reader thread");
    }
    audit.verdict(what, started.elapsed());
}

/// One server: readers on three sessions.
#[test]
fn standalone_readers_see_whole_txns() {
    let s = Server::start("");
    let addr = s.addr();
    let all = [addr.clone()];
    run("standalone", &addr, &addr, &all, &all, 3);
}

/// Three members: multis through the leader, create/delete through a follower, sessions
/// closed at each member in turn, two readers at every member.
#[test]
fn ensemble_readers_see_whole_txns() {
    let e = Ensemble::start(3, 0, 28100, "");
    let leader = e.settled(Duration::from_secs(20));
    let follower = if leader == 1 { 2 } else { 1 };
    let all: Vec<String> = e.members.iter().map(|m| m.client.clone()).collect();
    run(
        "ensemble",
        &e.member(leader).client,
        &e.member(follower).client,
        &all,
        &all,
        2,
    );
}
