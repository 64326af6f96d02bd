//! ZooKeeper's tree digest (3.6+, digest version 2): a CRC-32 per node, summed.
//!
//! A node's digest is the CRC-32 of its path (the root as ""), its data, and 60 bytes of
//! its stored Stat (czxid, mzxid, pzxid, ctime, mtime, version, cversion, aversion,
//! ephemeralOwner, big-endian). Nodes under `/zookeeper/` count 0. The tree's digest is the
//! wrapping 64-bit sum over all nodes, so a change adds the new version's digest and
//! subtracts the old one's. ZooKeeper writes it after every txn in the log and at the end
//! of every snapshot; equal digests after recovery mean equal trees.

use super::Node;

pub const DIGEST_VERSION: i32 = 2;

pub fn node_digest(path: &str, data: Option<&[u8]>, n: &Node) -> u32 {
    if path.starts_with("/zookeeper/") {
        return 0;
    }
    let path = if path == "/" { "" } else { path };
    let mut h = crc32fast::Hasher::new();
    h.update(path.as_bytes());
    if let Some(d) = data {
        h.update(d);
    }
    let mut b = [0u8; 60];
    b[0..8].copy_from_slice(&n.czxid.to_be_bytes());
    b[8..16].copy_from_slice(&n.mzxid.to_be_bytes());
    b[16..24].copy_from_slice(&n.pzxid.to_be_bytes());
    b[24..32].copy_from_slice(&n.ctime.to_be_bytes());
    b[32..40].copy_from_slice(&n.mtime.to_be_bytes());
    b[40..44].copy_from_slice(&n.version.to_be_bytes());
    b[44..48].copy_from_slice(&n.cversion.to_be_bytes());
    b[48..52].copy_from_slice(&n.aversion.to_be_bytes());
    b[52..60].copy_from_slice(&n.ephemeral_owner.to_be_bytes());
    h.update(&b);
    h.finalize()
}
