//! `paddock [start-foreground [zoo.cfg]]`: runs a standalone server.
//! Without a config file it uses the embedded default (port 2181, data in ./paddock-data).

use anyhow::Context;
use paddock::config::Config;

/// mimalloc: requests are allocated on a reactor and freed on the writer (and replies the
/// other way round); glibc's arenas made those cross-thread frees a third of the writer's
/// CPU under a write load (perf, loadgen 100% setData). See the README for the figures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage:
  paddock                              start on the embedded default config (port 2181, ./paddock-data)
  paddock start-foreground [zoo.cfg]   start in the foreground, like zkServer.sh start-foreground
  paddock version";

fn main() {
    paddock::logger::init();
    if let Err(e) = run() {
        // One clear line per cause; no backtrace for an operator's mistake.
        eprintln!("paddock: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match args.first().map(String::as_str) {
        None => Config::embedded_default(),
        Some("start-foreground") | Some("start") => match args.get(1) {
            Some(p) => Config::load(std::path::Path::new(p))
                .with_context(|| format!("invalid configuration {p}"))?,
            None => Config::embedded_default(),
        },
        Some("version") => {
            println!(
                "Apache ZooKeeper-compatible Paddock, version {}",
                paddock::admin::VERSION
            );
            return Ok(());
        }
        Some("-h") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            return Ok(());
        }
        Some(other) => {
            eprintln!("unknown command {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let running = paddock::server::start::start(cfg).context("cannot start")?;
    let _ = running.writer.join();
    Ok(())
}
