//! `loadgen compare`: the same workload against two servers, alternating (A B A B ...) for
//! every read % of a matrix, so that a comparison holds while the machine's speed drifts.
//! Prints each run's line as it goes, then a table of means over the rounds with the
//! ratios A/B: throughput, p99 latency and (with --a-pid/--b-pid) server CPU per op.

use crate::report;
use crate::run::{self, RunOpts, RunResult};
use crate::session::Servers;
use anyhow::{Context, Result};

pub struct CompareOpts {
    /// Everything but the server, the server's pid and the read %.
    pub base: RunOpts,
    pub a: (String, Servers, Vec<u32>),
    pub b: (String, Servers, Vec<u32>),
    pub reads: Vec<u32>,
    pub rounds: usize,
    /// Stop the other side's processes (SIGSTOP) while one side runs, so that an idle
    /// server's background work (a JVM's) does not take the CPU from the measured one.
    /// For standalone servers: a stopped ensemble would miss its own heartbeats.
    pub pause_idle: bool,
}

/// SIGSTOP or SIGCONT to each pid.
fn signal_all(pids: &[u32], sig: libc::c_int) {
    for &p in pids {
        // SAFETY: kill(2) on a pid the user named.
        unsafe { libc::kill(p as libc::pid_t, sig) };
    }
}

/// One side's figures at one read %, one entry per round.
#[derive(Default, Debug, Clone)]
pub struct Side {
    pub ops_per_s: Vec<f64>,
    pub p99_us: Vec<f64>,
    pub cpu_us_per_op: Vec<f64>,
}

impl Side {
    fn add(&mut self, r: &RunResult) {
        self.ops_per_s
            .push(r.ops() as f64 / r.measured.as_secs_f64().max(1e-9));
        self.p99_us.push(r.hist.quantile(0.99) as f64 / 1000.0);
        if let Some(c) = r.server_cpu {
            self.cpu_us_per_op
                .push(c.as_secs_f64() * 1e6 / (r.ops().max(1) as f64));
        }
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The summary table: one row per read %, means over the rounds, ratios A/B.
/// Rows are labelled by read % (rw) or by workload name.
pub fn table(a_name: &str, b_name: &str, rows: &[(String, Side, Side)]) -> String {
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
        _ => "-".into(),
    };
    let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.0}"));
    let g = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.1}"));
    let mut s = format!(
        "{:>6} | {:>12} {:>12} {:>6} | {:>10} {:>10} {:>6} | {:>10} {:>10} {:>6}\n",
        "mix",
        format!("{a_name} op/s"),
        format!("{b_name} op/s"),
        "A/B",
        "A p99 µs",
        "B p99 µs",
        "A/B",
        "A cpu µs",
        "B cpu µs",
        "A/B"
    );
    for (label, a, b) in rows {
        let (ta, tb) = (mean(&a.ops_per_s), mean(&b.ops_per_s));
        let (la, lb) = (mean(&a.p99_us), mean(&b.p99_us));
        let (ca, cb) = (mean(&a.cpu_us_per_op), mean(&b.cpu_us_per_op));
        s += &format!(
            "{label:>6} | {:>12} {:>12} {:>6} | {:>10} {:>10} {:>6} | {:>10} {:>10} {:>6}\n",
            f(ta),
            f(tb),
            ratio(ta, tb),
            f(la),
            f(lb),
            ratio(la, lb),
            g(ca),
            g(cb),
            ratio(ca, cb)
        );
    }
    s
}

pub fn compare(o: &CompareOpts) -> Result<String> {
    let mut rows = Vec::new();
    let mut groups = Vec::new();
    for &read_pct in &o.reads {
        let (mut a, mut b) = (Side::default(), Side::default());
        let mut entries = Vec::new();
        for round in 1..=o.rounds {
            for (side, (name, servers, pid)) in [(&mut a, &o.a), (&mut b, &o.b)] {
                let mut ro = o.base.clone();
                ro.server = servers.clone();
                ro.server_pid = pid.clone();
                ro.read_pct = read_pct;
                // One page and one JSON for the whole comparison, not one per run.
                ro.report = None;
                ro.json = None;
                let idle = if std::ptr::eq(pid, &o.a.2) {
                    &o.b.2
                } else {
                    &o.a.2
                };
                if o.pause_idle {
                    signal_all(idle, libc::SIGSTOP);
                }
                let r = run::run(&ro);
                if o.pause_idle {
                    signal_all(idle, libc::SIGCONT);
                }
                let r = r?;
                let mut e = report::Entry::from_run(&ro, &r)?;
                e.label = format!("{name} round {round}");
                entries.push(e);
                println!(
                    "{}, round {round}, {name}: {:.0} ops/s, p99 {:.0} µs, {} errors{}",
                    ro.describe(),
                    r.ops() as f64 / r.measured.as_secs_f64().max(1e-9),
                    r.hist.quantile(0.99) as f64 / 1000.0,
                    r.error_count(),
                    r.other_cores()
                        .map_or(String::new(), |c| format!(", other processes {c:.2} cores"))
                );
                side.add(&r);
            }
        }
        let mut ro = o.base.clone();
        ro.read_pct = read_pct;
        let label = if ro.workload == run::Workload::Rw {
            read_pct.to_string()
        } else {
            ro.workload.name().to_string()
        };
        rows.push((label, a, b));
        groups.push((ro.describe(), entries));
    }
    let t = table(&o.a.0, &o.b.0, &rows);
    if let Some(path) = &o.base.report {
        let title = format!("loadgen compare: {} / {}", o.a.0, o.b.0);
        let pre = format!(
            "{} | {} sessions x {} in flight | {}-byte values | {} rounds, alternating\n\n{t}",
            o.base.workload.name(),
            o.base.sessions,
            o.base.inflight,
            o.base.value_bytes,
            o.rounds
        );
        std::fs::write(path, report::html(&title, &pre, &groups))
            .with_context(|| format!("--report {path}"))?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_means_and_ratios() {
        let side = |ops: &[f64], p99: &[f64], cpu: &[f64]| Side {
            ops_per_s: ops.to_vec(),
            p99_us: p99.to_vec(),
            cpu_us_per_op: cpu.to_vec(),
        };
        let rows = vec![
            (
                "100".to_string(),
                side(&[300.0, 100.0], &[10.0], &[2.0]),
                side(&[100.0], &[20.0], &[8.0]),
            ),
            (
                "churn".to_string(),
                side(&[50.0], &[5.0], &[]),
                side(&[0.0], &[5.0], &[]),
            ),
        ];
        let t = table("paddock", "zookeeper", &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("paddock op/s") && lines[0].contains("zookeeper op/s"));
        // 100% reads: mean 200 against 100 (2.00), p99 10 against 20 (0.50), cpu 0.25.
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(row[0], "100");
        assert!(
            lines[1].contains(" 2.00 ") && lines[1].contains(" 0.50 "),
            "{t}"
        );
        assert!(lines[1].trim_end().ends_with("0.25"), "{t}");
        // No ratio against zero, nor without CPU figures.
        assert!(lines[2].contains(" - "), "{t}");
    }
}
