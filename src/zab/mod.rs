//! ZooKeeper's quorum protocols as pure state machines: fast leader election
//! (`election`) and the atomic broadcast that follows it (`broadcast`: discovery,
//! synchronisation, broadcast), plus the byte formats of both ports (`wire`, `packet`).
//! Driven by the quorum shell's sockets and clock in production and by `testing` in tests.

pub mod broadcast;
pub mod election;
pub mod packet;
pub mod wire;
