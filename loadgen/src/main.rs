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
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::fmt::Display;
use std::net::ToSocketAddrs;
use std::str::FromStr;
use std::time::Duration;

/// A load generator for ZooKeeper-protocol servers (Paddock, Apache ZooKeeper, ...).
///
/// Without a command it runs the canonical workload, `loadgen run` with every default: 32
/// sessions x 16 in flight, 90% reads, 100-byte values, 1000 keys, 2 s warm-up + 10 s, seed
/// 1, against 127.0.0.1:2181.
#[derive(Parser, Debug)]
// args_override_self: a flag given twice keeps its last value, as with the hand parser.
#[command(name = "loadgen", version, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One workload, measured after a warm-up.
    #[command(after_help = WORKLOADS, mut_args = negative_numbers_are_values)]
    Run(RunArgs),
    /// The run workload against two servers in turn (A B A B) for each read %; prints the
    /// means and the ratios A/B.
    #[command(after_help = WORKLOADS, mut_args = negative_numbers_are_values)]
    Compare(CompareArgs),
    /// Results written by `run --json`, side by side on one HTML page.
    #[command(mut_args = negative_numbers_are_values)]
    Report(ReportArgs),
    /// Open many idle sessions and hold them.
    #[command(mut_args = negative_numbers_are_values)]
    Sessions(SessionsArgs),
}

/// A negative number after a flag is its value, so that the flag's own check refuses it by
/// name (`--duration -1`: "--duration must be between 0 and 86400 seconds"), as with the
/// hand parser, rather than clap taking it for an unknown flag `-1`.
fn negative_numbers_are_values(a: clap::Arg) -> clap::Arg {
    let takes_values = a.get_action().takes_values();
    a.allow_negative_numbers(takes_values)
}

const WORKLOADS: &str = "\
Workloads (--workload):
  rw        getData / setData (version -1) on random keys
  churn     create a node, then delete it (both count)
  seq       create ephemeral sequential nodes
  children  getChildren of a node with --children children
  multi     multi of --multi-ops setData on random keys
  sessions  each session slot: connect, create an ephemeral node, close; again (a cycle
            counts)
  watch     session 0 sets a node the others watch; the time from the write to the last
            notification counts";

/// `--server` or `--servers`: the same list (one host:port, or an ensemble's members).
#[derive(Args, Debug)]
struct Target {
    /// host:port (a comma list is an ensemble, as with --servers)
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:2181",
        value_parser = parse_servers,
        conflicts_with = "servers"
    )]
    server: session::Servers,
    /// An ensemble's members: session i goes to server i mod n
    #[arg(long, value_name = "A,B,...", value_parser = parse_servers)]
    servers: Option<session::Servers>,
}

impl Target {
    fn servers(self) -> session::Servers {
        self.servers.unwrap_or(self.server)
    }
}

/// A comma list of numbers, taken by clap as one value (`--server-pid 12,13`), not as a
/// repeated flag: a name of its own keeps clap's derive from reading `Vec` as one.
type List<T> = Vec<T>;

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
    /// rw: % of getData
    #[arg(long, value_name = "P", default_value_t = 90)]
    read_pct: u32,
    /// Also measure the server's CPU (and report it per op); several pids (an ensemble's
    /// members) are summed
    #[arg(long, value_name = "PID[,PID]", value_parser = parse_list::<u32>)]
    server_pid: Option<List<u32>>,
    #[command(flatten)]
    load: Load,
}

/// What the sessions do and how: every `run` option but the server, its pids and the
/// read % (which `compare` sets per side and per round).
#[derive(Args, Debug)]
struct Load {
    /// What the sessions do (the workloads are listed below)
    #[arg(long, value_name = "W", default_value = "rw", value_parser = run::Workload::parse)]
    workload: run::Workload,
    /// Sessions (connections)
    #[arg(long, value_name = "N", default_value_t = 32)]
    sessions: usize,
    /// Requests kept in flight per session
    #[arg(long, value_name = "N", default_value_t = 16)]
    inflight: usize,
    /// Open loop: R requests/s over all sessions (at most --inflight outstanding per
    /// session); latency counts from when each request was due (coordinated omission
    /// corrected)
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Value size
    #[arg(long, value_name = "N", default_value_t = 100)]
    value_bytes: usize,
    /// The same as --value-bytes (give one or the other)
    #[arg(long, value_name = "N", conflicts_with = "value_bytes")]
    value_size: Option<usize>,
    /// rw, multi: keys PREFIX/k0 .. k<N-1>, created first
    #[arg(long, value_name = "N", default_value_t = 1000)]
    keys: u32,
    /// children: width of the node listed
    #[arg(long, value_name = "N", default_value_t = 1000)]
    children: u32,
    /// multi: setData ops per multi
    #[arg(long, value_name = "N", default_value_t = 4)]
    multi_ops: u32,
    /// Measured seconds
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    duration: f64,
    /// Seconds before measuring
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    warmup: f64,
    /// Worker threads, each with its own event loop
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// Pin worker thread i to the i-th CPU of the list (mod its length)
    #[arg(long, value_name = "CPU,CPU,...", value_parser = parse_list::<usize>)]
    pin: Option<List<usize>>,
    /// A progress line on standard error each second (auto: when it is a terminal)
    #[arg(long, value_name = "auto|on|off", default_value = "auto", value_parser = parse_progress)]
    progress: run::Progress,
    /// RNG seed
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Append a CSV row (header first if the file is new)
    #[arg(long, value_name = "FILE")]
    csv: Option<String>,
    /// Write the result as one JSON object (-: print it instead of the report)
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Write a self-contained HTML page of the result (compare: every run's charts and the
    /// table on one page)
    #[arg(long, value_name = "FILE.html")]
    report: Option<String>,
    /// Parent of every node loadgen makes
    #[arg(long, value_name = "PATH", default_value = "/loadgen")]
    prefix: String,
    /// Requested session timeout (ms)
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    session_timeout: i32,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Side A's server (a comma list: an ensemble)
    #[arg(long, value_name = "ADDRS", value_parser = parse_servers)]
    a: session::Servers,
    /// Side B's server (a comma list: an ensemble)
    #[arg(long, value_name = "ADDRS", value_parser = parse_servers)]
    b: session::Servers,
    /// Side A's label
    #[arg(long, value_name = "NAME", default_value = "A")]
    a_name: String,
    /// Side B's label
    #[arg(long, value_name = "NAME", default_value = "B")]
    b_name: String,
    /// Measure side A's server CPU per op (pids summed)
    #[arg(long, value_name = "PIDS", value_parser = parse_list::<u32>)]
    a_pid: Option<List<u32>>,
    /// Measure side B's server CPU per op (pids summed)
    #[arg(long, value_name = "PIDS", value_parser = parse_list::<u32>)]
    b_pid: Option<List<u32>>,
    /// Read percentages, one comparison each (rw only) [default: 100,90,50,0]
    #[arg(long, value_name = "LIST", value_parser = parse_list::<u32>)]
    reads: Option<List<u32>>,
    /// A-then-B rounds per read %
    #[arg(long, value_name = "N", default_value_t = 2)]
    rounds: usize,
    /// SIGSTOP the other side's pids while one side runs, so that an idle server's
    /// background work is not counted against the measured one (standalone servers only: a
    /// stopped ensemble misses its own heartbeats)
    #[arg(
        long,
        value_name = "yes|no",
        default_value = "no",
        value_parser = parse_yes_no,
        action = clap::ArgAction::Set
    )]
    pause_idle: bool,
    #[command(flatten)]
    load: Load,
    // run's flags that compare sets itself: refused with a word on what to use instead.
    #[arg(long, hide = true)]
    server: Option<String>,
    #[arg(long, hide = true)]
    servers: Option<String>,
    #[arg(long, hide = true)]
    read_pct: Option<String>,
    #[arg(long, hide = true)]
    server_pid: Option<String>,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Result files (written by loadgen run --json FILE)
    #[arg(value_name = "FILE.json")]
    files: Vec<String>,
    /// The page to write
    #[arg(long, value_name = "FILE.html", required = true)]
    out: String,
    /// The page's title
    #[arg(long, value_name = "T", default_value = "loadgen results")]
    title: String,
}

#[derive(Args, Debug)]
struct SessionsArgs {
    #[command(flatten)]
    target: Target,
    /// Sessions
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    count: usize,
    /// Seconds to hold them once all are open
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    hold: f64,
    /// Report that process's RSS before/after and per session
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Connects + handshakes in progress at once (keep it below the server's listen
    /// backlog)
    #[arg(long, value_name = "N", default_value_t = 100)]
    parallel: usize,
    /// Requested session timeout (ms)
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    session_timeout: i32,
}

/// `--server`, `--servers`, `--a`, `--b`: host:port, or a comma list (an ensemble's
/// members; sessions are spread over them in turn).
fn parse_servers(list: &str) -> Result<session::Servers> {
    let mut addrs = Vec::new();
    for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let a = s
            .to_socket_addrs()
            .map_err(|e| anyhow!("{s:?}: expected host:port ({e})"))?
            .next()
            .ok_or_else(|| anyhow!("{s:?} resolves to no address"))?;
        addrs.push(a);
    }
    if addrs.is_empty() {
        bail!("no address");
    }
    Ok(session::Servers(addrs))
}

/// `12` or `12,13,14`.
fn parse_list<T: FromStr>(list: &str) -> Result<List<T>>
where
    T::Err: Display,
{
    list.split(',')
        .map(|v| v.trim().parse::<T>().map_err(|e| anyhow!("{v:?}: {e}")))
        .collect()
}

fn parse_progress(v: &str) -> Result<run::Progress> {
    match v {
        "auto" => Ok(run::Progress::Auto),
        "on" => Ok(run::Progress::On),
        "off" => Ok(run::Progress::Off),
        _ => bail!("auto, on or off"),
    }
}

fn parse_yes_no(v: &str) -> Result<bool> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => bail!("yes or no"),
    }
}

/// Seconds, 0 to a day.
fn secs(name: &str, s: f64) -> Result<Duration> {
    if !(0.0..=86_400.0).contains(&s) {
        bail!("--{name} must be between 0 and 86400 seconds");
    }
    Ok(Duration::from_secs_f64(s))
}

impl Load {
    /// The run options, checked as they always were; the server, its pids and the read %
    /// are run's flags or compare's sides.
    fn opts(
        self,
        server: session::Servers,
        read_pct: u32,
        server_pid: Vec<u32>,
    ) -> Result<run::RunOpts> {
        let r = run::RunOpts {
            server,
            workload: self.workload,
            sessions: self.sessions,
            inflight: self.inflight,
            read_pct,
            // --value-size is the name for it; either is accepted (not both).
            value_bytes: self.value_size.unwrap_or(self.value_bytes),
            duration: secs("duration", self.duration)?,
            warmup: secs("warmup", self.warmup)?,
            keys: self.keys,
            children: self.children,
            multi_ops: self.multi_ops,
            rate: self.rate,
            threads: self.threads,
            pin: self.pin.unwrap_or_default(),
            progress: self.progress,
            seed: self.seed,
            server_pid,
            csv: self.csv,
            json: self.json,
            report: self.report,
            session_timeout_ms: self.session_timeout,
            prefix: self.prefix,
        };
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
}

/// What a command line asks for, its values checked.
enum Job {
    Run(run::RunOpts),
    Compare(compare::CompareOpts),
    Report {
        files: Vec<String>,
        out: String,
        title: String,
    },
    Sessions(hold::HoldOpts),
}

impl Cmd {
    /// No command: `run` with its defaults, the canonical workload.
    fn canonical() -> Cmd {
        Cli::parse_from(["loadgen", "run"])
            .cmd
            .expect("run parses without flags")
    }

    fn name(&self) -> &'static str {
        match self {
            Cmd::Run(_) => "run",
            Cmd::Compare(_) => "compare",
            Cmd::Report(_) => "report",
            Cmd::Sessions(_) => "sessions",
        }
    }

    /// The checks clap does not make (ranges, flags that go together or not); their errors
    /// are usage errors, as clap's own are.
    fn job(self) -> Result<Job> {
        Ok(match self {
            Cmd::Run(a) => Job::Run(a.load.opts(
                a.target.servers(),
                a.read_pct,
                a.server_pid.unwrap_or_default(),
            )?),
            Cmd::Compare(c) => Job::Compare(compare_opts(c)?),
            Cmd::Report(r) => {
                if r.files.is_empty() {
                    bail!("report: which result files? (written by loadgen run --json FILE)");
                }
                Job::Report {
                    files: r.files,
                    out: r.out,
                    title: r.title,
                }
            }
            Cmd::Sessions(s) => {
                let h = hold::HoldOpts {
                    server: s.target.servers(),
                    count: s.count,
                    hold: secs("hold", s.hold)?,
                    server_pid: s.server_pid,
                    session_timeout_ms: s.session_timeout,
                    parallel: s.parallel,
                };
                if h.count == 0 || h.parallel == 0 {
                    bail!("--count and --parallel must be at least 1");
                }
                Job::Sessions(h)
            }
        })
    }
}

fn compare_opts(c: CompareArgs) -> Result<compare::CompareOpts> {
    let reads = c.reads.clone().unwrap_or_else(|| vec![100, 90, 50, 0]);
    if reads.is_empty() || reads.iter().any(|&p| p > 100) {
        bail!("--reads: a list of read percentages 0..=100");
    }
    for (k, given) in [
        ("server", c.server.is_some()),
        ("servers", c.servers.is_some()),
        ("read-pct", c.read_pct.is_some()),
        ("server-pid", c.server_pid.is_some()),
    ] {
        if given {
            bail!("compare: --{k} does not apply (--a/--b, --reads, --a-pid/--b-pid)");
        }
    }
    if c.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let a = (c.a_name, c.a, c.a_pid.unwrap_or_default());
    let b = (c.b_name, c.b, c.b_pid.unwrap_or_default());
    if c.pause_idle && (a.2.is_empty() || b.2.is_empty()) {
        bail!("--pause-idle yes needs --a-pid and --b-pid");
    }
    // The sides and rounds set the server, its pids and the read %.
    let d = run::RunOpts::canonical();
    let base = c.load.opts(d.server, d.read_pct, Vec::new())?;
    // Read % is rw's knob; other workloads compare once per round.
    let reads = match (base.workload, c.reads) {
        (run::Workload::Rw, _) => reads,
        (_, None) => vec![0],
        (w, Some(_)) => bail!(
            "compare --workload {}: --reads applies to rw only",
            w.name()
        ),
    };
    Ok(compare::CompareOpts {
        base,
        a,
        b,
        reads,
        rounds: c.rounds,
        pause_idle: c.pause_idle,
    })
}

/// A check of `job` failed: clap's kind of error (the message, the subcommand's usage,
/// exit 2).
fn usage_error(cmd: &str, e: &anyhow::Error) -> clap::Error {
    let mut cli = Cli::command();
    cli.build();
    let sub = cli
        .find_subcommand_mut(cmd)
        .expect("a subcommand of loadgen");
    sub.error(clap::error::ErrorKind::ValueValidation, format!("{e:#}"))
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
    // Usage errors (an unknown flag, a malformed or missing value) are clap's: it names the
    // bad flag and exits 2; --help and --version exit 0.
    let cli = Cli::parse();
    let cmd = cli.cmd.unwrap_or_else(Cmd::canonical);
    let name = cmd.name();
    let job = cmd.job().unwrap_or_else(|e| usage_error(name, &e).exit());
    let fds = sys::raise_nofile_limit() as u64;
    let res = match job {
        Job::Run(o) => do_run(o),
        Job::Sessions(o) => do_sessions(o, fds),
        Job::Compare(c) => compare::compare(&c).map(|out| print!("{out}")),
        Job::Report { files, out, title } => do_report(&files, &out, &title),
    };
    if let Err(e) = res {
        eprintln!("loadgen: {e:#}");
        std::process::exit(1);
    }
}

fn do_sessions(o: hold::HoldOpts, fds: u64) -> Result<()> {
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

/// `loadgen report A.json B.json ... --out report.html [--title T]`
fn do_report(files: &[String], out: &str, title: &str) -> Result<()> {
    let entries = files
        .iter()
        .map(|f| report::Entry::from_file(f))
        .collect::<Result<Vec<_>>>()?;
    std::fs::write(out, report::html(title, "", &[(String::new(), entries)]))
        .with_context(|| format!("--out {out}"))?;
    println!("wrote {out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Cli, Job};
    use crate::run::{Progress, RunOpts, Workload};
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};
    use std::time::Duration;

    /// `loadgen ARGS...` through clap and the checks after it.
    fn job(args: &[&str]) -> anyhow::Result<Job> {
        let cli = Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))?;
        cli.cmd.unwrap_or_else(super::Cmd::canonical).job()
    }

    fn run(args: &[&str]) -> RunOpts {
        match job(&[&["run"], args].concat()) {
            Ok(Job::Run(o)) => o,
            Ok(_) => panic!("{args:?}: not a run"),
            Err(e) => panic!("{args:?}: {e:#}"),
        }
    }

    /// The error `loadgen ARGS...` gives, clap's or a check's.
    fn refused(args: &[&str]) -> String {
        match job(args) {
            Ok(_) => panic!("{args:?} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    /// clap's own error for `loadgen ARGS...` (help and version are "errors" too).
    fn clap_error(args: &[&str]) -> clap::Error {
        match Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied())) {
            Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
            Err(e) => e,
        }
    }

    fn servers(args: &[&str]) -> anyhow::Result<String> {
        match job(&[&["run"], args].concat())? {
            Job::Run(o) => Ok(o.server.to_string()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn clap_accepts_its_own_definition() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_lists() {
        assert_eq!(servers(&[]).unwrap(), "127.0.0.1:2181");
        assert_eq!(
            servers(&["--servers", "127.0.0.1:1,127.0.0.2:2"]).unwrap(),
            "127.0.0.1:1,127.0.0.2:2"
        );
        assert_eq!(servers(&["--server=127.0.0.3:3"]).unwrap(), "127.0.0.3:3");
        // --server takes a list as well, spaces around the commas and empty items aside.
        assert_eq!(
            servers(&["--server", "127.0.0.1:1, 127.0.0.2:2,"]).unwrap(),
            "127.0.0.1:1,127.0.0.2:2"
        );
        let both = servers(&["--server", "127.0.0.1:1", "--servers", "127.0.0.2:2"]);
        assert!(format!("{:#}", both.unwrap_err()).contains("cannot be used with"));
        assert!(servers(&["--server", "a:1", "--servers", "b:2"]).is_err());
        assert!(servers(&["--servers", ","]).is_err());
        assert!(servers(&["--servers", "nohost"]).is_err());
    }

    /// `loadgen` and `loadgen run` run the canonical workload, RunOpts::canonical, and
    /// the defaults clap shows in --help are its values.
    #[test]
    fn defaults_are_the_canonical_workload() {
        let want = format!("{:?}", RunOpts::canonical());
        assert_eq!(format!("{:?}", run(&[])), want);
        match job(&[]) {
            Ok(Job::Run(o)) => assert_eq!(format!("{o:?}"), want),
            _ => panic!("no command is not the canonical run"),
        }
    }

    #[test]
    fn every_run_flag_both_ways() {
        let o = run(&words(
            "--servers=127.0.0.1:1,127.0.0.2:2 --workload multi --sessions=8 --inflight 3 \
             --read-pct 70 --value-bytes=200 --keys 50 --children=7 --multi-ops 5 \
             --duration 1.5 --warmup=0 --threads 2 --pin=0,1 --progress off --seed=9 \
             --server-pid 12,13 --csv r.csv --json=- --report r.html --session-timeout 4000 \
             --prefix=/p --rate 250.5",
        ));
        assert_eq!(o.server.to_string(), "127.0.0.1:1,127.0.0.2:2");
        assert_eq!(o.workload, Workload::Multi);
        assert_eq!((o.sessions, o.inflight, o.read_pct), (8, 3, 70));
        assert_eq!(
            (o.value_bytes, o.keys, o.children, o.multi_ops),
            (200, 50, 7, 5)
        );
        assert_eq!(o.duration, Duration::from_millis(1500));
        assert_eq!(o.warmup, Duration::ZERO);
        assert_eq!((o.threads, o.pin.as_slice()), (2, &[0, 1][..]));
        assert_eq!((o.progress, o.seed), (Progress::Off, 9));
        assert_eq!(o.server_pid, [12, 13]);
        assert_eq!(o.csv.as_deref(), Some("r.csv"));
        assert_eq!(o.json.as_deref(), Some("-"));
        assert_eq!(o.report.as_deref(), Some("r.html"));
        assert_eq!((o.session_timeout_ms, o.prefix.as_str()), (4000, "/p"));
        assert_eq!(o.rate, Some(250.5));
        // Spaces around a list's commas are fine.
        assert_eq!(run(&["--pin", "3, 4"]).pin, [3, 4]);
        // A lone "-" is a value, not a flag; so is a negative number where one fits.
        assert_eq!(run(&["--json", "-"]).json.as_deref(), Some("-"));
        assert_eq!(run(&["--session-timeout", "-1"]).session_timeout_ms, -1);
    }

    #[test]
    fn value_size_is_value_bytes() {
        assert_eq!(run(&["--value-size", "20"]).value_bytes, 20);
        assert_eq!(run(&["--value-bytes", "30"]).value_bytes, 30);
        // Both: refused, as the hand parser did ("unknown option --value-bytes" then).
        let e = clap_error(&["run", "--value-size=20", "--value-bytes", "30"]);
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
        assert!(
            e.to_string()
                .contains("'--value-size <N>' cannot be used with '--value-bytes <N>'"),
            "{e}"
        );
    }

    /// As with the hand parser: a flag given twice keeps its last value.
    #[test]
    fn the_last_of_a_repeated_flag_counts() {
        let o = run(&["--sessions", "40", "--sessions=4", "--server-pid", "1,2"]);
        assert_eq!(o.sessions, 4);
        let o = run(&[
            "--server-pid",
            "1,2",
            "--server-pid",
            "3",
            "--pin",
            "1",
            "--pin",
            "2",
        ]);
        assert_eq!((o.server_pid, o.pin), (vec![3], vec![2]));
    }

    /// The checks after parsing keep the hand parser's words.
    #[test]
    fn bad_values_are_clear_errors() {
        for (args, want) in [
            (
                &["run", "--read-pct", "101"][..],
                "--read-pct must be 0..=100",
            ),
            (
                &["run", "--sessions", "0"],
                "--sessions, --inflight and --keys",
            ),
            (&["run", "--keys=0"], "--sessions, --inflight and --keys"),
            (
                &["run", "--threads", "40"],
                "--threads must be between 1 and",
            ),
            (
                &["run", "--threads", "0"],
                "--threads must be between 1 and",
            ),
            (
                &["run", "--value-bytes", "1000001"],
                "--value-bytes must be below",
            ),
            (&["run", "--duration", "0"], "--duration must be above 0"),
            (
                &["run", "--duration", "-1"],
                "--duration must be between 0 and 86400",
            ),
            (
                &["run", "--warmup", "86401"],
                "--warmup must be between 0 and 86400",
            ),
            (
                &["run", "--warmup", "nan"],
                "--warmup must be between 0 and 86400",
            ),
            (
                &["run", "--prefix", "/"],
                "--prefix must be an absolute path",
            ),
            (
                &["run", "--prefix", "p"],
                "--prefix must be an absolute path",
            ),
            (&["run", "--rate", "0"], "--rate must be a positive number"),
            (&["run", "--rate", "-5"], "--rate must be a positive number"),
            (
                &["run", "--workload", "sessions", "--rate", "5"],
                "--rate does not apply",
            ),
            (
                &["run", "--children", "0"],
                "--children must be 1..=1000000",
            ),
            (
                &["run", "--multi-ops", "1001"],
                "--multi-ops must be 1..=1000",
            ),
            (
                &["run", "--workload", "watch", "--sessions", "1"],
                "needs --sessions 2",
            ),
            (
                &["run", "--workload", "watch", "--threads", "2"],
                "runs on one thread",
            ),
            (
                &["sessions", "--count", "0"],
                "--count and --parallel must be",
            ),
            (
                &["sessions", "--parallel", "0"],
                "--count and --parallel must be",
            ),
            (
                &["sessions", "--hold", "-1"],
                "--hold must be between 0 and 86400",
            ),
            (
                &["report", "--out", "r.html"],
                "report: which result files?",
            ),
        ] {
            let err = refused(args);
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }

    /// Values clap cannot parse: its error names the flag and the value.
    #[test]
    fn malformed_values_name_their_flag() {
        for (args, flag, want) in [
            (
                &["run", "--sessions", "abc"][..],
                "--sessions",
                "invalid digit",
            ),
            (&["run", "--read-pct", "-1"], "--read-pct", "-1"),
            (
                &["run", "--workload", "nope"],
                "--workload",
                "one of rw, churn",
            ),
            (
                &["run", "--progress", "loud"],
                "--progress",
                "auto, on or off",
            ),
            (&["run", "--pin", "0,x"], "--pin", "\"x\": invalid digit"),
            (&["run", "--server-pid", "12,"], "--server-pid", "\"\""),
            (
                &["run", "--servers", "nohost"],
                "--servers",
                "expected host:port",
            ),
            (&["run", "--servers", ","], "--servers", "no address"),
            (
                &["sessions", "--server-pid", "1,2"],
                "--server-pid",
                "invalid digit",
            ),
            (
                &["compare", "--a", "x", "--b", "127.0.0.1:1"],
                "--a",
                "host:port",
            ),
            (
                &[
                    "compare",
                    "--a=127.0.0.1:1",
                    "--b=127.0.0.1:2",
                    "--pause-idle=maybe",
                ],
                "--pause-idle",
                "yes or no",
            ),
        ] {
            let e = clap_error(args);
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}: {e}");
            assert_eq!(e.exit_code(), 2);
            let msg = e.to_string();
            assert!(msg.contains(flag) && msg.contains(want), "{args:?}: {msg}");
        }
    }

    #[test]
    fn unknown_and_incomplete_flags_are_clap_errors_naming_them() {
        for (args, kind, name) in [
            (
                &["run", "--bogus", "1"][..],
                ErrorKind::UnknownArgument,
                "--bogus",
            ),
            (
                &["run", "--sesions", "4"],
                ErrorKind::UnknownArgument,
                "--sesions",
            ),
            (&["run", "stray"], ErrorKind::UnknownArgument, "stray"),
            (
                &["--sessions", "4"],
                ErrorKind::UnknownArgument,
                "--sessions",
            ),
            (
                &["sessions", "--rate", "4"],
                ErrorKind::UnknownArgument,
                "--rate",
            ),
            (
                &["report", "a.json", "--x", "1"],
                ErrorKind::UnknownArgument,
                "--x",
            ),
            (
                &["run", "--sessions"],
                ErrorKind::InvalidValue,
                "--sessions",
            ),
            (&["frob"], ErrorKind::InvalidSubcommand, "frob"),
            (
                &["compare", "--b", "127.0.0.1:1"],
                ErrorKind::MissingRequiredArgument,
                "--a",
            ),
            (
                &["report", "a.json"],
                ErrorKind::MissingRequiredArgument,
                "--out",
            ),
        ] {
            let e = clap_error(args);
            assert_eq!(e.kind(), kind, "{args:?}: {e}");
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(name), "{args:?}: {e}");
        }
        // A near miss gets clap's suggestion.
        assert!(clap_error(&["run", "--sesions", "4"])
            .to_string()
            .contains("'--sessions'"));
    }

    #[test]
    fn every_command_answers_help() {
        for (args, shows) in [
            (&["--help"][..], "sessions"),
            (&["-h"], "compare"),
            (&["help"], "report"),
            (&["run", "--help"], "--read-pct <P>"),
            (&["run", "-h"], "--workload <W>"),
            (&["help", "run"], "--rate <R>"),
            (&["compare", "--help"], "--pause-idle <yes|no>"),
            (&["help", "compare"], "--a <ADDRS>"),
            (&["report", "--help"], "--out <FILE.html>"),
            (&["sessions", "--help"], "--parallel <N>"),
            (&["sessions", "-h"], "--count <N>"),
            // --help wins over anything else on the line, even an error.
            (&["run", "--sessions", "0", "--help"], "--inflight <N>"),
        ] {
            let e = clap_error(args);
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{args:?}: {e}");
            assert_eq!(e.exit_code(), 0, "{args:?}");
            let text = e.to_string();
            assert!(text.contains(shows), "{args:?}: {text}");
            assert!(text.contains("Usage: loadgen"), "{args:?}: {text}");
        }
        // The defaults shown are the canonical workload's (the other direction of
        // defaults_are_the_canonical_workload).
        let run = clap_error(&["run", "--help"]).to_string();
        for want in [
            "[default: 127.0.0.1:2181]",
            "[default: 32]",
            "[default: 90]",
        ] {
            assert!(run.contains(want), "{want}: {run}");
        }
        assert!(run.contains("watch     session 0 sets a node"), "{run}");
    }

    #[test]
    fn version() {
        let e = clap_error(&["--version"]);
        assert_eq!(e.kind(), ErrorKind::DisplayVersion);
        assert_eq!(e.exit_code(), 0);
        assert_eq!(
            e.to_string().trim(),
            format!("loadgen {}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(clap_error(&["-V"]).kind(), ErrorKind::DisplayVersion);
    }

    fn compare(args: &[&str]) -> crate::compare::CompareOpts {
        let args = [
            &[
                "compare",
                "--a",
                "127.0.0.1:1",
                "--b",
                "127.0.0.2:2,127.0.0.3:3",
            ],
            args,
        ]
        .concat();
        match job(&args) {
            Ok(Job::Compare(c)) => c,
            Ok(_) => panic!("{args:?}: not a compare"),
            Err(e) => panic!("{args:?}: {e:#}"),
        }
    }

    #[test]
    fn compare_options() {
        let c = compare(&[]);
        assert_eq!((c.a.0.as_str(), c.b.0.as_str()), ("A", "B"));
        assert_eq!(c.a.1.to_string(), "127.0.0.1:1");
        assert_eq!(c.b.1.to_string(), "127.0.0.2:2,127.0.0.3:3");
        assert!(c.a.2.is_empty() && c.b.2.is_empty());
        assert_eq!(
            (c.reads, c.rounds, c.pause_idle),
            (vec![100, 90, 50, 0], 2, false)
        );
        // The base is the canonical run but for what each side and round sets.
        let mut want = RunOpts::canonical();
        want.sessions = 8;
        let base = compare(&["--sessions", "8"]).base;
        assert_eq!(format!("{base:?}"), format!("{want:?}"));

        let c = compare(&[
            "--a-name=paddock",
            "--b-name",
            "zookeeper",
            "--a-pid",
            "1",
            "--b-pid=2,3",
            "--reads",
            "0, 50",
            "--rounds",
            "3",
            "--pause-idle",
            "yes",
        ]);
        assert_eq!((c.a.0.as_str(), c.b.0.as_str()), ("paddock", "zookeeper"));
        assert_eq!((c.a.2, c.b.2), (vec![1], vec![2, 3]));
        assert_eq!((c.reads, c.rounds, c.pause_idle), (vec![0, 50], 3, true));
        // Other workloads compare once per round, and --reads is refused for them.
        assert_eq!(compare(&["--workload", "churn"]).reads, [0]);
        for (args, want) in [
            (
                &["--workload", "seq", "--reads", "50"][..],
                "--reads applies to rw only",
            ),
            (&["--reads", "101"], "--reads: a list of read percentages"),
            (&["--rounds", "0"], "--rounds must be at least 1"),
            (
                &["--pause-idle", "yes", "--a-pid", "1"],
                "needs --a-pid and --b-pid",
            ),
            (
                &["--server", "127.0.0.1:1"],
                "compare: --server does not apply",
            ),
            (&["--servers", "x"], "compare: --servers does not apply"),
            (&["--read-pct", "50"], "compare: --read-pct does not apply"),
            (&["--server-pid=1"], "compare: --server-pid does not apply"),
            (&["--threads", "64"], "--threads must be between 1 and"),
        ] {
            let args = [
                &["compare", "--a", "127.0.0.1:1", "--b", "127.0.0.2:2"],
                args,
            ]
            .concat();
            let err = refused(&args);
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }

    #[test]
    fn report_takes_files_among_its_flags() {
        match job(&[
            "report",
            "a.json",
            "--out",
            "r.html",
            "b.json",
            "--title=T",
            "c.json",
        ]) {
            Ok(Job::Report { files, out, title }) => {
                assert_eq!(files, ["a.json", "b.json", "c.json"]);
                assert_eq!((out.as_str(), title.as_str()), ("r.html", "T"));
            }
            _ => panic!("not a report"),
        }
        match job(&["report", "--out=r.html", "a.json"]) {
            Ok(Job::Report { title, .. }) => assert_eq!(title, "loadgen results"),
            _ => panic!("not a report"),
        }
    }

    #[test]
    fn sessions_options() {
        let Ok(Job::Sessions(h)) = job(&["sessions"]) else {
            panic!("not sessions")
        };
        assert_eq!(h.server.to_string(), "127.0.0.1:2181");
        assert_eq!(
            (h.count, h.hold, h.server_pid),
            (10_000, Duration::from_secs(10), None)
        );
        assert_eq!((h.session_timeout_ms, h.parallel), (30_000, 100));
        let Ok(Job::Sessions(h)) = job(&[
            "sessions",
            "--servers=127.0.0.1:1,127.0.0.1:2",
            "--count",
            "5",
            "--hold=0.5",
            "--server-pid",
            "7",
            "--session-timeout",
            "6000",
            "--parallel",
            "2",
        ]) else {
            panic!("not sessions")
        };
        assert_eq!(h.server.to_string(), "127.0.0.1:1,127.0.0.1:2");
        assert_eq!(
            (h.count, h.hold, h.server_pid),
            (5, Duration::from_millis(500), Some(7))
        );
        assert_eq!((h.session_timeout_ms, h.parallel), (6000, 2));
    }

    /// A command line as a script writes it.
    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    /// The command lines of tuning/*.sh (numbers for their variables) and of
    /// loadgen/tests/workloads.rs parse, to what they meant.
    #[test]
    fn the_scripts_command_lines_parse() {
        // batching.sh
        let o = run(&words(
            "--server 127.0.0.1:24781 --read-pct 0 --sessions 16 --inflight 1 --duration 1 \
             --warmup 0",
        ));
        assert_eq!((o.read_pct, o.sessions, o.inflight), (0, 16, 1));
        let o = run(&words(
            "--server 127.0.0.1:24781 --read-pct 0 --sessions 256 --inflight 1 --duration 5 \
             --warmup 1 --server-pid 4242 --json /tmp/w/r.json",
        ));
        assert_eq!(o.server_pid, [4242]);
        assert_eq!(o.json.as_deref(), Some("/tmp/w/r.json"));
        // bench.sh
        let o = run(&words("--server 127.0.0.1:24782 --duration 5 --warmup 1"));
        assert_eq!(o.server.to_string(), "127.0.0.1:24782");
        let o = run(&words(
            "--servers 127.0.0.4:24781,127.0.0.5:24781,127.0.0.6:24781 --duration 5 --warmup 1",
        ));
        assert_eq!(o.server.0.len(), 3);
        const RUN: &str = "--duration 5 --warmup 2 --rounds 3 --reads 100,90,50,0 \
                           --a-name paddock --b-name zookeeper";
        let c = compare(&words(&format!(
            "--a-pid 11 --b-pid 12 {RUN} --pause-idle yes --report /o/bench-standalone.html"
        )));
        assert_eq!((c.rounds, c.pause_idle), (3, true));
        assert_eq!(c.base.duration, Duration::from_secs(5));
        assert_eq!(c.base.report.as_deref(), Some("/o/bench-standalone.html"));
        for w in ["churn", "seq", "children", "multi", "sessions", "watch"] {
            let c = compare(&words(&format!(
                "--workload {w} --a-pid 11 --b-pid 12 --duration 5 --warmup 2 --rounds 2 \
                 --a-name paddock --b-name zookeeper --prefix /bench-{w} --pause-idle yes \
                 --report /o/bench-{w}.html"
            )));
            assert_eq!(c.base.workload.name(), w);
            assert_eq!(c.base.prefix, format!("/bench-{w}"));
            assert_eq!(c.reads, [0]);
        }
        let Ok(Job::Sessions(h)) = job(&words(
            "sessions --server 127.0.0.1:24781 --count 10000 --hold 10 --server-pid 11",
        )) else {
            panic!("not sessions")
        };
        assert_eq!((h.count, h.server_pid), (10_000, Some(11)));
        let c = compare(&words(&format!(
            "--a-pid 1,2,3 --b-pid 4,5,6 {RUN} --report /o/bench-ensemble.html"
        )));
        assert_eq!((c.a.2, c.b.2), (vec![1, 2, 3], vec![4, 5, 6]));
        // ab.sh
        let c = compare(&words(
            "--a-pid 1 --b-pid 2 --duration 5 --warmup 2 --rounds 3 --reads 0,50 --a-name A \
             --b-name B --pause-idle yes",
        ));
        assert_eq!(c.reads, [0, 50]);
        // ensemble.sh
        let o = run(&words(
            "--server 127.0.0.1:24801 --sessions 12 --inflight 16 --read-pct 100 \
             --value-bytes 100 --keys 1000 --warmup 2 --duration 10 --prefix /lg24801",
        ));
        assert_eq!(
            (o.sessions, o.read_pct, o.prefix.as_str()),
            (12, 100, "/lg24801")
        );
        // series.sh
        let o = run(&words(
            "--server 127.0.0.1:24781 --read-pct 50 --duration 5 --warmup 2 --server-pid 99 \
             --progress off",
        ));
        assert_eq!((o.read_pct, o.progress), (50, Progress::Off));
        // storage.sh
        let o = run(&words(
            "--server 127.0.0.1:24781 --keys 1000000 --read-pct 0 --sessions 32 --inflight 16 \
             --duration 20 --warmup 0",
        ));
        assert_eq!((o.keys, o.duration), (1_000_000, Duration::from_secs(20)));
        // loadgen/tests/workloads.rs
        let o = run(&words(
            "--server 127.0.0.1:5 --warmup 0.3 --duration 1 --sessions 6 --inflight 4 --json - \
             --rate 500 --threads 2 --read-pct 100 --prefix /t-rate",
        ));
        assert_eq!(o.warmup, Duration::from_millis(300));
        assert_eq!(
            (o.rate, o.threads, o.json.as_deref()),
            (Some(500.0), 2, Some("-"))
        );
    }
}
