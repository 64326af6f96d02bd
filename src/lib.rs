//! Paddock: a ZooKeeper-compatible coordination server. The map is ARCHITECTURE.md.

pub mod acl;
pub mod admin;
pub mod config;
pub mod log;
pub mod logger;
pub mod mutation;
pub mod net;
pub mod proto;
pub mod quorum;
pub mod sasl;
pub mod server;
pub mod session;
pub mod snap;
pub mod start;
pub mod stats;
pub mod testing;
pub mod tls;
pub mod tree;
pub mod txn;
pub mod types;
pub mod watch;
pub mod zab;

/// Stops the server: the one way out when it cannot go on without risking what it has
/// promised (a log write, sync, roll or truncation that failed, an epoch it cannot
/// persist, a leader's snapshot it cannot install). Said in the log and on stderr; exit
/// code 3. Recovery on restart starts from what is on disk.
///
/// Under the simulator (testing/) the server is a value in a test, not a process: there
/// it unwinds with a `Fatal` the simulator catches, and the server counts as crashed.
pub fn fatal(why: impl std::fmt::Display) -> ! {
    if SIMULATED.with(|s| s.get()) {
        // Not a panic: no hook prints it; the simulator catches it as a crash.
        std::panic::resume_unwind(Box::new(Fatal(why.to_string())));
    }
    ::log::error!("stopping: {why}");
    eprintln!("paddock: stopping: {why}");
    std::process::exit(3)
}

/// Why a simulated server stopped (`fatal`).
#[derive(Debug)]
pub struct Fatal(pub String);

thread_local! {
    /// This thread runs simulated servers: `fatal` unwinds instead of exiting.
    pub static SIMULATED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
