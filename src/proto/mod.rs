//! The ZooKeeper client protocol: jute codec, records, numbers, framing.

pub mod adler32;
pub mod frame;
pub mod jute;
pub mod ops;
pub mod records;

pub use jute::{DecodeError, Reader, Writer};
pub use ops::ZkError;
pub use records::*;
