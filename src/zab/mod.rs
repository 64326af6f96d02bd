//! ZooKeeper's quorum protocols as pure state machines: fast leader election now; the
//! atomic broadcast (discovery, synchronisation, broadcast) comes next. Driven by the
//! quorum thread's sockets and clock in production and by `testing::sim` in tests.

pub mod election;
pub mod packet;
pub mod wire;
