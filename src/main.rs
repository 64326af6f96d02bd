//! `paddock [COMMAND]`: the server (`start-foreground [zoo.cfg]`, or no command for the
//! embedded default config: port 2181, data in ./paddock-data) and its tools; `--help`
//! lists them (clap).

use anyhow::Context;
use paddock::config::Config;
use std::path::{Path, PathBuf};

/// mimalloc: requests are allocated on a reactor and freed on the writer (and replies the
/// other way round); glibc's arenas made those cross-thread frees a third of the writer's
/// CPU under a write load (perf, loadgen 100% setData). See the README for the figures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Paddock: a ZooKeeper-compatible coordination server. Without a command it starts on
/// the embedded default config (port 2181, data in ./paddock-data).
#[derive(clap::Parser)]
#[command(name = "paddock", version = paddock::admin::VERSION)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Start in the foreground, like zkServer.sh start-foreground (no CONFIG: the embedded
    /// default).
    #[command(name = "start-foreground", visible_alias = "start")]
    StartForeground { config: Option<PathBuf> },
    /// What zkServer.sh status prints: the config, the client port, the Mode (exit 1 when
    /// nothing answers).
    Status { config: Option<PathBuf> },
    /// Keep the newest COUNT (>= 3) snapshots and the logs they need, like zkCleanup.sh.
    Purge {
        config: Option<PathBuf>,
        /// Snapshots to keep (default: autopurge.snapRetainCount).
        #[arg(short = 'n', value_name = "COUNT")]
        count: Option<usize>,
    },
    /// Print a txn log segment (log.<zxid>).
    DumpLog {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print a snapshot (snapshot.<zxid>).
    DumpSnapshot {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Ask a ZooKeeper or Paddock election port (3888) whom it follows.
    ElectionProbe {
        #[arg(value_name = "HOST:PORT")]
        addr: String,
    },
    /// Ask a leader's quorum port (2888) for its epoch (LEADERINFO).
    LearnerProbe {
        #[arg(value_name = "HOST:PORT")]
        addr: String,
    },
    /// Print the version, as zkServer.sh version does.
    Version,
}

fn main() {
    paddock::logger::init();
    if let Err(e) = run() {
        // One clear line per cause; no backtrace for an operator's mistake.
        eprintln!("paddock: {e:#}");
        std::process::exit(1);
    }
}

fn load(config: Option<&Path>) -> anyhow::Result<Config> {
    match config {
        Some(p) => {
            Config::load(p).with_context(|| format!("invalid configuration {}", p.display()))
        }
        None => Ok(Config::embedded_default()),
    }
}

fn run() -> anyhow::Result<()> {
    // Usage errors (an unknown command or flag, a missing argument) are clap's: it names
    // the bad one and exits 2.
    let cli = <Cli as clap::Parser>::parse();
    let cfg = match cli.cmd {
        None => Config::embedded_default(),
        Some(Cmd::StartForeground { config }) => load(config.as_deref())?,
        Some(Cmd::DumpLog { file, json }) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            paddock::snap::dump::dump_log(&file, json, &mut out)
                .with_context(|| file.display().to_string())?;
            return Ok(());
        }
        Some(Cmd::DumpSnapshot { file, json }) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            paddock::snap::dump::dump_snapshot(&file, json, &mut out)
                .with_context(|| file.display().to_string())?;
            return Ok(());
        }
        Some(Cmd::Purge { config, count }) => return purge(config.as_deref(), count),
        Some(Cmd::Status { config }) => return status(config.as_deref()),
        Some(Cmd::ElectionProbe { addr }) => return election_probe(&addr),
        Some(Cmd::LearnerProbe { addr }) => return learner_probe(&addr),
        Some(Cmd::Version) => {
            println!(
                "Apache ZooKeeper-compatible Paddock, version {}",
                paddock::admin::VERSION
            );
            return Ok(());
        }
    };
    let running = paddock::start::start(cfg).context("cannot start")?;
    let _ = running.writer.join();
    Ok(())
}

/// `paddock purge [zoo.cfg] [-n COUNT]`, like zkCleanup.sh.
fn purge(config: Option<&Path>, count: Option<usize>) -> anyhow::Result<()> {
    let cfg = load(config)?;
    let retain = count.unwrap_or(cfg.autopurge_snap_retain_count as usize);
    let snap = cfg.data_dir.join("version-2");
    let logs = cfg.data_log_dir.join("version-2");
    let done = paddock::snap::purge::purge(&snap, &logs, retain)
        .with_context(|| format!("purging {}", snap.display()))?;
    for p in &done.removed {
        println!("removed {}", p.display());
    }
    println!(
        "kept {} snapshot(s), removed {} file(s)",
        done.kept_snapshots.len(),
        done.removed.len()
    );
    Ok(())
}

/// `paddock status [zoo.cfg]`, like `zkServer.sh status`: asks the server on the config's
/// client port for `srvr` and prints its Mode. Exits 1 when nothing answers.
fn status(config: Option<&Path>) -> anyhow::Result<()> {
    let cfg = load(config)?;
    println!(
        "Using config: {}",
        config.map_or("(embedded default)".into(), |p| p.display().to_string())
    );
    let host = match cfg.client_port_address {
        Some(a) if !a.is_unspecified() => a,
        _ => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    };
    let shown = if cfg.client_port_address.is_some_and(|a| !a.is_unspecified()) {
        host.to_string()
    } else {
        "localhost".to_string()
    };
    println!(
        "Client port found: {}. Client address: {shown}. Client SSL: false.",
        cfg.client_port
    );
    let addr = std::net::SocketAddr::new(host, cfg.client_port);
    let mode = (|| -> std::io::Result<Option<String>> {
        use std::io::{Read, Write};
        let t = std::time::Duration::from_secs(5);
        let mut c = std::net::TcpStream::connect_timeout(&addr, t)?;
        c.set_read_timeout(Some(t))?;
        c.write_all(b"srvr")?;
        let mut out = String::new();
        c.read_to_string(&mut out)?;
        Ok(out
            .lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_owned))
    })();
    match mode {
        Ok(Some(m)) => {
            println!("Mode: {m}");
            Ok(())
        }
        _ => {
            eprintln!("Error contacting service. It is probably not running.");
            std::process::exit(1);
        }
    }
}

/// Connects to `addr` for a probe, with 5 s for the connect and each read, and sends
/// `hello`.
fn probe_connect(addr: &str, hello: &[u8]) -> anyhow::Result<std::net::TcpStream> {
    use std::io::Write;
    use std::net::ToSocketAddrs;
    let sa = addr
        .to_socket_addrs()
        .with_context(|| addr.to_string())?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{addr}: no address"))?;
    let t = std::time::Duration::from_secs(5);
    let mut c = std::net::TcpStream::connect_timeout(&sa, t).with_context(|| addr.to_string())?;
    c.set_read_timeout(Some(t))?;
    c.write_all(hello)?;
    Ok(c)
}

/// Reads from a probe's connection until `decode` finds `what` in the bytes so far.
fn probe_read<T>(
    c: &mut std::net::TcpStream,
    addr: &str,
    what: &str,
    mut decode: impl FnMut(&[u8]) -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(v) = decode(&buf)? {
            return Ok(v);
        }
        let k = c
            .read(&mut chunk)
            .with_context(|| format!("{addr}: waiting for {what}"))?;
        if k == 0 {
            anyhow::bail!("{addr} closed the connection without {what}");
        }
        buf.extend_from_slice(&chunk[..k]);
    }
}

/// `paddock election-probe HOST:PORT`: connects to an election port as a server that is
/// in nobody's list (so nothing is counted), says it is LOOKING, and prints the vote the
/// server answers with: its state, the leader it backs, and its server list.
fn election_probe(addr: &str) -> anyhow::Result<()> {
    use paddock::zab::election::{Notification, PeerState, Vote};
    use paddock::zab::wire;
    const PROBE_SID: i64 = 1 << 40; // above any real server id: the server keeps the connection
    let looking = Notification {
        from: PROBE_SID,
        state: PeerState::Looking,
        vote: Vote {
            leader: PROBE_SID,
            zxid: 0,
            peer_epoch: 0,
        },
        election_epoch: 1,
    };
    // The 40-byte form: no version, so the server parses no server list from us.
    let mut msg = wire::encode_notification(&looking, b"")[..36].to_vec();
    msg.extend_from_slice(&[0; 4]);
    let mut hello = wire::encode_initial(PROBE_SID, "127.0.0.1:1");
    hello.extend_from_slice(&wire::frame(&msg));
    let mut c = probe_connect(addr, &hello)?;
    let (n, config) = probe_read(&mut c, addr, "a vote", |buf| {
        match wire::decode_frame(buf).map_err(|e| anyhow::anyhow!("{e}"))? {
            None => Ok(None),
            Some((payload, _)) => {
                let (n, config) =
                    wire::decode_notification(0, payload).map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(Some((n, config.to_vec())))
            }
        }
    })?;
    println!(
        "state {:?}, leader {}, zxid 0x{:x}, peer epoch {}, election epoch {}",
        n.state, n.vote.leader, n.vote.zxid, n.vote.peer_epoch, n.election_epoch
    );
    if !config.is_empty() {
        println!("{}", String::from_utf8_lossy(&config).trim_end());
    }
    Ok(())
}

/// `paddock learner-probe HOST:PORT`: connects to a leader's quorum port as an observer in
/// nobody's list, sends OBSERVERINFO, and prints the LEADERINFO the leader answers with
/// (the epoch it leads and its protocol version). Then it hangs up; nothing is synced.
fn learner_probe(addr: &str) -> anyhow::Result<()> {
    use paddock::zab::packet::{kind, LearnerInfo, QuorumPacket, PROTOCOL_VERSION};
    let info = LearnerInfo {
        server_id: 1 << 40,
        protocol_version: PROTOCOL_VERSION,
        config_version: 0,
    };
    let mut w = paddock::proto::Writer::new();
    QuorumPacket::new(kind::OBSERVERINFO, 0, Some(info.encode())).encode(&mut w);
    let mut c = probe_connect(addr, &w.buf)?;
    let p = probe_read(&mut c, addr, "LEADERINFO", |buf| {
        Ok(QuorumPacket::decode(buf, 1 << 20)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .map(|(p, _)| p))
    })?;
    anyhow::ensure!(
        p.kind == kind::LEADERINFO,
        "{addr} answered with packet type {}, not LEADERINFO",
        p.kind
    );
    let version = p
        .data
        .as_deref()
        .filter(|d| d.len() >= 4)
        .map(|d| i32::from_be_bytes(d[0..4].try_into().unwrap()))
        .unwrap_or(0);
    println!(
        "LEADERINFO: epoch {}, zxid 0x{:x}, protocol version 0x{version:x}",
        p.zxid >> 32,
        p.zxid
    );
    Ok(())
}
