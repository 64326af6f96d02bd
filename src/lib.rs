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
pub mod testing;
pub mod tree;
pub mod txn;
pub mod types;
pub mod watch;
pub mod zab;
