//! `loadgen run`: one workload (a read/write mix, create/delete churn, sequential creates,
//! getChildren of a wide node, multi, session churn or watch fan-out) from a fixed number
//! of sessions, closed loop (each session keeps `--inflight` requests outstanding) or open
//! loop at a fixed `--rate`, measured after a warm-up.
//!
//! Sessions are split over `--threads` worker threads, each with its own mio loop; the
//! calling thread coordinates the phases, samples CPU at the edges of the measured interval
//! and prints the progress line.

use crate::hist::Histogram;
use crate::rng::XorShift64;
use crate::session::{err_name, Ev, Kind, Pool, Session, State};
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the sessions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// getData / setData (version -1) on random keys, `--read-pct` reads.
    Rw,
    /// create a new node, then delete it: two ops per node.
    Churn,
    /// create ephemeral sequential nodes under one parent (they go with the session).
    Seq,
    /// getChildren of a node with `--children` children.
    Children,
    /// multi of `--multi-ops` setData ops on random keys.
    Multi,
    /// per session slot: connect, create an ephemeral node, close; again.
    Sessions,
    /// one session writes a node that every other session watches; the time from the
    /// write to the last notification.
    Watch,
}

impl Workload {
    pub const ALL: [Workload; 7] = [
        Workload::Rw,
        Workload::Churn,
        Workload::Seq,
        Workload::Children,
        Workload::Multi,
        Workload::Sessions,
        Workload::Watch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Rw => "rw",
            Workload::Churn => "churn",
            Workload::Seq => "seq",
            Workload::Children => "children",
            Workload::Multi => "multi",
            Workload::Sessions => "sessions",
            Workload::Watch => "watch",
        }
    }

    pub fn parse(s: &str) -> Result<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                // Under clap's "invalid value 'x' for '--workload <W>': ".
                anyhow!("one of {}", names.join(", "))
            })
    }

    /// The operations that count as the workload's throughput; others are reported
    /// beside them (a session cycle's connect, a fan-out's single notifications).
    fn counted(self) -> &'static [&'static str] {
        match self {
            Workload::Rw => &["getData", "setData"],
            Workload::Churn => &["create", "delete"],
            Workload::Seq => &["create"],
            Workload::Children => &["getChildren"],
            Workload::Multi => &["multi"],
            Workload::Sessions => &["cycle"],
            Workload::Watch => &["fanout"],
        }
    }

    /// Whether `--rate` applies: requests a session can send at any time.
    pub fn open_loop(self) -> bool {
        !matches!(self, Workload::Sessions | Workload::Watch)
    }
}

/// When to print the progress line (standard error, once a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// When standard error is a terminal (one line, rewritten).
    Auto,
    /// Always (a new line each second).
    On,
    Off,
}

#[derive(Debug, Clone)]
pub struct RunOpts {
    pub server: crate::session::Servers,
    pub workload: Workload,
    pub sessions: usize,
    pub inflight: usize,
    pub read_pct: u32,
    pub value_bytes: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub keys: u32,
    /// Children of the wide node (`children`).
    pub children: u32,
    /// setData ops per multi (`multi`).
    pub multi_ops: u32,
    /// Open loop: requests per second over all sessions, latency counted from when each
    /// request was due (coordinated-omission correction). None: closed loop.
    pub rate: Option<f64>,
    pub threads: usize,
    /// CPUs to pin worker thread i to: pin[i % len]. Empty: no pinning.
    pub pin: Vec<usize>,
    pub progress: Progress,
    pub seed: u64,
    /// The server's processes (an ensemble's members): CPU and context switches are
    /// summed over them.
    pub server_pid: Vec<u32>,
    pub csv: Option<String>,
    /// Write the result as one JSON object to this file (`-`: standard output).
    pub json: Option<String>,
    /// Write a self-contained HTML report of this run to this file.
    pub report: Option<String>,
    pub session_timeout_ms: i32,
    pub prefix: String,
}

impl RunOpts {
    /// The canonical workload (what `loadgen` with no flags runs).
    pub fn canonical() -> RunOpts {
        RunOpts {
            server: crate::session::Servers(vec![std::net::SocketAddr::from((
                [127, 0, 0, 1],
                2181,
            ))]),
            workload: Workload::Rw,
            sessions: 32,
            inflight: 16,
            read_pct: 90,
            value_bytes: 100,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            keys: 1000,
            children: 1000,
            multi_ops: 4,
            rate: None,
            threads: 1,
            pin: Vec::new(),
            progress: Progress::Auto,
            seed: 1,
            server_pid: Vec::new(),
            csv: None,
            json: None,
            report: None,
            session_timeout_ms: 30_000,
            prefix: "/loadgen".into(),
        }
    }

    /// The workload in a few words, for report headers.
    pub fn describe(&self) -> String {
        let mut s = match self.workload {
            Workload::Rw => format!("{}% reads", self.read_pct),
            Workload::Churn => "create+delete churn".into(),
            Workload::Seq => "ephemeral sequential creates".into(),
            Workload::Children => format!("getChildren of {} children", self.children),
            Workload::Multi => format!("multi of {} setData", self.multi_ops),
            Workload::Sessions => "session churn (connect, create ephemeral, close)".into(),
            Workload::Watch => format!("watch fan-out to {} watchers", self.sessions - 1),
        };
        if let Some(r) = self.rate {
            s += &format!(" at {r:.0}/s open loop");
        }
        s
    }

    /// The parent of the churn, sequential, ephemeral and wide nodes.
    fn parents(&self) -> Vec<String> {
        let p = &self.prefix;
        let mut v = vec![p.clone()];
        match self.workload {
            Workload::Churn => v.push(format!("{p}/churn")),
            Workload::Seq => v.push(format!("{p}/seq")),
            Workload::Sessions => v.push(format!("{p}/eph")),
            Workload::Children => v.push(self.wide()),
            Workload::Rw | Workload::Multi | Workload::Watch => {}
        }
        v
    }

    /// The wide node: named by its width, so that runs with other widths do not meet.
    fn wide(&self) -> String {
        format!("{}/wide{}", self.prefix, self.children)
    }

    /// Nodes created (or reset to this run's value size) before the warm-up.
    fn setup_nodes(&self) -> Vec<String> {
        let p = &self.prefix;
        match self.workload {
            Workload::Rw | Workload::Multi => (0..self.keys).map(|i| format!("{p}/k{i}")).collect(),
            Workload::Children => {
                let w = self.wide();
                (0..self.children).map(|i| format!("{w}/c{i}")).collect()
            }
            Workload::Watch => vec![format!("{p}/watched")],
            Workload::Churn | Workload::Seq | Workload::Sessions => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Warmup,
    Measure,
    Drain,
}

/// One operation kind's count and latencies over the measured interval.
#[derive(Clone, Default)]
pub struct OpStat {
    pub count: u64,
    pub hist: Histogram,
}

/// One second of the measured interval: counted ops completed and their latencies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Second {
    pub ops: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// The open-loop schedule of one worker: request i is due at start + i / rate.
struct Schedule {
    start: Instant,
    per_sec: f64,
    sent: u64,
}

impl Schedule {
    /// How many requests are due by `now`: those with at(i) <= now.
    fn due(&self, now: Instant) -> u64 {
        if now < self.start {
            return 0;
        }
        (now.duration_since(self.start).as_secs_f64() * self.per_sec) as u64 + 1
    }
    fn at(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.per_sec)
    }
}

/// One worker thread's workload state, fed every event by its event loop.
struct Work {
    workload: Workload,
    phase: Phase,
    inflight: usize,
    read_pct: u32,
    multi_ops: u32,
    children: usize,
    prefix: String,
    wide: String,
    keys: Vec<String>,
    value: Vec<u8>,
    rng: XorShift64,
    counted: &'static [&'static str],
    schedule: Option<Schedule>,
    /// Open loop: the session the next round of hand-outs starts at.
    rr: usize,
    /// Churn nodes created by this worker so far (their names' counter).
    churn_next: u64,
    // Setup (worker 0 only): parents one at a time, then the nodes.
    parent_done: bool,
    /// Every parent exists: the nodes under them may be created.
    parents_done: bool,
    setup_nodes: Vec<String>,
    setup_next: usize,
    setup_done: usize,
    fatal: Option<String>,
    // Session churn: when each slot's cycle started (None: its first, unmeasured).
    cycle_start: Vec<Option<Instant>>,
    dead_since: Vec<Option<Instant>>,
    // Watch fan-out: which watchers have their watch set, how many; the write in
    // progress (when it was sent, notifications still to come).
    watching: Vec<bool>,
    armed: usize,
    round: Option<(Instant, usize)>,
    // Measured interval only:
    t0: Instant,
    stats: BTreeMap<&'static str, OpStat>,
    errors: BTreeMap<i32, u64>,
    bad_replies: u64,
    unexpected_events: u64,
    seconds: Vec<Second>,
    cur_sec: (u64, Histogram),
    // Outside the measured interval:
    other_errors: u64,
    // For the progress line: counted ops completed and errors, warm-up included.
    progress: Arc<AtomicU64>,
    error_total: Arc<AtomicU64>,
}

impl Work {
    fn record(&mut self, name: &'static str, sent: Instant, now: Instant) {
        if self.phase != Phase::Measure {
            return;
        }
        let ns = now.saturating_duration_since(sent).as_nanos() as u64;
        let st = self.stats.entry(name).or_default();
        st.count += 1;
        st.hist.record(ns);
        if self.counted.contains(&name) {
            let sec = now.saturating_duration_since(self.t0).as_secs();
            if sec != self.cur_sec.0 {
                self.close_second();
                self.cur_sec.0 = sec;
            }
            self.cur_sec.1.record(ns);
        }
    }

    /// Ends the current second of the series.
    fn close_second(&mut self) {
        let (sec, h) = &mut self.cur_sec;
        if h.count() > 0 {
            let i = *sec as usize;
            if self.seconds.len() <= i {
                self.seconds.resize(i + 1, Second::default());
            }
            self.seconds[i] = Second {
                ops: h.count(),
                p50_us: us(h.quantile(0.5)),
                p99_us: us(h.quantile(0.99)),
                max_us: us(h.max()),
            };
            h.reset();
        }
    }

    fn error(&mut self, err: i32) {
        self.error_total.fetch_add(1, Ordering::Relaxed);
        if self.phase == Phase::Measure {
            *self.errors.entry(err).or_default() += 1;
        } else {
            self.other_errors += 1;
        }
    }

    /// The next request of an open or closed loop on `s`: `sent` is when it was due.
    fn issue(&mut self, s: &mut Session, sent: Instant) {
        let key = |w: &mut Work| w.rng.below(w.keys.len() as u64) as usize;
        match self.workload {
            Workload::Rw => {
                let k = key(self);
                if self.rng.percent(self.read_pct) {
                    s.get_data(Kind::Get, &self.keys[k], false, sent);
                } else {
                    s.set_data(Kind::Set, &self.keys[k], &self.value, sent);
                }
            }
            Workload::Churn => {
                let n = self.churn_next;
                self.churn_next += 1;
                let path = churn_path(&self.prefix, s.id, n);
                s.create(Kind::ChurnCreate(n), &path, Some(&self.value), 0, sent);
            }
            Workload::Seq => {
                let path = format!("{}/seq/s-", self.prefix);
                s.create(Kind::SeqCreate, &path, Some(&self.value), 3, sent);
            }
            Workload::Children => s.get_children(Kind::Children, &self.wide, sent),
            Workload::Multi => {
                let picks: Vec<usize> = (0..self.multi_ops).map(|_| key(self)).collect();
                let keys = &self.keys;
                s.multi_set(
                    Kind::Multi,
                    picks.iter().map(|&k| keys[k].as_str()),
                    &self.value,
                    sent,
                );
            }
            Workload::Sessions | Workload::Watch => unreachable!("not a request loop"),
        }
    }

    /// Tops `s` up: the setup's creates, or the workload's requests.
    fn fill(&mut self, s: &mut Session, idx: usize, now: Instant) {
        if s.state != State::Ready {
            return;
        }
        match self.phase {
            Phase::Setup if self.parents_done => {
                while s.pending.len() < self.inflight && self.setup_next < self.setup_nodes.len() {
                    let k = self.setup_next;
                    self.setup_next += 1;
                    s.create(
                        Kind::Create(k as u32),
                        &self.setup_nodes[k],
                        Some(&self.value),
                        0,
                        now,
                    );
                }
            }
            Phase::Warmup | Phase::Measure => match self.workload {
                Workload::Sessions => {
                    if s.pending.is_empty() {
                        let path = format!("{}/eph/{:x}", self.prefix, s.id);
                        s.create(Kind::EphCreate, &path, Some(&self.value), 1, now);
                    }
                }
                Workload::Watch => {
                    // Session 0 writes (see `after_poll`); the others watch.
                    if idx > 0 && !self.watching[idx] && s.pending.is_empty() {
                        s.get_data(Kind::WatchGet, &self.keys[0], true, now);
                    }
                }
                _ => {
                    if let Some(mut sch) = self.schedule.take() {
                        let due = sch.due(now);
                        while s.pending.len() < self.inflight && sch.sent < due {
                            let at = sch.at(sch.sent);
                            sch.sent += 1;
                            self.issue(s, at);
                        }
                        self.schedule = Some(sch);
                    } else {
                        while s.pending.len() < self.inflight {
                            self.issue(s, now);
                        }
                    }
                }
            },
            Phase::Setup | Phase::Drain => {}
        }
    }

    fn on_event(&mut self, s: &mut Session, idx: usize, ev: Ev, now: Instant) {
        let (kind, sent, err, size) = match ev {
            Ev::Connected => {
                if self.workload == Workload::Sessions && self.phase != Phase::Setup {
                    let started = s.started;
                    self.record("connect", started, now);
                    self.cycle_start[idx] = Some(started);
                    self.fill(s, idx, now);
                }
                return;
            }
            Ev::Notification { etype } => {
                self.on_notification(s, idx, etype, now);
                return;
            }
            Ev::Reply {
                kind,
                sent,
                err,
                size,
            } => (kind, sent, err, size),
        };
        match kind {
            Kind::CreateParent => {
                if err == 0 || err == -110 {
                    self.parent_done = true;
                } else {
                    self.fatal = Some(format!("cannot create a parent node: {}", err_name(err)));
                }
            }
            Kind::Create(k) => match err {
                0 => self.setup_done += 1,
                // Left by an earlier run: give it this run's value size.
                -110 => s.set_data(
                    Kind::Reset(k),
                    &self.setup_nodes[k as usize],
                    &self.value,
                    now,
                ),
                _ => {
                    self.fatal = Some(format!(
                        "setup: create {} failed: {}",
                        self.setup_nodes[k as usize],
                        err_name(err)
                    ))
                }
            },
            Kind::Reset(k) => {
                if err == 0 {
                    self.setup_done += 1;
                } else {
                    self.fatal = Some(format!(
                        "setup: setData {} failed: {}",
                        self.setup_nodes[k as usize],
                        err_name(err)
                    ));
                }
            }
            Kind::Close => {
                if self.workload == Workload::Sessions && self.phase != Phase::Drain {
                    self.record("close", sent, now);
                    if let Some(c) = self.cycle_start[idx].take() {
                        self.record("cycle", c, now);
                        self.progress.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Kind::WatchGet => {
                if err == 0 {
                    self.watching[idx] = true;
                    self.armed += 1;
                } else {
                    self.error(err);
                }
            }
            _ => {
                let name = match kind {
                    Kind::Get => "getData",
                    Kind::Set | Kind::WatchSet => "setData",
                    Kind::ChurnCreate(_) | Kind::SeqCreate => "create",
                    Kind::ChurnDelete(_) => "delete",
                    Kind::Children => "getChildren",
                    Kind::Multi => "multi",
                    Kind::EphCreate => "create",
                    _ => unreachable!(),
                };
                if err != 0 {
                    self.error(err);
                } else {
                    self.record(name, sent, now);
                    if self.counted.contains(&name) {
                        self.progress.fetch_add(1, Ordering::Relaxed);
                    }
                    let want = match kind {
                        Kind::Get => Some(self.value.len()),
                        Kind::Children => Some(self.children),
                        _ => None,
                    };
                    if want.is_some() && size != want && self.phase == Phase::Measure {
                        self.bad_replies += 1;
                    }
                }
                match kind {
                    // The node exists: delete it now, whatever the phase, so that
                    // nothing is left behind.
                    Kind::ChurnCreate(n) if err == 0 => {
                        let path = churn_path(&self.prefix, s.id, n);
                        s.delete(Kind::ChurnDelete(n), &path, now);
                    }
                    Kind::EphCreate => s.close_session(now),
                    _ => {}
                }
            }
        }
        self.fill(s, idx, now);
    }

    fn on_notification(&mut self, s: &mut Session, idx: usize, etype: i32, now: Instant) {
        use paddock::proto::ops::event;
        if self.workload != Workload::Watch || idx == 0 || etype != event::NODE_DATA_CHANGED {
            self.unexpected_events += 1;
            return;
        }
        if self.watching[idx] {
            self.watching[idx] = false;
            self.armed -= 1;
        }
        if let Some((start, left)) = self.round {
            self.record("notify", start, now);
            if left == 1 {
                self.round = None;
                self.record("fanout", start, now);
                self.progress.fetch_add(1, Ordering::Relaxed);
            } else {
                self.round = Some((start, left - 1));
            }
        } else {
            self.unexpected_events += 1;
        }
        // Watch again for the next write.
        self.fill(s, idx, now);
    }

    /// Work that needs the whole pool: session churn reopens closed slots; watch fan-out
    /// writes once every watcher is armed; the open loop hands due requests to sessions.
    fn after_poll(&mut self, pool: &mut Pool) {
        if !matches!(self.phase, Phase::Warmup | Phase::Measure) {
            return;
        }
        let now = Instant::now();
        match self.workload {
            Workload::Sessions => {
                for idx in 0..pool.sessions.len() {
                    match pool.sessions[idx].state {
                        State::Closed => {
                            self.dead_since[idx] = None;
                            pool.reopen(idx, now);
                        }
                        State::Dead => {
                            // A failed connect: retry after a pause, not in a spin.
                            let since = *self.dead_since[idx].get_or_insert(now);
                            if now.duration_since(since) >= Duration::from_millis(100) {
                                self.dead_since[idx] = None;
                                self.cycle_start[idx] = None;
                                pool.reopen(idx, now);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Workload::Watch => {
                let watchers = pool.sessions.len() - 1;
                let w = &mut pool.sessions[0];
                if self.round.is_none()
                    && self.armed == watchers
                    && w.state == State::Ready
                    && w.pending.is_empty()
                {
                    w.set_data(Kind::WatchSet, &self.keys[0], &self.value, now);
                    self.round = Some((now, watchers));
                    pool.flush(0);
                }
            }
            _ => self.hand_out(pool, now),
        }
    }

    /// Open loop: hands the requests due by now to sessions with room, one per session
    /// in turn, so that a low rate does not load one connection only.
    fn hand_out(&mut self, pool: &mut Pool, now: Instant) {
        let Some(mut sch) = self.schedule.take() else {
            return;
        };
        let due = sch.due(now);
        let n = pool.sessions.len();
        let mut touched = Vec::new();
        let mut more = true;
        while sch.sent < due && more {
            more = false;
            for k in 0..n {
                if sch.sent >= due {
                    break;
                }
                let idx = (self.rr + k) % n;
                let s = &mut pool.sessions[idx];
                if s.state == State::Ready && s.pending.len() < self.inflight {
                    let at = sch.at(sch.sent);
                    sch.sent += 1;
                    self.issue(s, at);
                    touched.push(idx);
                    more = true;
                }
            }
            self.rr = (self.rr + 1) % n.max(1);
        }
        self.schedule = Some(sch);
        touched.sort_unstable();
        touched.dedup();
        for idx in touched {
            pool.flush(idx);
        }
    }

    /// How long the event loop may wait: until the next open-loop request is due.
    fn wait(&self, tick: Duration) -> Duration {
        match &self.schedule {
            Some(sch) if matches!(self.phase, Phase::Warmup | Phase::Measure) => {
                let next = sch.at(sch.sent);
                next.saturating_duration_since(Instant::now()).min(tick)
            }
            _ => tick,
        }
    }
}

fn churn_path(prefix: &str, session: i64, n: u64) -> String {
    format!("{prefix}/churn/{session:x}-{n}")
}

/// What one run measured.
pub struct RunResult {
    pub measured: Duration,
    /// Per operation kind; the workload's counted kinds make its throughput.
    pub stats: BTreeMap<&'static str, OpStat>,
    /// Latencies of the counted kinds together.
    pub hist: Histogram,
    pub counted: &'static [&'static str],
    pub errors: BTreeMap<i32, u64>,
    /// getData values of the wrong size, getChildren lists of the wrong length.
    pub bad_replies: u64,
    /// Notifications nobody asked for, or of the wrong type.
    pub unexpected_events: u64,
    pub lost_sessions: usize,
    pub lost_requests: u64,
    pub session_errors: Vec<String>,
    /// Open loop: requests due in the measured interval but never sent (every session
    /// had `--inflight` outstanding): the server could not keep up with the rate.
    pub behind: Option<u64>,
    /// Throughput and latency for each second of the measured interval.
    pub seconds: Vec<Second>,
    pub client_cpu: Duration,
    pub server_cpu: Option<Duration>,
    /// Context switches over the interval, all threads.
    pub client_switches: Option<u64>,
    pub server_switches: Option<u64>,
    /// Whole machine over the interval: (busy, steal).
    pub machine_cpu: Option<(Duration, Duration)>,
    pub unclosed: usize,
}

impl RunResult {
    /// Counted operations completed (successfully) in the measured interval.
    pub fn ops(&self) -> u64 {
        self.counted.iter().map(|n| self.count(n)).sum()
    }
    pub fn count(&self, name: &str) -> u64 {
        self.stats.get(name).map_or(0, |s| s.count)
    }
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>()
            + self.bad_replies
            + self.unexpected_events
            + self.lost_requests
    }
    pub fn per_sec(&self, n: u64) -> f64 {
        n as f64 / self.measured.as_secs_f64().max(1e-9)
    }
    /// Cores used by processes other than this client and the server (when its pid is
    /// known) during the interval: a sign the numbers were disturbed.
    pub fn other_cores(&self) -> Option<f64> {
        let (busy, _) = self.machine_cpu?;
        let ours = self.client_cpu + self.server_cpu.unwrap_or_default();
        let other = busy.as_secs_f64() - ours.as_secs_f64();
        Some((other / self.measured.as_secs_f64()).max(0.0))
    }
    pub fn per_op(&self, n: Option<u64>) -> Option<f64> {
        let n = n?;
        (self.ops() > 0).then(|| n as f64 / self.ops() as f64)
    }
    pub fn cpu_per_op_us(&self, cpu: Duration) -> f64 {
        if self.ops() == 0 {
            f64::NAN
        } else {
            cpu.as_secs_f64() * 1e6 / self.ops() as f64
        }
    }
    fn p99_of(&self, name: &str) -> f64 {
        self.stats
            .get(name)
            .map_or(0.0, |s| us(s.hist.quantile(0.99)))
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// The phases' times, set once the setup is done: warm-up start, measure start, end.
type Times = (Instant, Instant, Instant);

/// What the coordinator and the workers share.
struct Shared {
    connected: AtomicUsize,
    times: OnceLock<Times>,
    abort: AtomicBool,
    fatal: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, e: String) {
        self.fatal.lock().unwrap().get_or_insert(e);
        self.abort.store(true, Ordering::SeqCst);
    }
}

/// One worker's share of the result.
struct Part {
    stats: BTreeMap<&'static str, OpStat>,
    errors: BTreeMap<i32, u64>,
    bad_replies: u64,
    unexpected_events: u64,
    other_errors: u64,
    seconds: Vec<Second>,
    lost_sessions: usize,
    lost_requests: u64,
    session_errors: Vec<String>,
    behind: Option<u64>,
    ended_early: bool,
    unclosed: usize,
}

/// Worker `t` of `o.threads`: sessions t, t + threads, ... (so `--servers` spreads them
/// as if one thread opened them all).
fn worker(
    o: &RunOpts,
    t: usize,
    sh: &Shared,
    progress: Arc<AtomicU64>,
    errs: Arc<AtomicU64>,
) -> Result<Part> {
    if !o.pin.is_empty() {
        sys::pin_thread(o.pin[t % o.pin.len()])?;
    }
    let n = (o.sessions + o.threads - 1 - t) / o.threads;
    let mut pool = Pool::new(&o.server, o.session_timeout_ms, 64 << 10)?.spread(t, o.threads);
    let value = {
        let mut r = XorShift64::new(o.seed ^ 0x5eed);
        (0..o.value_bytes)
            .map(|_| b'a' + r.below(26) as u8)
            .collect()
    };
    let keys: Vec<String> = match o.workload {
        Workload::Watch => vec![format!("{}/watched", o.prefix)],
        _ => (0..o.keys).map(|i| format!("{}/k{i}", o.prefix)).collect(),
    };
    let mut w = Work {
        workload: o.workload,
        phase: Phase::Setup,
        inflight: o.inflight,
        read_pct: o.read_pct,
        multi_ops: o.multi_ops,
        children: o.children as usize,
        prefix: o.prefix.clone(),
        wide: o.wide(),
        keys,
        value,
        rng: XorShift64::new(o.seed.wrapping_add(t as u64 * 0x9E37_79B9)),
        counted: o.workload.counted(),
        schedule: None,
        churn_next: 0,
        parent_done: false,
        parents_done: false,
        setup_nodes: if t == 0 { o.setup_nodes() } else { Vec::new() },
        setup_next: 0,
        setup_done: 0,
        fatal: None,
        cycle_start: vec![None; n],
        dead_since: vec![None; n],
        watching: vec![false; n],
        armed: 0,
        rr: 0,
        round: None,
        t0: Instant::now(),
        stats: BTreeMap::new(),
        errors: BTreeMap::new(),
        bad_replies: 0,
        unexpected_events: 0,
        seconds: Vec::new(),
        cur_sec: (0, Histogram::new()),
        other_errors: 0,
        progress,
        error_total: errs,
    };
    let tick = Duration::from_millis(10);
    macro_rules! poll {
        ($timeout:expr) => {
            pool.poll_once($timeout, &mut |s, idx, ev, now| w.on_event(s, idx, ev, now))?
        };
    }

    // 1. Sessions.
    let start = Instant::now();
    for _ in 0..n {
        pool.connect_one(start);
    }
    while pool.connecting() > 0 && !sh.abort.load(Ordering::Relaxed) {
        poll!(tick);
    }
    if pool.failed > 0 {
        sh.fail(format!(
            "{} of {} sessions could not be opened: {}",
            pool.failed,
            o.sessions,
            pool.errors.first().unwrap_or_default()
        ));
    }
    sh.connected.fetch_add(1, Ordering::SeqCst);

    // 2. Setup, by worker 0 once every worker is connected: the parents one at a time,
    // then the nodes (or a new value of the right size for nodes left by earlier runs).
    if t == 0 {
        let deadline = Instant::now()
            + Duration::from_secs(60)
            + Duration::from_millis(w.setup_nodes.len() as u64);
        let step = |pool: &mut Pool, w: &mut Work, what: &str| -> Result<()> {
            pool.poll_once(tick, &mut |s, idx, ev, now| w.on_event(s, idx, ev, now))?;
            if let Some(f) = &w.fatal {
                bail!("{f}");
            }
            if pool.lost > 0 {
                bail!("{what}: {}", pool.errors.first().unwrap_or_default());
            }
            if sh.abort.load(Ordering::Relaxed) {
                bail!("aborted");
            }
            if Instant::now() > deadline {
                bail!("{what} did not finish in time");
            }
            Ok(())
        };
        let res = (|| -> Result<()> {
            while sh.connected.load(Ordering::SeqCst) < o.threads {
                step(&mut pool, &mut w, "waiting for the other threads' sessions")?;
            }
            for parent in o.parents() {
                w.parent_done = false;
                pool.sessions[0].create(Kind::CreateParent, &parent, None, 0, Instant::now());
                pool.flush(0);
                while !w.parent_done {
                    step(&mut pool, &mut w, "creating the parent nodes")?;
                }
            }
            w.parents_done = true;
            fill_all(&mut pool, &mut w);
            while w.setup_done < w.setup_nodes.len() {
                step(&mut pool, &mut w, "setup")?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => {
                let warm = Instant::now();
                let _ = sh
                    .times
                    .set((warm, warm + o.warmup, warm + o.warmup + o.duration));
            }
            Err(e) => sh.fail(e.to_string()),
        }
    }
    let (warm, t0, end) = loop {
        if let Some(times) = sh.times.get() {
            break *times;
        }
        if sh.abort.load(Ordering::Relaxed) {
            pool.close_all(Duration::from_secs(2))?;
            return Err(anyhow!("aborted"));
        }
        poll!(tick);
    };

    // 3. Warm-up, then the measured interval.
    w.phase = Phase::Warmup;
    w.t0 = t0;
    if let Some(rate) = o.rate {
        w.schedule = Some(Schedule {
            start: warm,
            per_sec: rate / o.threads as f64,
            sent: 0,
        });
    }
    fill_all(&mut pool, &mut w);
    let lost_before = (pool.lost, pool.lost_requests);
    let mut lost_at_t0 = None;
    let mut sent_at_t0 = 0;
    let mut ended_early = false;
    loop {
        let now = Instant::now();
        if now >= end || sh.abort.load(Ordering::Relaxed) {
            break;
        }
        if now >= t0 && w.phase == Phase::Warmup {
            w.phase = Phase::Measure;
            lost_at_t0 = Some((pool.lost, pool.lost_requests));
            sent_at_t0 = w.schedule.as_ref().map_or(0, |s| s.sent);
        }
        let wait = w.wait(tick).min(end.saturating_duration_since(now));
        poll!(wait);
        w.after_poll(&mut pool);
        if pool.ready_count() == 0 && o.workload != Workload::Sessions {
            ended_early = true;
            if w.phase == Phase::Warmup {
                sh.fail(format!(
                    "every session was lost during warm-up: {}",
                    pool.errors.first().unwrap_or_default()
                ));
            }
            break;
        }
    }
    w.close_second();
    let behind = w.schedule.as_ref().map(|s| {
        let due_in_measure = s.due(end).saturating_sub(s.due(t0));
        let sent_in_measure = s.sent.saturating_sub(sent_at_t0);
        due_in_measure.saturating_sub(sent_in_measure)
    });
    let (lost0, lreq0) = lost_at_t0.unwrap_or(lost_before);
    let lost_sessions = pool.lost - lost0;
    let lost_requests = pool.lost_requests - lreq0;
    w.phase = Phase::Drain;

    // 4. Drain what is in flight (churn deletes included), then close every session.
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    while pool.sessions.iter().any(|s| !s.pending.is_empty()) && Instant::now() < drain_deadline {
        poll!(tick);
    }
    let unclosed = pool.close_all(Duration::from_secs(5))?;
    Ok(Part {
        stats: w.stats,
        errors: w.errors,
        bad_replies: w.bad_replies,
        unexpected_events: w.unexpected_events,
        other_errors: w.other_errors,
        seconds: w.seconds,
        lost_sessions,
        lost_requests,
        session_errors: pool.errors.lines(),
        behind,
        ended_early,
        unclosed,
    })
}

/// Runs the whole thing: connect, setup, warm-up, measure, drain, close.
pub fn run(o: &RunOpts) -> Result<RunResult> {
    for &pid in &o.server_pid {
        sys::proc_cpu(pid).with_context(|| format!("--server-pid {pid}"))?;
    }
    let sh = Arc::new(Shared {
        connected: AtomicUsize::new(0),
        times: OnceLock::new(),
        abort: AtomicBool::new(false),
        fatal: Mutex::new(None),
    });
    let errs = Arc::new(AtomicU64::new(0));
    let progress: Vec<Arc<AtomicU64>> = (0..o.threads).map(|_| Arc::default()).collect();
    let handles: Vec<_> = (0..o.threads)
        .map(|t| {
            let (o, sh, p, e) = (o.clone(), sh.clone(), progress[t].clone(), errs.clone());
            std::thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn(move || {
                    let r = worker(&o, t, &sh, p, e);
                    if let Err(e) = &r {
                        sh.fail(format!("{e:#}"));
                    }
                    r
                })
                .expect("spawn a worker thread")
        })
        .collect();

    // Wait for the setup, then sample at the edges of the measured interval and print
    // the progress line once a second.
    let show = match o.progress {
        Progress::On => Some(false),
        Progress::Auto if std::io::IsTerminal::is_terminal(&std::io::stderr()) => Some(true),
        _ => None,
    };
    let mut samples = None;
    let mut end_samples = None;
    let total = |p: &[Arc<AtomicU64>]| p.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>();
    while !sh.abort.load(Ordering::Relaxed) {
        let Some(&(warm, t0, end)) = sh.times.get() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let mut last = (Instant::now(), total(&progress));
        let mut next_line = warm + Duration::from_secs(1);
        loop {
            let now = Instant::now();
            let wake = [next_line, if samples.is_none() { t0 } else { end }]
                .into_iter()
                .min()
                .unwrap();
            if now < wake {
                std::thread::sleep((wake - now).min(Duration::from_millis(50)));
                if sh.abort.load(Ordering::Relaxed) {
                    break;
                }
                continue;
            }
            if samples.is_none() && now >= t0 {
                samples = Some(Sample::take(&o.server_pid, now));
            }
            if now >= end {
                end_samples = Some(Sample::take(&o.server_pid, now));
                break;
            }
            if now >= next_line {
                let n = total(&progress);
                let rate = (n - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                last = (now, n);
                next_line += Duration::from_secs(1);
                if let Some(tty) = show {
                    let (label, at) = if now < t0 {
                        ("warm-up", now.duration_since(warm))
                    } else {
                        ("measure", now.duration_since(t0))
                    };
                    let line = format!(
                        "loadgen {label} {:>5.1} s  {rate:>10.0} ops/s  errors {}",
                        at.as_secs_f64(),
                        errs.load(Ordering::Relaxed)
                    );
                    if tty {
                        eprint!("\r{line}   ");
                    } else {
                        eprintln!("{line}");
                    }
                }
            }
        }
        if show == Some(true) {
            eprint!("\r{:72}\r", "");
        }
        break;
    }
    let parts: Vec<Result<Part>> = handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow!("a worker thread panicked")))
        })
        .collect();
    if let Some(f) = sh.fatal.lock().unwrap().take() {
        bail!("{f}");
    }
    let parts: Vec<Part> = parts.into_iter().collect::<Result<_>>()?;
    let (Some(s0), Some(s1)) = (samples, end_samples) else {
        bail!("the run ended before its measured interval");
    };
    Ok(merge(o, parts, &s0, &s1))
}

/// CPU and context-switch counters at one instant.
struct Sample {
    at: Instant,
    cpu: Duration,
    server: Option<Duration>,
    machine: Option<(Duration, Duration)>,
    switches: (Option<u64>, Option<u64>),
}

impl Sample {
    fn take(pids: &[u32], at: Instant) -> Sample {
        // Summed over the pids; None when there are none or one is gone (the server may
        // be gone by the end: that is reported as lost sessions).
        let sum = |f: &dyn Fn(u32) -> Option<Duration>| -> Option<Duration> {
            (!pids.is_empty())
                .then(|| pids.iter().map(|&p| f(p)).sum::<Option<Duration>>())
                .flatten()
        };
        Sample {
            at,
            cpu: sys::self_cpu(),
            server: sum(&|p| sys::proc_cpu(p).ok()),
            machine: sys::machine_cpu(),
            switches: (
                sys::proc_ctx_switches(None),
                (!pids.is_empty())
                    .then(|| {
                        pids.iter()
                            .map(|&p| sys::proc_ctx_switches(Some(p)))
                            .sum::<Option<u64>>()
                    })
                    .flatten(),
            ),
        }
    }
}

fn merge(o: &RunOpts, parts: Vec<Part>, s0: &Sample, s1: &Sample) -> RunResult {
    let counted = o.workload.counted();
    let mut stats: BTreeMap<&'static str, OpStat> = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut seconds: Vec<Second> = Vec::new();
    let (mut bad, mut unexpected, mut other, mut lost, mut lreq, mut unclosed) = (0, 0, 0, 0, 0, 0);
    let mut session_errors = Vec::new();
    let mut behind = None;
    let mut ended_early = false;
    for p in parts {
        for (name, st) in p.stats {
            let e = stats.entry(name).or_default();
            e.count += st.count;
            e.hist.merge(&st.hist);
        }
        for (c, n) in p.errors {
            *errors.entry(c).or_insert(0) += n;
        }
        // Seconds: counts add up; of the percentiles, the median is weighted by count
        // and p99 and max are the worst thread's (exact with one thread).
        for (i, s) in p.seconds.into_iter().enumerate() {
            if seconds.len() <= i {
                seconds.resize(i + 1, Second::default());
            }
            let m = &mut seconds[i];
            let n = m.ops + s.ops;
            if n > 0 {
                m.p50_us = (m.p50_us * m.ops as f64 + s.p50_us * s.ops as f64) / n as f64;
            }
            m.ops = n;
            m.p99_us = m.p99_us.max(s.p99_us);
            m.max_us = m.max_us.max(s.max_us);
        }
        bad += p.bad_replies;
        unexpected += p.unexpected_events;
        other += p.other_errors;
        lost += p.lost_sessions;
        lreq += p.lost_requests;
        unclosed += p.unclosed;
        ended_early |= p.ended_early;
        if let Some(b) = p.behind {
            behind = Some(behind.unwrap_or(0) + b);
        }
        for e in p.session_errors {
            if !session_errors.contains(&e) {
                session_errors.push(e);
            }
        }
    }
    if ended_early {
        session_errors.push("every session was lost: the measurement ended early".into());
    }
    if other > 0 {
        session_errors.push(format!(
            "{other} request(s) failed outside the measured interval"
        ));
    }
    // Replies handled in the loop turn that crossed the end land in a second of their
    // own: fold it into the last whole second, so the series ends on a full one.
    let whole = (o.duration.as_secs_f64().ceil() as usize).max(1);
    while seconds.len() > whole {
        let extra = seconds.pop().unwrap();
        let last = seconds.last_mut().unwrap();
        last.ops += extra.ops;
        last.p99_us = last.p99_us.max(extra.p99_us);
        last.max_us = last.max_us.max(extra.max_us);
    }
    let mut hist = Histogram::new();
    for name in counted {
        if let Some(s) = stats.get(name) {
            hist.merge(&s.hist);
        }
    }
    let d = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    RunResult {
        measured: s1.at - s0.at,
        stats,
        hist,
        counted,
        errors,
        bad_replies: bad,
        unexpected_events: unexpected,
        lost_sessions: lost,
        lost_requests: lreq,
        session_errors,
        behind,
        seconds,
        client_cpu: s1.cpu.saturating_sub(s0.cpu),
        server_cpu: s0.server.zip(s1.server).map(|(a, b)| b.saturating_sub(a)),
        client_switches: d(s0.switches.0, s1.switches.0),
        server_switches: d(s0.switches.1, s1.switches.1),
        machine_cpu: s0
            .machine
            .zip(s1.machine)
            .map(|((b0, t0), (b1, t1))| (b1.saturating_sub(b0), t1.saturating_sub(t0))),
        unclosed,
    }
}

fn fill_all(pool: &mut Pool, w: &mut Work) {
    let now = Instant::now();
    for idx in 0..pool.sessions.len() {
        w.fill(&mut pool.sessions[idx], idx, now);
        pool.flush(idx);
    }
}

/// p50, p90, p99, p99.9, max and mean of `h`, in µs: what every result reports.
pub fn latency_us(h: &Histogram) -> [f64; 6] {
    [
        us(h.quantile(0.5)),
        us(h.quantile(0.9)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        us(h.max()),
        h.mean() / 1000.0,
    ]
}

/// The human-readable result block.
pub fn report(o: &RunOpts, r: &RunResult) -> String {
    let mut s = String::new();
    let secs = r.measured.as_secs_f64();
    s += &format!(
        "loadgen run {}: {} | {} sessions x {} in flight{} | {} | {}-byte values | {} keys | seed {}\n",
        o.workload.name(),
        o.server,
        o.sessions,
        o.inflight,
        if o.threads > 1 { format!(" on {} threads", o.threads) } else { String::new() },
        o.describe(),
        o.value_bytes,
        o.keys,
        o.seed
    );
    s += &format!(
        "  measured     {secs:.2} s after {:.1} s warm-up\n",
        o.warmup.as_secs_f64()
    );
    let per: Vec<String> = r
        .counted
        .iter()
        .filter(|n| r.counted.len() > 1 || r.count(n) > 0)
        .map(|n| format!("{n} {:.0}/s", r.per_sec(r.count(n))))
        .collect();
    s += &format!(
        "  throughput   {:.0} ops/s  ({})\n",
        r.per_sec(r.ops()),
        per.join(", ")
    );
    if let (Some(rate), Some(behind)) = (o.rate, r.behind) {
        s += &format!(
            "  open loop    {rate:.0}/s asked; {behind} request(s) due but not sent by the end \
             (latency counts from when each was due)\n"
        );
    }
    let lat = |h: &Histogram| {
        let [p50, p90, p99, p999, max, mean] = latency_us(h);
        format!(
            "p50 {p50:.0}  p90 {p90:.0}  p99 {p99:.0}  p999 {p999:.0}  max {max:.0}  mean {mean:.0}"
        )
    };
    s += &format!("  latency µs   {}\n", lat(&r.hist));
    let shown: Vec<(&&str, &OpStat)> = r
        .stats
        .iter()
        .filter(|(n, st)| st.count > 0 && (r.counted.len() > 1 || !r.counted.contains(n)))
        .collect();
    for (name, st) in shown {
        s += &format!("    {name:<10} {}\n", lat(&st.hist));
    }
    s += &format!("  errors       {}", r.error_count());
    let mut parts: Vec<String> = r
        .errors
        .iter()
        .map(|(c, n)| format!("{n} x {}", err_name(*c)))
        .collect();
    if r.bad_replies > 0 {
        parts.push(format!(
            "{} replies of the wrong size (getData value, getChildren list)",
            r.bad_replies
        ));
    }
    if r.unexpected_events > 0 {
        parts.push(format!("{} unexpected notifications", r.unexpected_events));
    }
    if r.lost_sessions > 0 {
        parts.push(format!(
            "{} session(s) lost with {} request(s) in flight",
            r.lost_sessions, r.lost_requests
        ));
    }
    if !parts.is_empty() {
        s += &format!("  ({})", parts.join(", "));
    }
    s += "\n";
    let sc = |v: Option<u64>| match r.per_op(v) {
        Some(x) => format!("; {x:.3} context switches/op"),
        None => String::new(),
    };
    s += &format!(
        "  client CPU   {:.2} µs/op  ({:.2} cores{})\n",
        r.cpu_per_op_us(r.client_cpu),
        r.client_cpu.as_secs_f64() / secs,
        sc(r.client_switches)
    );
    if let Some(cpu) = r.server_cpu {
        let pids: Vec<String> = o
            .server_pid
            .iter()
            .map(|&p| format!("{p} {}", sys::proc_name(p)))
            .collect();
        s += &format!(
            "  server CPU   {:.1} µs/op  ({:.2} cores{}; pid {})\n",
            r.cpu_per_op_us(cpu),
            cpu.as_secs_f64() / secs,
            sc(r.server_switches),
            pids.join(" + ")
        );
    }
    if let (Some((busy, steal)), Some(other)) = (r.machine_cpu, r.other_cores()) {
        s += &format!(
            "  machine      {:.2} of {} cores busy; other processes {:.2} cores{}; steal {:.2}\n",
            busy.as_secs_f64() / secs,
            sys::cpus(),
            other,
            if o.server_pid.is_empty() {
                " (server included: no --server-pid)"
            } else {
                ""
            },
            steal.as_secs_f64() / secs
        );
    }
    for e in &r.session_errors {
        s += &format!("  ! {e}\n");
    }
    if r.unclosed > 0 {
        s += &format!(
            "  ! {} session(s) did not confirm closeSession within 5 s\n",
            r.unclosed
        );
    }
    s
}

const CSV_HEADER: &str = "unix_time,server,sessions,inflight,read_pct,value_bytes,keys,\
warmup_s,duration_s,seed,measured_s,ops,ops_per_s,reads_per_s,writes_per_s,p50_us,p99_us,\
p999_us,max_us,read_p99_us,write_p99_us,errors,lost_sessions,client_cpu_us_per_op,\
server_cpu_us_per_op,server_cores,client_switches_per_op,server_switches_per_op,other_cores,\
workload,rate";

/// Appends one row (and the header first if the file is new or empty).
pub fn append_csv(path: &str, o: &RunOpts, r: &RunResult) -> Result<()> {
    let new = std::fs::metadata(path)
        .map(|m| m.len() == 0)
        .unwrap_or(true);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {path}"))?;
    let secs = r.measured.as_secs_f64();
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_default();
    let opt3 = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    let mut row = String::new();
    if new {
        row += CSV_HEADER;
        row += "\n";
    }
    row += &format!(
        "{},{},{},{},{},{},{},{},{},{},{:.3},{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{},{},{:.2},{},{},{},{},{},{},{}\n",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        o.server.csv(),
        o.sessions,
        o.inflight,
        o.read_pct,
        o.value_bytes,
        o.keys,
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64(),
        o.seed,
        secs,
        r.ops(),
        r.per_sec(r.ops()),
        r.per_sec(r.count("getData")),
        r.per_sec(r.count("setData")),
        us(r.hist.quantile(0.5)),
        us(r.hist.quantile(0.99)),
        us(r.hist.quantile(0.999)),
        us(r.hist.max()),
        r.p99_of("getData"),
        r.p99_of("setData"),
        r.error_count(),
        r.lost_sessions,
        r.cpu_per_op_us(r.client_cpu),
        opt(r.server_cpu.map(|c| r.cpu_per_op_us(c))),
        opt(r.server_cpu.map(|c| c.as_secs_f64() / secs)),
        opt3(r.per_op(r.client_switches)),
        opt3(r.per_op(r.server_switches)),
        opt(r.other_cores()),
        o.workload.name(),
        o.rate.map(|r| format!("{r}")).unwrap_or_default(),
    );
    f.write_all(row.as_bytes())
        .with_context(|| format!("cannot write {path}"))?;
    Ok(())
}

/// A string as a JSON string literal.
pub fn jstr(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out + "\""
}

/// The result as one JSON object, for machines (and `loadgen report`): the workload,
/// throughput, latency percentiles in µs per operation kind, the percentile curve, errors
/// by name, CPU figures, and the measured interval second by second.
pub fn json(o: &RunOpts, r: &RunResult) -> String {
    let lat = |h: &Histogram| {
        if h.count() == 0 {
            return "null".to_string();
        }
        let [p50, p90, p99, p999, max, mean] = latency_us(h);
        format!(
            "{{\"count\": {}, \"p50\": {p50:.1}, \"p90\": {p90:.1}, \"p99\": {p99:.1}, \"p999\": {p999:.1}, \"max\": {max:.1}, \"mean\": {mean:.1}}}",
            h.count()
        )
    };
    let num = |v: Option<f64>| v.map_or("null".to_string(), |x| format!("{x:.3}"));
    let servers: Vec<String> = o.server.0.iter().map(|a| jstr(&a.to_string())).collect();
    let errors: Vec<String> = r
        .errors
        .iter()
        .map(|(c, n)| format!("{}: {n}", jstr(&err_name(*c))))
        .collect();
    let mut latency = vec![format!("\"all\": {}", lat(&r.hist))];
    let mut per_op = Vec::new();
    for (name, st) in &r.stats {
        latency.push(format!("{}: {}", jstr(name), lat(&st.hist)));
        per_op.push(format!(
            "{}: {{\"count\": {}, \"per_s\": {:.1}, \"counted\": {}}}",
            jstr(name),
            st.count,
            r.per_sec(st.count),
            r.counted.contains(name)
        ));
    }
    // The latency curve of the counted ops: percentile -> µs.
    let curve: Vec<String> = if r.hist.count() == 0 {
        Vec::new()
    } else {
        CURVE
            .iter()
            .map(|&q| format!("[{q}, {:.1}]", us(r.hist.quantile(q / 100.0))))
            .chain(std::iter::once(format!("[100, {:.1}]", us(r.hist.max()))))
            .collect()
    };
    let seconds: Vec<String> = r
        .seconds
        .iter()
        .map(|s| {
            format!(
                "[{}, {:.1}, {:.1}, {:.1}]",
                s.ops, s.p50_us, s.p99_us, s.max_us
            )
        })
        .collect();
    let secs = r.measured.as_secs_f64();
    format!(
        "{{\"loadgen\": 1, \"workload\": {}, \"describe\": {}, \"servers\": [{}], \
         \"sessions\": {}, \"inflight\": {}, \"threads\": {}, \"read_pct\": {}, \
         \"value_bytes\": {}, \"keys\": {}, \"rate\": {}, \"seed\": {}, \"warmup_s\": {:.3}, \
         \"measured_s\": {secs:.3}, \"ops\": {}, \"ops_per_s\": {:.1}, \"reads_per_s\": {:.1}, \
         \"writes_per_s\": {:.1}, \"per_op\": {{{}}}, \"latency_us\": {{{}}}, \
         \"percentiles_us\": [{}], \"seconds\": [{}], \"behind\": {}, \
         \"errors\": {{{}}}, \"error_count\": {}, \"bad_replies\": {}, \
         \"unexpected_events\": {}, \"lost_sessions\": {}, \"lost_requests\": {}, \
         \"client_cpu_us_per_op\": {:.3}, \"client_cores\": {:.3}, \
         \"server_cpu_us_per_op\": {}, \"server_cores\": {}}}\n",
        jstr(o.workload.name()),
        jstr(&o.describe()),
        servers.join(", "),
        o.sessions,
        o.inflight,
        o.threads,
        o.read_pct,
        o.value_bytes,
        o.keys,
        o.rate.map_or("null".into(), |r| format!("{r:.1}")),
        o.seed,
        o.warmup.as_secs_f64(),
        r.ops(),
        r.per_sec(r.ops()),
        r.per_sec(r.count("getData")),
        r.per_sec(r.count("setData")),
        per_op.join(", "),
        latency.join(", "),
        curve.join(", "),
        seconds.join(", "),
        r.behind.map_or("null".into(), |b| b.to_string()),
        errors.join(", "),
        r.error_count(),
        r.bad_replies,
        r.unexpected_events,
        r.lost_sessions,
        r.lost_requests,
        r.cpu_per_op_us(r.client_cpu),
        r.client_cpu.as_secs_f64() / secs.max(1e-9),
        num(r.server_cpu.map(|c| r.cpu_per_op_us(c))),
        num(r.server_cpu.map(|c| c.as_secs_f64() / secs.max(1e-9))),
    )
}

/// Percentiles of the latency curve in the JSON result and the HTML report.
pub const CURVE: [f64; 12] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON result names every figure, errors by name, nulls what was not measured,
    /// and nests correctly.
    #[test]
    fn json_result() {
        let mut o = RunOpts::canonical();
        o.server = crate::session::Servers(vec!["127.0.0.1:1".parse().unwrap()]);
        o.read_pct = 50;
        let mut hist = Histogram::new();
        for v in [1_000, 2_000, 3_000] {
            hist.record(v);
        }
        let r = RunResult {
            measured: Duration::from_secs(1),
            stats: [(
                "getData",
                OpStat {
                    count: 3,
                    hist: hist.clone(),
                },
            )]
            .into_iter()
            .collect(),
            hist,
            counted: Workload::Rw.counted(),
            errors: [(-101, 2)].into_iter().collect(),
            bad_replies: 0,
            unexpected_events: 0,
            lost_sessions: 0,
            lost_requests: 0,
            session_errors: vec![],
            behind: None,
            seconds: vec![Second {
                ops: 3,
                p50_us: 2.0,
                p99_us: 3.0,
                max_us: 3.0,
            }],
            client_cpu: Duration::from_millis(3),
            server_cpu: None,
            client_switches: None,
            server_switches: None,
            machine_cpu: None,
            unclosed: 0,
        };
        let j = json(&o, &r);
        for want in [
            "\"workload\": \"rw\"",
            "\"servers\": [\"127.0.0.1:1\"]",
            "\"ops_per_s\": 3.0",
            "\"p90\": ",
            "\"getData\": {\"count\": 3, \"p50\"",
            "\"getData\": {\"count\": 3, \"per_s\": 3.0, \"counted\": true}",
            "\"errors\": {\"NoNode (-101)\": 2}",
            "\"error_count\": 2",
            "\"server_cpu_us_per_op\": null",
            "\"seconds\": [[3, 2.0, 3.0, 3.0]]",
            "[100, 3.0]",
        ] {
            assert!(j.contains(want), "{want} not in {j}");
        }
        let depth = j.chars().try_fold(0i32, |d, c| {
            let d = d + matches!(c, '{' | '[') as i32 - matches!(c, '}' | ']') as i32;
            (d >= 0).then_some(d)
        });
        assert_eq!(depth, Some(0), "{j}");
        assert!(j.starts_with('{') && j.ends_with("}\n"));
        assert_eq!(jstr("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    /// The open loop's schedule: request i is due at start + i / rate, never earlier.
    #[test]
    fn schedule_spaces_requests_by_the_rate() {
        let start = Instant::now();
        let s = Schedule {
            start,
            per_sec: 1000.0,
            sent: 0,
        };
        // Request 0 is due at the start; request i at start + i ms.
        assert_eq!(s.due(start), 1);
        assert_eq!(s.due(start + Duration::from_micros(10_500)), 11);
        assert_eq!(s.at(500), start + Duration::from_millis(500));
        for i in [0u64, 1, 7, 999] {
            // At its time, request i is due (and the next one is not yet).
            assert_eq!(s.due(s.at(i) + Duration::from_nanos(100)), i + 1);
            assert!(s.at(s.due(s.at(i))) > s.at(i));
        }
    }
}
