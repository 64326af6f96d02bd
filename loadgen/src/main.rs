//! loadgen: a load generator for ZooKeeper-protocol servers (Paddock, Apache ZooKeeper, ...).
//! It speaks the client protocol itself, with Paddock's jute codec, from one thread and one
//! mio event loop, so that the client costs little next to the server it measures.

mod compare;
mod hist;
mod hold;
mod report;
mod rng;
mod run;
mod session;
mod sys;

use anyhow::{anyhow, bail, Context, Result};
use std::net::ToSocketAddrs;
use std::str::FromStr;
use std::time::Duration;

const USAGE: &str = "\
usage:
  loadgen                      the canonical workload: 32 sessions x 16 in flight, 90% reads,
                               100-byte values, 1000 keys, 2 s warm-up + 10 s, seed 1,
                               against 127.0.0.1:2181
  loadgen run [options]        one workload, measured after a warm-up
      --workload W             what the sessions do (rw):
                                 rw        getData / setData (version -1) on random keys
                                 churn     create a node, then delete it (both count)
                                 seq       create ephemeral sequential nodes
                                 children  getChildren of a node with --children children
                                 multi     multi of --multi-ops setData on random keys
                                 sessions  each session slot: connect, create an ephemeral
                                           node, close; again (a cycle counts)
                                 watch     session 0 sets a node the others watch; the time
                                           from the write to the last notification counts
      --server ADDR            host:port (default 127.0.0.1:2181)
      --servers A,B,...        an ensemble's members: session i goes to server i mod n
      --sessions N             sessions (connections) (32)
      --inflight N             requests kept in flight per session (16)
      --rate R                 open loop: R requests/s over all sessions (at most
                               --inflight outstanding per session); latency counts from
                               when each request was due (coordinated omission corrected)
      --read-pct P             rw: % of getData (90)
      --value-bytes N          value size (100); --value-size N is the same
      --keys N                 rw, multi: keys PREFIX/k0 .. k<N-1>, created first (1000)
      --children N             children: width of the node listed (1000)
      --multi-ops N            multi: setData ops per multi (4)
      --duration S             measured seconds (10)
      --warmup S               seconds before measuring (2)
      --threads N              worker threads, each with its own event loop (1)
      --pin CPU,CPU,...        pin worker thread i to the i-th CPU of the list (mod len)
      --progress auto|on|off   a progress line on standard error each second (auto: when
                               it is a terminal)
      --seed N                 RNG seed (1)
      --server-pid PID[,PID]   also measure the server's CPU (and report it per op);
                               several pids (an ensemble's members) are summed
      --csv FILE               append a CSV row (header first if the file is new)
      --json FILE              write the result as one JSON object (-: print it instead
                               of the report)
      --report FILE.html       write a self-contained HTML page of the result
      --prefix PATH            parent of every node loadgen makes (/loadgen)
      --session-timeout MS     requested session timeout (30000)
  loadgen compare --a ADDRS --b ADDRS [options]
                               the run workload against two servers in turn (A B A B)
                               for each read %; prints the means and the ratios A/B
      --a-name, --b-name NAME  labels (A, B)
      --a-pid, --b-pid PIDS    measure each side's server CPU per op (pids summed)
      --reads LIST             read percentages (100,90,50,0)
      --rounds N               A-then-B rounds per read % (2)
      --report FILE.html       every run's charts and the table on one page
      --pause-idle yes|no      SIGSTOP the other side's pids while one side runs, so an
                               idle server's background work is not counted against the
                               measured one (no; standalone servers only: a stopped
                               ensemble misses its own heartbeats)
      and the run options above, but --server, --read-pct and --server-pid
  loadgen report FILE.json ... --out FILE.html [--title T]
                               results written by --json, side by side on one page
  loadgen sessions [options]   open many idle sessions and hold them
      --server ADDR            (127.0.0.1:2181)
      --count N                sessions (10000)
      --hold S                 seconds to hold them once all are open (10)
      --server-pid PID         report that process's RSS before/after and per session
      --parallel N             connects + handshakes in progress at once (100;
                               keep it below the server's listen backlog)
      --session-timeout MS     (30000)";

/// `--name value` / `--name=value` options.
struct Opts {
    given: Vec<(String, String)>,
    used: Vec<bool>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts> {
        let mut given = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                bail!("unexpected argument {a:?}");
            };
            if let Some((n, v)) = name.split_once('=') {
                given.push((n.to_owned(), v.to_owned()));
            } else {
                let v = it.next().ok_or_else(|| anyhow!("--{name} needs a value"))?;
                given.push((name.to_owned(), v.clone()));
            }
        }
        let used = vec![false; given.len()];
        Ok(Opts { given, used })
    }

    fn raw(&mut self, name: &str) -> Option<String> {
        let mut found = None;
        for (i, (n, v)) in self.given.iter().enumerate() {
            if n == name {
                self.used[i] = true;
                found = Some(v.clone());
            }
        }
        found
    }

    fn get<T: FromStr>(&mut self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| anyhow!("--{name} {v:?}: {e}")),
        }
    }

    fn secs(&mut self, name: &str, default: f64) -> Result<Duration> {
        let s: f64 = self.get(name, default)?;
        if !(0.0..=86_400.0).contains(&s) {
            bail!("--{name} must be between 0 and 86400 seconds");
        }
        Ok(Duration::from_secs_f64(s))
    }

    /// `--server` or `--servers`: one host:port, or a comma list (an ensemble's members;
    /// sessions are spread over them in turn).
    fn server(&mut self) -> Result<session::Servers> {
        let (one, many) = (self.raw("server"), self.raw("servers"));
        let list = match (one, many) {
            (Some(_), Some(_)) => bail!("give --server or --servers, not both"),
            (Some(s), None) | (None, Some(s)) => s,
            (None, None) => "127.0.0.1:2181".into(),
        };
        let mut addrs = Vec::new();
        for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let a = s
                .to_socket_addrs()
                .with_context(|| format!("--servers {s:?}: expected host:port"))?
                .next()
                .ok_or_else(|| anyhow!("--servers {s:?} resolves to no address"))?;
            addrs.push(a);
        }
        if addrs.is_empty() {
            bail!("--servers {list:?}: no address");
        }
        Ok(session::Servers(addrs))
    }

    fn finish(&self) -> Result<()> {
        for (i, (n, _)) in self.given.iter().enumerate() {
            if !self.used[i] {
                bail!("unknown option --{n}\n{USAGE}");
            }
        }
        Ok(())
    }
}

/// `--server-pid 12` or `--server-pid 12,13,14` (an ensemble's members, summed).
fn pids(v: Option<String>, name: &str) -> Result<Vec<u32>> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .map_err(|e| anyhow!("--{name} {p:?}: {e}"))
        })
        .collect()
}

fn run_opts(o: &mut Opts) -> Result<run::RunOpts> {
    let d = run::RunOpts::canonical();
    let r = run::RunOpts {
        server: o.server()?,
        workload: match o.raw("workload") {
            Some(w) => run::Workload::parse(&w)?,
            None => d.workload,
        },
        sessions: o.get("sessions", d.sessions)?,
        inflight: o.get("inflight", d.inflight)?,
        read_pct: o.get("read-pct", d.read_pct)?,
        // --value-size is the name for it; both are accepted.
        value_bytes: match o.raw("value-size") {
            Some(v) => v.parse().map_err(|e| anyhow!("--value-size {v:?}: {e}"))?,
            None => o.get("value-bytes", d.value_bytes)?,
        },
        duration: o.secs("duration", d.duration.as_secs_f64())?,
        warmup: o.secs("warmup", d.warmup.as_secs_f64())?,
        keys: o.get("keys", d.keys)?,
        children: o.get("children", d.children)?,
        multi_ops: o.get("multi-ops", d.multi_ops)?,
        rate: o
            .raw("rate")
            .map(|v| v.parse::<f64>())
            .transpose()
            .map_err(|e| anyhow!("--rate: {e}"))?,
        threads: o.get("threads", d.threads)?,
        pin: match o.raw("pin") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|c| {
                    c.trim()
                        .parse::<usize>()
                        .map_err(|e| anyhow!("--pin {c:?}: {e}"))
                })
                .collect::<Result<_>>()?,
        },
        progress: match o.raw("progress").as_deref() {
            None | Some("auto") => run::Progress::Auto,
            Some("on") => run::Progress::On,
            Some("off") => run::Progress::Off,
            Some(v) => bail!("--progress {v:?}: auto, on or off"),
        },
        seed: o.get("seed", d.seed)?,
        server_pid: pids(o.raw("server-pid"), "server-pid")?,
        csv: o.raw("csv"),
        json: o.raw("json"),
        report: o.raw("report"),
        session_timeout_ms: o.get("session-timeout", d.session_timeout_ms)?,
        prefix: o.raw("prefix").unwrap_or(d.prefix),
    };
    o.finish()?;
    if r.sessions == 0 || r.inflight == 0 || r.keys == 0 {
        bail!("--sessions, --inflight and --keys must be at least 1");
    }
    if r.threads == 0 || r.threads > r.sessions {
        bail!("--threads must be between 1 and --sessions");
    }
    if r.read_pct > 100 {
        bail!("--read-pct must be 0..=100");
    }
    if r.value_bytes > 1_000_000 {
        bail!("--value-bytes must be below ZooKeeper's 1 MB jute.maxbuffer");
    }
    if r.duration.is_zero() {
        bail!("--duration must be above 0");
    }
    if !r.prefix.starts_with('/') || r.prefix.len() < 2 || r.prefix.ends_with('/') {
        bail!("--prefix must be an absolute path other than /, e.g. /loadgen");
    }
    if let Some(rate) = r.rate {
        if !(rate > 0.0 && rate <= 1e8) {
            bail!("--rate must be a positive number of requests per second");
        }
        if !r.workload.open_loop() {
            bail!(
                "--rate does not apply to --workload {} (it is paced by the server's replies)",
                r.workload.name()
            );
        }
    }
    if r.children == 0 || r.children > 1_000_000 {
        bail!("--children must be 1..=1000000");
    }
    if r.multi_ops == 0 || r.multi_ops > 1000 {
        bail!("--multi-ops must be 1..=1000");
    }
    if r.workload == run::Workload::Watch {
        if r.sessions < 2 {
            bail!("--workload watch needs --sessions 2 or more: one writer and the watchers");
        }
        if r.threads != 1 {
            bail!("--workload watch runs on one thread (--threads 1)");
        }
    }
    Ok(r)
}

fn hold_opts(o: &mut Opts) -> Result<hold::HoldOpts> {
    let h = hold::HoldOpts {
        server: o.server()?,
        count: o.get("count", 10_000)?,
        hold: o.secs("hold", 10.0)?,
        server_pid: o.raw("server-pid").map(|p| p.parse()).transpose()?,
        session_timeout_ms: o.get("session-timeout", 30_000)?,
        parallel: o.get("parallel", 100)?,
    };
    o.finish()?;
    if h.count == 0 || h.parallel == 0 {
        bail!("--count and --parallel must be at least 1");
    }
    Ok(h)
}

fn do_run(o: run::RunOpts) -> Result<()> {
    let r = run::run(&o)?;
    if let Some(path) = &o.report {
        let page = report::html(
            "loadgen run",
            "",
            &[(String::new(), vec![report::Entry::from_run(&o, &r)?])],
        );
        std::fs::write(path, page).with_context(|| format!("--report {path}"))?;
    }
    match o.json.as_deref() {
        Some("-") => print!("{}", run::json(&o, &r)),
        Some(path) => {
            print!("{}", run::report(&o, &r));
            std::fs::write(path, run::json(&o, &r)).with_context(|| format!("--json {path}"))?;
        }
        None => print!("{}", run::report(&o, &r)),
    }
    if let Some(path) = &o.csv {
        run::append_csv(path, &o, &r)?;
    }
    if r.ops() == 0 {
        bail!("no operation completed in the measured interval");
    }
    if r.lost_sessions > 0 {
        bail!(
            "{} session(s) were lost during the measurement",
            r.lost_sessions
        );
    }
    Ok(())
}

fn main() {
    let fds = sys::raise_nofile_limit() as u64;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = (|| -> Result<()> {
        match args.first().map(String::as_str) {
            None => do_run(run_opts(&mut Opts::parse(&[])?)?),
            Some("run") => do_run(run_opts(&mut Opts::parse(&args[1..])?)?),
            Some("sessions") => {
                let o = hold_opts(&mut Opts::parse(&args[1..])?)?;
                // Each session is one descriptor; keep a margin for the rest.
                if fds > 0 && o.count as u64 + 64 > fds {
                    bail!(
                        "--count {} needs more file descriptors than the limit allows ({fds}): \
                         raise the hard limit (ulimit -Hn) first",
                        o.count
                    );
                }
                let r = hold::hold(&o)?;
                print!("{}", hold::report(&o, &r));
                if r.failed + r.lost > 0 {
                    bail!("{} session(s) failed or were lost", r.failed + r.lost);
                }
                Ok(())
            }
            Some("compare") => {
                let mut o = Opts::parse(&args[1..])?;
                let side =
                    |o: &mut Opts, k: &str| -> Result<(String, session::Servers, Vec<u32>)> {
                        let name = o
                            .raw(&format!("{k}-name"))
                            .unwrap_or_else(|| k.to_uppercase());
                        let list = o
                            .raw(k)
                            .ok_or_else(|| anyhow!("compare needs --{k} ADDR[,ADDR...]"))?;
                        let servers = Opts::parse(&["--servers".into(), list])?.server()?;
                        let pid = pids(o.raw(&format!("{k}-pid")), &format!("{k}-pid"))?;
                        Ok((name, servers, pid))
                    };
                let (a, b) = (side(&mut o, "a")?, side(&mut o, "b")?);
                let reads_given = o.raw("reads");
                let reads: Vec<u32> = reads_given
                    .clone()
                    .unwrap_or_else(|| "100,90,50,0".into())
                    .split(',')
                    .map(|v| {
                        v.trim()
                            .parse::<u32>()
                            .map_err(|e| anyhow!("--reads {v:?}: {e}"))
                    })
                    .collect::<Result<_>>()?;
                if reads.is_empty() || reads.iter().any(|&p| p > 100) {
                    bail!("--reads: a list of read percentages 0..=100");
                }
                for k in ["server", "servers", "read-pct", "server-pid"] {
                    if o.raw(k).is_some() {
                        bail!("compare: --{k} does not apply (--a/--b, --reads, --a-pid/--b-pid)");
                    }
                }
                let rounds: usize = o.get("rounds", 2)?;
                if rounds == 0 {
                    bail!("--rounds must be at least 1");
                }
                let pause_idle = match o.raw("pause-idle").as_deref() {
                    None | Some("no") => false,
                    Some("yes") => true,
                    Some(v) => bail!("--pause-idle {v:?}: yes or no"),
                };
                if pause_idle && (a.2.is_empty() || b.2.is_empty()) {
                    bail!("--pause-idle yes needs --a-pid and --b-pid");
                }
                let base = run_opts(&mut o)?;
                // Read % is rw's knob; other workloads compare once per round.
                let reads = match (base.workload, reads_given) {
                    (run::Workload::Rw, _) => reads,
                    (_, None) => vec![0],
                    (w, Some(_)) => bail!(
                        "compare --workload {}: --reads applies to rw only",
                        w.name()
                    ),
                };
                let c = compare::CompareOpts {
                    base,
                    a,
                    b,
                    reads,
                    rounds,
                    pause_idle,
                };
                print!("{}", compare::compare(&c)?);
                Ok(())
            }
            Some("report") => {
                // loadgen report A.json B.json ... --out report.html [--title T]
                let (mut files, mut rest) = (Vec::new(), Vec::new());
                let mut it = args[1..].iter();
                while let Some(a) = it.next() {
                    if a.starts_with("--") {
                        rest.push(a.clone());
                        if !a.contains('=') {
                            rest.extend(it.next().cloned());
                        }
                    } else {
                        files.push(a.clone());
                    }
                }
                let mut o = Opts::parse(&rest)?;
                let out = o
                    .raw("out")
                    .ok_or_else(|| anyhow!("report: --out FILE.html is required"))?;
                let title = o.raw("title").unwrap_or_else(|| "loadgen results".into());
                o.finish()?;
                if files.is_empty() {
                    bail!("report: which result files? (written by loadgen run --json FILE)");
                }
                let entries = files
                    .iter()
                    .map(|f| report::Entry::from_file(f))
                    .collect::<Result<Vec<_>>>()?;
                std::fs::write(&out, report::html(&title, "", &[(String::new(), entries)]))
                    .with_context(|| format!("--out {out}"))?;
                println!("wrote {out}");
                Ok(())
            }
            Some("-h" | "--help" | "help") => {
                println!("{USAGE}");
                Ok(())
            }
            Some(other) => bail!("unknown command {other:?}\n{USAGE}"),
        }
    })();
    if let Err(e) = res {
        eprintln!("loadgen: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::Opts;

    fn servers(args: &[&str]) -> anyhow::Result<String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut o = Opts::parse(&args)?;
        Ok(o.server()?.to_string())
    }

    #[test]
    fn server_lists() {
        assert_eq!(servers(&[]).unwrap(), "127.0.0.1:2181");
        assert_eq!(
            servers(&["--servers", "127.0.0.1:1,127.0.0.2:2"]).unwrap(),
            "127.0.0.1:1,127.0.0.2:2"
        );
        assert_eq!(servers(&["--server=127.0.0.3:3"]).unwrap(), "127.0.0.3:3");
        assert!(servers(&["--server", "a:1", "--servers", "b:2"]).is_err());
        assert!(servers(&["--servers", ","]).is_err());
        assert!(servers(&["--servers", "nohost"]).is_err());
    }
}
