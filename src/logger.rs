//! Logging to stderr through `env_logger`: one line per record,
//! `<UTC date and time> [myid:<server id>] <LEVEL> [<thread>] <target> - <message>`.
//! `PADDOCK_LOG` filters as env_logger's directives do: a level (`debug`), per module
//! (`info,paddock::quorum=debug`), `off`; default `info`. A spec it cannot read is said
//! once on stderr and ignored.

use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// The server id lines carry (`myid`); 0 until the configuration names one (standalone).
static SERVER_ID: AtomicI64 = AtomicI64::new(0);

/// The server id for the lines that follow.
pub fn set_server_id(id: i64) {
    SERVER_ID.store(id, Relaxed);
}

pub fn init() {
    let mut b = env_logger::Builder::new();
    b.filter_level(log::LevelFilter::Info);
    if let Ok(spec) = std::env::var("PADDOCK_LOG") {
        b.parse_filters(&spec);
    }
    b.target(env_logger::Target::Stderr);
    b.format(|buf, r| {
        let t = std::thread::current();
        // As ZooKeeper's log4j lines: "[myid:]" for a standalone server.
        let id = match SERVER_ID.load(Relaxed) {
            0 => String::new(),
            id => id.to_string(),
        };
        writeln!(
            buf,
            "{} [myid:{id}] {} [{}] {} - {}",
            buf.timestamp_millis(),
            r.level(),
            t.name().unwrap_or("?"),
            r.target(),
            r.args()
        )
    });
    // A second init (tests, embedders) keeps the first logger.
    let _ = b.try_init();
}
