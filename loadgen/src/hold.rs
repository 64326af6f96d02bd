//! `loadgen sessions`: opens many idle sessions, keeps them alive with pings for a while,
//! and reports what that costs the server in memory.

use crate::session::Pool;
use crate::sys;
use anyhow::{bail, Context, Result};

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct HoldOpts {
    pub server: crate::session::Servers,
    pub count: usize,
    pub hold: Duration,
    pub server_pid: Option<u32>,
    pub session_timeout_ms: i32,
    /// Connects + handshakes in progress at once.
    pub parallel: usize,
}

pub struct HoldResult {
    pub opened: usize,
    pub failed: usize,
    pub open_time: Duration,
    pub held: Duration,
    pub lost: usize,
    pub pings: u64,
    pub ping_p99_us: f64,
    pub ping_max_us: f64,
    pub errors: Vec<String>,
    pub rss_before_kib: Option<u64>,
    pub rss_open_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub server_cpu_hold: Option<Duration>,
    pub unclosed: usize,
    pub negotiated_timeout: Duration,
}

pub fn hold(o: &HoldOpts) -> Result<HoldResult> {
    let rss = |pid: Option<u32>| pid.map(sys::proc_rss_kib).transpose();
    let rss_before_kib = rss(o.server_pid).with_context(|| "--server-pid".to_string())?;
    let mut pool = Pool::new(&o.server, o.session_timeout_ms, 512)?;
    let tick = Duration::from_millis(10);
    let start = Instant::now();
    // Generous, but bounded: a server that accepts slower than ~100 sessions/s fails here.
    let open_deadline =
        start + Duration::from_secs(30) + Duration::from_millis(10 * o.count as u64);
    while pool.opened + pool.failed < o.count {
        let now = Instant::now();
        while pool.sessions.len() < o.count && pool.connecting() < o.parallel {
            pool.connect_one(now);
            // Every connect refused: the server is not there; stop at once.
            if pool.opened == 0 && pool.failed >= 8 && pool.failed == pool.sessions.len() {
                bail!(
                    "{}",
                    pool.errors
                        .first()
                        .unwrap_or_else(|| "cannot connect".into())
                );
            }
        }
        if now > open_deadline {
            bail!(
                "opened only {} of {} sessions in {:?} ({} failed)",
                pool.opened,
                o.count,
                now - start,
                pool.failed
            );
        }
        pool.poll_once(tick, &mut |_, _, _, _| {})?;
        if pool.opened == 0 && pool.failed >= 8 && pool.failed == pool.sessions.len() {
            bail!(
                "{}",
                pool.errors
                    .first()
                    .unwrap_or_else(|| "cannot connect".into())
            );
        }
    }
    let open_time = start.elapsed();
    if pool.opened == 0 {
        bail!(
            "no session could be opened: {}",
            pool.errors.first().unwrap_or_default()
        );
    }
    let negotiated_timeout = pool
        .sessions
        .iter()
        .find(|s| s.id != 0)
        .map(|s| s.timeout)
        .unwrap_or_default();
    let rss_open_kib = rss(o.server_pid)?;

    let hold_start = Instant::now();
    let cpu0 = o.server_pid.map(sys::proc_cpu).transpose()?;
    while hold_start.elapsed() < o.hold {
        pool.poll_once(Duration::from_millis(50), &mut |_, _, _, _| {})?;
    }
    let held = hold_start.elapsed();
    // The server may be gone by now (that shows as lost sessions).
    let cpu1 = o.server_pid.and_then(|p| sys::proc_cpu(p).ok());
    let rss_after_kib = o.server_pid.and_then(|p| sys::proc_rss_kib(p).ok());
    let unclosed = pool.close_all(Duration::from_secs(15))?;
    Ok(HoldResult {
        opened: pool.opened,
        failed: pool.failed,
        open_time,
        held,
        lost: pool.lost,
        pings: pool.sessions.iter().map(|s| s.pings).sum(),
        ping_p99_us: pool.ping_rtt.quantile(0.99) as f64 / 1000.0,
        ping_max_us: pool.ping_rtt.max() as f64 / 1000.0,
        errors: pool.errors.lines(),
        rss_before_kib,
        rss_open_kib,
        rss_after_kib,
        server_cpu_hold: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
        unclosed,
        negotiated_timeout,
    })
}

pub fn report(o: &HoldOpts, r: &HoldResult) -> String {
    let mut s = format!(
        "loadgen sessions: {} | {} sessions requested, held {:.1} s\n",
        o.server,
        o.count,
        r.held.as_secs_f64()
    );
    s += &format!(
        "  opened       {} in {:.2} s ({:.0} sessions/s), {} failed; negotiated timeout {} ms\n",
        r.opened,
        r.open_time.as_secs_f64(),
        r.opened as f64 / r.open_time.as_secs_f64(),
        r.failed,
        r.negotiated_timeout.as_millis()
    );
    s += &format!(
        "  while held   {} lost, {} pings answered (p99 {:.0} µs, max {:.0} µs)\n",
        r.lost, r.pings, r.ping_p99_us, r.ping_max_us
    );
    if let (Some(b), Some(op), Some(a), Some(pid)) = (
        r.rss_before_kib,
        r.rss_open_kib,
        r.rss_after_kib,
        o.server_pid,
    ) {
        let per = |kib: u64| {
            if r.opened == 0 {
                0.0
            } else {
                (kib as f64 - b as f64) * 1024.0 / r.opened as f64
            }
        };
        s += &format!(
            "  server RSS   before {:.1} MiB, all open {:.1} MiB, after hold {:.1} MiB \
             (pid {pid} {})\n",
            b as f64 / 1024.0,
            op as f64 / 1024.0,
            a as f64 / 1024.0,
            sys::proc_name(pid)
        );
        s += &format!(
            "  per session  {:.0} bytes (after hold - before) / opened{}\n",
            per(a),
            if a < b {
                " (RSS shrank: memory freed by earlier clients was reused; use a fresh server)"
            } else {
                ""
            }
        );
    }
    if let Some(cpu) = r.server_cpu_hold {
        s += &format!(
            "  server CPU   {:.3} cores while holding\n",
            cpu.as_secs_f64() / r.held.as_secs_f64()
        );
    }
    s += &format!("  errors       {}\n", r.failed + r.lost);
    for e in &r.errors {
        s += &format!("  ! {e}\n");
    }
    if r.unclosed > 0 {
        s += &format!(
            "  ! {} session(s) did not confirm closeSession within 15 s\n",
            r.unclosed
        );
    }
    s
}
