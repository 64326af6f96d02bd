//! Paddock: a ZooKeeper-compatible coordination server. The map is ARCHITECTURE.md.

pub mod acl;
pub mod admin;
pub mod config;
pub mod log;
pub mod logger;
pub mod net;
pub mod proto;
pub mod quorum;
pub mod server;
pub mod session;
pub mod snap;
pub mod start;
pub mod testing;
pub mod tree;
pub mod txn;
pub mod types;
pub mod watch;
pub mod zab;

/// Stops the server: the one way out when it cannot go on without risking what it has
/// promised (a log write, sync, roll or truncation that failed, an epoch it cannot
/// persist, a leader's snapshot it cannot install). Said in the log and on stderr; exit
/// code 3. Recovery on restart starts from what is on disk.
pub fn fatal(why: impl std::fmt::Display) -> ! {
    ::log::error!("stopping: {why}");
    eprintln!("paddock: stopping: {why}");
    std::process::exit(3)
}
