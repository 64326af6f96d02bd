//! Integration tests: real Paddock processes on loopback, driven by the published
//! `zookeeper-client` crate and by raw sockets.

mod harness;

mod acl;
mod bad_input;
mod codec_fuzz;
mod concurrency;
mod config_refusal;
mod crash;
mod disk_full;
mod election_net;
mod ensemble;
mod faults;
mod four_letter;
mod limits;
mod multi;
mod ops;
mod quorum_tls;
mod reaping;
mod restart;
mod sasl;
mod session_end;
mod sessions;
mod snapshots;
mod tidy;
mod tls;
mod visibility;
mod watches;
