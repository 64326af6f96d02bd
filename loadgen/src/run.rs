//! `loadgen run`: a fixed read/write mix over a fixed key set, each session keeping a fixed
//! number of requests in flight, measured after a warm-up.

use crate::hist::Histogram;
use crate::rng::XorShift64;
use crate::session::{err_name, Ev, Kind, Pool, Session, State};
use crate::sys;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct RunOpts {
    pub server: crate::session::Servers,
    pub sessions: usize,
    pub inflight: usize,
    pub read_pct: u32,
    pub value_bytes: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub keys: u32,
    pub seed: u64,
    pub server_pid: Option<u32>,
    pub csv: Option<String>,
    /// Write the result as one JSON object to this file (`-`: standard output).
    pub json: Option<String>,
    pub session_timeout_ms: i32,
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Setup,
    Warmup,
    Measure,
    Drain,
}

/// The workload's state, fed every reply by the event loop.
struct Work {
    phase: Phase,
    inflight: usize,
    read_pct: u32,
    keys: Vec<String>,
    value: Vec<u8>,
    rng: XorShift64,
    parent_done: bool,
    setup_next: usize,
    setup_done: usize,
    fatal: Option<String>,
    // Measured interval only:
    hist: Histogram,
    read_hist: Histogram,
    write_hist: Histogram,
    reads: u64,
    writes: u64,
    errors: BTreeMap<i32, u64>,
    bad_values: u64,
    // Outside the measured interval:
    other_errors: u64,
}

impl Work {
    /// Tops `s` up to the target number of requests in flight.
    fn fill(&mut self, s: &mut Session, now: Instant) {
        if s.state != State::Ready {
            return;
        }
        match self.phase {
            Phase::Setup => {
                while s.pending.len() < self.inflight && self.setup_next < self.keys.len() {
                    let k = self.setup_next;
                    self.setup_next += 1;
                    s.create(
                        Kind::Create(k as u32),
                        &self.keys[k],
                        Some(&self.value),
                        now,
                    );
                }
            }
            Phase::Warmup | Phase::Measure => {
                while s.pending.len() < self.inflight {
                    let read = self.rng.percent(self.read_pct);
                    let k = self.rng.below(self.keys.len() as u64) as usize;
                    if read {
                        s.get_data(&self.keys[k], now);
                    } else {
                        s.set_data(Kind::Set, &self.keys[k], &self.value, now);
                    }
                }
            }
            Phase::Idle | Phase::Drain => {}
        }
    }

    fn on_event(&mut self, s: &mut Session, ev: Ev, now: Instant) {
        let Ev::Reply {
            kind,
            sent,
            err,
            data_len,
        } = ev
        else {
            return; // Connected: nothing to send until the setup starts
        };
        match kind {
            Kind::CreateParent => {
                if err == 0 || err == -110 {
                    self.parent_done = true;
                } else {
                    self.fatal = Some(format!("cannot create the key parent: {}", err_name(err)));
                }
            }
            Kind::Create(k) => match err {
                0 => self.setup_done += 1,
                // Left by an earlier run: give it this run's value size.
                -110 => s.set_data(Kind::Reset(k), &self.keys[k as usize], &self.value, now),
                _ => {
                    self.fatal = Some(format!(
                        "setup: create {} failed: {}",
                        self.keys[k as usize],
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
                        self.keys[k as usize],
                        err_name(err)
                    ));
                }
            }
            Kind::Get | Kind::Set => {
                if self.phase == Phase::Measure {
                    let ns = now.duration_since(sent).as_nanos() as u64;
                    self.hist.record(ns);
                    if err != 0 {
                        *self.errors.entry(err).or_default() += 1;
                    } else if kind == Kind::Get {
                        self.reads += 1;
                        self.read_hist.record(ns);
                        if data_len != Some(self.value.len()) {
                            self.bad_values += 1;
                        }
                    } else {
                        self.writes += 1;
                        self.write_hist.record(ns);
                    }
                } else if err != 0 {
                    self.other_errors += 1;
                }
            }
            Kind::Close => {}
        }
        self.fill(s, now);
    }
}

/// What one run measured.
pub struct RunResult {
    pub measured: Duration,
    pub reads: u64,
    pub writes: u64,
    pub hist: Histogram,
    pub read_hist: Histogram,
    pub write_hist: Histogram,
    pub errors: BTreeMap<i32, u64>,
    pub bad_values: u64,
    pub lost_sessions: usize,
    pub lost_requests: u64,
    pub session_errors: Vec<String>,
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
    pub fn ops(&self) -> u64 {
        self.reads + self.writes
    }
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.bad_values + self.lost_requests
    }
    fn per_sec(&self, n: u64) -> f64 {
        n as f64 / self.measured.as_secs_f64()
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
    fn cpu_per_op_us(&self, cpu: Duration) -> f64 {
        if self.ops() == 0 {
            f64::NAN
        } else {
            cpu.as_secs_f64() * 1e6 / self.ops() as f64
        }
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Runs the whole thing: connect, setup, warm-up, measure, drain, close.
pub fn run(o: &RunOpts) -> Result<RunResult> {
    if let Some(pid) = o.server_pid {
        sys::proc_cpu(pid).with_context(|| format!("--server-pid {pid}"))?;
    }
    let mut pool = Pool::new(&o.server, o.session_timeout_ms, 64 << 10)?;
    let mut w = Work {
        phase: Phase::Idle,
        inflight: o.inflight,
        read_pct: o.read_pct,
        keys: (0..o.keys).map(|i| format!("{}/k{i}", o.prefix)).collect(),
        value: {
            let mut r = XorShift64::new(o.seed ^ 0x5eed);
            (0..o.value_bytes)
                .map(|_| b'a' + r.below(26) as u8)
                .collect()
        },
        rng: XorShift64::new(o.seed),
        parent_done: false,
        setup_next: 0,
        setup_done: 0,
        fatal: None,
        hist: Histogram::new(),
        read_hist: Histogram::new(),
        write_hist: Histogram::new(),
        reads: 0,
        writes: 0,
        errors: BTreeMap::new(),
        bad_values: 0,
        other_errors: 0,
    };
    let tick = Duration::from_millis(10);

    // 1. Sessions.
    let start = Instant::now();
    for _ in 0..o.sessions {
        pool.connect_one(start);
    }
    while pool.connecting() > 0 {
        pool.poll_once(tick, &mut |s, ev, now| w.on_event(s, ev, now))?;
    }
    if pool.failed > 0 {
        bail!(
            "{} of {} sessions could not be opened: {}",
            pool.failed,
            o.sessions,
            pool.errors.first().unwrap_or_default()
        );
    }

    // 2. Setup: the parent node, then every key with a value of the right size.
    let now = Instant::now();
    pool.sessions[0].create(Kind::CreateParent, &o.prefix, None, now);
    pool.flush(0);
    let setup_deadline = now + Duration::from_secs(60) + Duration::from_millis(o.keys as u64);
    let step = |pool: &mut Pool, w: &mut Work, what: &str, deadline: Instant| -> Result<()> {
        pool.poll_once(tick, &mut |s, ev, now| w.on_event(s, ev, now))?;
        if let Some(f) = &w.fatal {
            bail!("{f}");
        }
        if pool.lost > 0 {
            bail!("{what}: {}", pool.errors.first().unwrap_or_default());
        }
        if Instant::now() > deadline {
            bail!("{what} did not finish in time");
        }
        Ok(())
    };
    while !w.parent_done {
        step(&mut pool, &mut w, "creating the key parent", setup_deadline)?;
    }
    w.phase = Phase::Setup;
    fill_all(&mut pool, &mut w);
    while w.setup_done < o.keys as usize {
        step(&mut pool, &mut w, "setup", setup_deadline)?;
    }

    // 3. Warm-up, then the measured interval.
    w.phase = Phase::Warmup;
    let warm_start = Instant::now();
    fill_all(&mut pool, &mut w);
    while Instant::now() < warm_start + o.warmup {
        pool.poll_once(tick, &mut |s, ev, now| w.on_event(s, ev, now))?;
        if pool.ready_count() == 0 {
            bail!(
                "every session was lost during warm-up: {}",
                pool.errors.first().unwrap_or_default()
            );
        }
    }
    let lost_before = pool.lost;
    let lost_requests_before = pool.lost_requests;
    let t0 = Instant::now();
    let cpu0 = sys::self_cpu();
    let srv0 = o.server_pid.map(sys::proc_cpu).transpose()?;
    let machine0 = sys::machine_cpu();
    let cs0 = (
        sys::proc_ctx_switches(None),
        o.server_pid.and_then(|p| sys::proc_ctx_switches(Some(p))),
    );
    w.phase = Phase::Measure;
    let end = t0 + o.duration;
    let mut ended_early = false;
    while Instant::now() < end {
        pool.poll_once(tick, &mut |s, ev, now| w.on_event(s, ev, now))?;
        if pool.ready_count() == 0 {
            ended_early = true;
            break;
        }
    }
    let t1 = Instant::now();
    let cpu1 = sys::self_cpu();
    // The server may be gone by now (that is reported as lost sessions).
    let srv1 = o.server_pid.and_then(|p| sys::proc_cpu(p).ok());
    let machine1 = sys::machine_cpu();
    let cs1 = (
        sys::proc_ctx_switches(None),
        o.server_pid.and_then(|p| sys::proc_ctx_switches(Some(p))),
    );
    w.phase = Phase::Drain;

    // 4. Drain what is in flight, then close every session.
    let drain_deadline = t1 + Duration::from_secs(5);
    while pool.sessions.iter().any(|s| !s.pending.is_empty()) && Instant::now() < drain_deadline {
        pool.poll_once(tick, &mut |s, ev, now| w.on_event(s, ev, now))?;
    }
    let unclosed = pool.close_all(Duration::from_secs(5))?;

    let mut session_errors = pool.errors.lines();
    if ended_early {
        session_errors.push("every session was lost: the measurement ended early".into());
    }
    if w.other_errors > 0 {
        session_errors.push(format!(
            "{} request(s) failed outside the measured interval",
            w.other_errors
        ));
    }
    Ok(RunResult {
        measured: t1 - t0,
        reads: w.reads,
        writes: w.writes,
        hist: w.hist,
        read_hist: w.read_hist,
        write_hist: w.write_hist,
        errors: w.errors,
        bad_values: w.bad_values,
        lost_sessions: pool.lost - lost_before,
        lost_requests: pool.lost_requests - lost_requests_before,
        session_errors,
        client_cpu: cpu1 - cpu0,
        server_cpu: srv0.zip(srv1).map(|(a, b)| b.saturating_sub(a)),
        client_switches: delta(cs0.0, cs1.0),
        server_switches: delta(cs0.1, cs1.1),
        machine_cpu: machine0
            .zip(machine1)
            .map(|((b0, s0), (b1, s1))| (b1.saturating_sub(b0), s1.saturating_sub(s0))),
        unclosed,
    })
}

fn delta(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(b?.saturating_sub(a?))
}

fn fill_all(pool: &mut Pool, w: &mut Work) {
    let now = Instant::now();
    for idx in 0..pool.sessions.len() {
        w.fill(&mut pool.sessions[idx], now);
        pool.flush(idx);
    }
}

/// p50, p90, p99, p99.9, max and mean of `h`, in µs: what every result reports.
fn latency_us(h: &Histogram) -> [f64; 6] {
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
        "loadgen run: {} | {} sessions x {} in flight | {}% reads | {}-byte values | {} keys | seed {}\n",
        o.server, o.sessions, o.inflight, o.read_pct, o.value_bytes, o.keys, o.seed
    );
    s += &format!(
        "  measured     {secs:.2} s after {:.1} s warm-up\n",
        o.warmup.as_secs_f64()
    );
    s += &format!(
        "  throughput   {:.0} ops/s  (reads {:.0}/s, writes {:.0}/s)\n",
        r.per_sec(r.ops()),
        r.per_sec(r.reads),
        r.per_sec(r.writes)
    );
    let lat = |h: &Histogram| {
        let [p50, p90, p99, p999, max, mean] = latency_us(h);
        format!(
            "p50 {p50:.0}  p90 {p90:.0}  p99 {p99:.0}  p999 {p999:.0}  max {max:.0}  mean {mean:.0}"
        )
    };
    s += &format!("  latency µs   {}\n", lat(&r.hist));
    if r.reads > 0 && r.writes > 0 {
        s += &format!("    reads      {}\n", lat(&r.read_hist));
        s += &format!("    writes     {}\n", lat(&r.write_hist));
    }
    s += &format!("  errors       {}", r.error_count());
    let mut parts: Vec<String> = r
        .errors
        .iter()
        .map(|(c, n)| format!("{n} x {}", err_name(*c)))
        .collect();
    if r.bad_values > 0 {
        parts.push(format!(
            "{} getData replies of the wrong size",
            r.bad_values
        ));
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
        "  client CPU   {:.1} µs/op  ({:.2} cores{})\n",
        r.cpu_per_op_us(r.client_cpu),
        r.client_cpu.as_secs_f64() / secs,
        sc(r.client_switches)
    );
    if let (Some(cpu), Some(pid)) = (r.server_cpu, o.server_pid) {
        s += &format!(
            "  server CPU   {:.1} µs/op  ({:.2} cores{}; pid {pid} {})\n",
            r.cpu_per_op_us(cpu),
            cpu.as_secs_f64() / secs,
            sc(r.server_switches),
            sys::proc_name(pid)
        );
    }
    if let (Some((busy, steal)), Some(other)) = (r.machine_cpu, r.other_cores()) {
        s += &format!(
            "  machine      {:.2} of {} cores busy; other processes {:.2} cores{}; steal {:.2}\n",
            busy.as_secs_f64() / secs,
            sys::cpus(),
            other,
            if o.server_pid.is_none() {
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
server_cpu_us_per_op,server_cores,client_switches_per_op,server_switches_per_op,other_cores";

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
        "{},{},{},{},{},{},{},{},{},{},{:.3},{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{},{},{:.2},{},{},{},{},{}\n",
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
        r.per_sec(r.reads),
        r.per_sec(r.writes),
        us(r.hist.quantile(0.5)),
        us(r.hist.quantile(0.99)),
        us(r.hist.quantile(0.999)),
        us(r.hist.max()),
        us(r.read_hist.quantile(0.99)),
        us(r.write_hist.quantile(0.99)),
        r.error_count(),
        r.lost_sessions,
        r.cpu_per_op_us(r.client_cpu),
        opt(r.server_cpu.map(|c| r.cpu_per_op_us(c))),
        opt(r.server_cpu.map(|c| c.as_secs_f64() / secs)),
        opt3(r.per_op(r.client_switches)),
        opt3(r.per_op(r.server_switches)),
        opt(r.other_cores()),
    );
    f.write_all(row.as_bytes())
        .with_context(|| format!("cannot write {path}"))?;
    Ok(())
}

/// The result as one JSON object, for machines: the workload, throughput, latency
/// percentiles in µs per operation kind, errors by name, and CPU figures.
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
    let servers: Vec<String> = o.server.0.iter().map(|a| format!("\"{a}\"")).collect();
    let errors: Vec<String> = r
        .errors
        .iter()
        .map(|(c, n)| format!("\"{}\": {n}", err_name(*c)))
        .collect();
    let secs = r.measured.as_secs_f64();
    format!(
        "{{\"servers\": [{}], \"sessions\": {}, \"inflight\": {}, \"read_pct\": {}, \
         \"value_bytes\": {}, \"keys\": {}, \"seed\": {}, \"warmup_s\": {:.3}, \
         \"measured_s\": {secs:.3}, \"ops\": {}, \"ops_per_s\": {:.1}, \"reads_per_s\": {:.1}, \
         \"writes_per_s\": {:.1}, \"latency_us\": {{\"all\": {}, \"read\": {}, \"write\": {}}}, \
         \"errors\": {{{}}}, \"error_count\": {}, \"bad_values\": {}, \"lost_sessions\": {}, \
         \"lost_requests\": {}, \"client_cpu_us_per_op\": {:.3}, \"server_cpu_us_per_op\": {}, \
         \"server_cores\": {}}}\n",
        servers.join(", "),
        o.sessions,
        o.inflight,
        o.read_pct,
        o.value_bytes,
        o.keys,
        o.seed,
        o.warmup.as_secs_f64(),
        r.ops(),
        r.per_sec(r.ops()),
        r.per_sec(r.reads),
        r.per_sec(r.writes),
        lat(&r.hist),
        lat(&r.read_hist),
        lat(&r.write_hist),
        errors.join(", "),
        r.error_count(),
        r.bad_values,
        r.lost_sessions,
        r.lost_requests,
        r.cpu_per_op_us(r.client_cpu),
        num(r.server_cpu.map(|c| r.cpu_per_op_us(c))),
        num(r.server_cpu.map(|c| c.as_secs_f64() / secs)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON result names every figure, errors by name, nulls what was not measured,
    /// and nests correctly.
    #[test]
    fn json_result() {
        let o = RunOpts {
            server: crate::session::Servers(vec!["127.0.0.1:1".parse().unwrap()]),
            sessions: 2,
            inflight: 3,
            read_pct: 50,
            value_bytes: 10,
            duration: Duration::from_secs(1),
            warmup: Duration::from_secs(0),
            keys: 5,
            seed: 7,
            server_pid: None,
            csv: None,
            json: None,
            session_timeout_ms: 1000,
            prefix: "/x".into(),
        };
        let mut hist = Histogram::new();
        for v in [1_000, 2_000, 3_000] {
            hist.record(v);
        }
        let r = RunResult {
            measured: Duration::from_secs(1),
            reads: 3,
            writes: 0,
            read_hist: hist.clone(),
            hist,
            write_hist: Histogram::new(),
            errors: [(-101, 2)].into_iter().collect(),
            bad_values: 0,
            lost_sessions: 0,
            lost_requests: 0,
            session_errors: vec![],
            client_cpu: Duration::from_millis(3),
            server_cpu: None,
            client_switches: None,
            server_switches: None,
            machine_cpu: None,
            unclosed: 0,
        };
        let j = json(&o, &r);
        for want in [
            "\"servers\": [\"127.0.0.1:1\"]",
            "\"ops_per_s\": 3.0",
            "\"p90\": ",
            "\"write\": null",
            "\"errors\": {\"NoNode (-101)\": 2}",
            "\"error_count\": 2",
            "\"server_cpu_us_per_op\": null",
        ] {
            assert!(j.contains(want), "{want} not in {j}");
        }
        let depth = j.chars().try_fold(0i32, |d, c| {
            let d = d + matches!(c, '{' | '[') as i32 - matches!(c, '}' | ']') as i32;
            (d >= 0).then_some(d)
        });
        assert_eq!(depth, Some(0), "{j}");
        assert!(j.starts_with('{') && j.ends_with("}\n"));
    }
}
