//! Snapshots: `version-2/snapshot.<zxid hex>`, Apache ZooKeeper 3.8's format.
//!
//! File = FileHeader · Sessions · AclCache · Node* · "/" · Seal · ZxidDigest · Seal
//! FileHeader = int magic "ZKSN" · int version (2) · long dbid (-1)
//! Sessions   = int count · (long id · int timeoutMs)*
//! AclCache   = int count · (long ref · vector<ACL>)*      (node ref -1 = world:anyone ALL)
//! Node       = ustring path ("" for the root) · buffer data · long aclRef · StatPersisted
//! Seal       = long Adler32 of every byte before it · ustring "/"
//! ZxidDigest = long zxid · int version (2) · long digest   (zero when there is none)
//!
//! Nodes are written parents first, each subtree in one run (pre-order), as ZooKeeper
//! writes them. A snapshot of Paddock's is exact (taken at a txn boundary by a forked child,
//! snap/fork.rs), where ZooKeeper's are fuzzy; the reader accepts both.
//!
//! Holds: a snapshot file is complete or absent: it is written under a temporary name,
//! fsynced, renamed, and the directory fsynced. A file that fails any check is never
//! loaded (start-up falls back to the next older one).
//! Not here: the fork and when to snapshot (fork.rs); building the tree from what
//! is read (server/start.rs).

pub mod dump;
pub mod fork;
pub mod purge;

use crate::proto::records::{read_acls, write_acls, Acl};
use crate::proto::{Reader, Writer};
use crate::tree::{AclRef, DataTree, FastMap};
use crate::types::Zxid;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub const SNAP_MAGIC: i32 = 0x5A4B534E;
pub const SNAP_VERSION: i32 = 2;
pub const SNAP_DBID: i64 = -1;
pub const DIGEST_VERSION: i32 = 2;
/// A temporary snapshot's name starts with this, so no reader takes it for a snapshot.
pub const TMP_PREFIX: &str = "tmp.snapshot.";

pub use crate::proto::adler32::Adler32;

pub fn snapshot_name(zxid: Zxid) -> String {
    format!("snapshot.{zxid:x}")
}

/// Snapshots in `dir`, newest first. Compressed ones (`.gz`, `.snappy`, written by a
/// ZooKeeper configured for them) are listed with `compressed` set; Paddock cannot read them.
pub fn list_snapshots(dir: &Path) -> io::Result<Vec<SnapFile>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("snapshot.") else {
            continue;
        };
        let (hex, ext) = rest.split_once('.').unwrap_or((rest, ""));
        if let Ok(zxid) = i64::from_str_radix(hex, 16) {
            v.push(SnapFile {
                zxid,
                path: e.path(),
                compressed: !ext.is_empty(),
            });
        }
    }
    v.sort_by_key(|s| std::cmp::Reverse(s.zxid));
    Ok(v)
}

#[derive(Debug, Clone)]
pub struct SnapFile {
    pub zxid: Zxid,
    pub path: PathBuf,
    pub compressed: bool,
}

/// What a snapshot is written from: the writer's state, frozen (in the forked child).
pub struct Source<'a> {
    pub tree: &'a DataTree,
    pub sessions: &'a [(i64, i32)],
    pub acls: &'a FastMap<Vec<Acl>, AclRef>,
    /// (zxid, tree digest) as of the snapshot, or None to write ZooKeeper's "no digest".
    pub digest: Option<(Zxid, i64)>,
}

/// A byte sink that keeps the running checksum of everything written.
struct Out<W: Write> {
    w: W,
    sum: Adler32,
    buf: Writer,
    written: u64,
}

impl<W: Write> Out<W> {
    fn drain(&mut self) -> io::Result<()> {
        self.sum.update(&self.buf.buf);
        self.w.write_all(&self.buf.buf)?;
        self.written += self.buf.buf.len() as u64;
        self.buf.buf.clear();
        Ok(())
    }
    fn maybe_drain(&mut self) -> io::Result<()> {
        if self.buf.buf.len() >= 1 << 18 {
            self.drain()?;
        }
        Ok(())
    }
    fn seal(&mut self) -> io::Result<()> {
        self.drain()?;
        let v = self.sum.value() as i64;
        self.buf.i64(v).string("/");
        self.drain()
    }
}

/// Writes the whole snapshot to `w`; returns its size in bytes.
pub fn serialize<W: Write>(src: &Source<'_>, w: W) -> io::Result<u64> {
    let mut out = Out {
        w,
        sum: Adler32::default(),
        buf: Writer::with_capacity(1 << 18),
        written: 0,
    };
    out.buf.i32(SNAP_MAGIC).i32(SNAP_VERSION).i64(SNAP_DBID);
    out.buf.i32(src.sessions.len() as i32);
    for &(id, timeout) in src.sessions {
        out.buf.i64(id).i32(timeout);
    }
    // ACL refs 1, 2, ... in the table's order; nodes find theirs by pointer.
    let mut refs: FastMap<*const crate::tree::AclList, i64> = FastMap::default();
    out.buf.i32(src.acls.len() as i32);
    for (i, (list, shared)) in src.acls.iter().enumerate() {
        let r = i as i64 + 1;
        refs.insert(triomphe::Arc::as_ptr(shared), r);
        out.buf.i64(r);
        write_acls(&mut out.buf, list);
    }
    let mut failed = None;
    src.tree.walk(|path, node| {
        if failed.is_some() {
            return;
        }
        let aref = match refs.get(&triomphe::Arc::as_ptr(&node.acl)) {
            Some(&r) => r,
            None => {
                // Not interned (cannot happen for nodes made by txns): find it by value.
                match src.acls.iter().position(|(l, _)| l[..] == node.acl[..]) {
                    Some(i) => i as i64 + 1,
                    None => {
                        failed = Some(io::Error::other(format!(
                            "{path}: ACL missing from the ACL cache"
                        )));
                        return;
                    }
                }
            }
        };
        out.buf.string(if path == "/" { "" } else { path });
        out.buf.opt_buffer(&node.data());
        out.buf
            .i64(aref)
            .i64(node.czxid)
            .i64(node.mzxid)
            .i64(node.ctime)
            .i64(node.mtime)
            .i32(node.version)
            .i32(node.cversion)
            .i32(node.aversion)
            .i64(node.ephemeral_owner)
            .i64(node.pzxid);
        if let Err(e) = out.maybe_drain() {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    out.buf.string("/");
    out.seal()?;
    let (zxid, digest) = src.digest.unwrap_or((0, 0));
    out.buf.i64(zxid).i32(DIGEST_VERSION).i64(digest);
    out.seal()?;
    out.w.flush()?;
    Ok(out.written)
}

/// Writes `snapshot.<zxid>` into `dir`: temporary name, fsync, rename, fsync of the
/// directory. Returns the final path and the size. On failure the temporary file is removed.
pub fn write_file(dir: &Path, zxid: Zxid, src: &Source<'_>) -> io::Result<(PathBuf, u64)> {
    let tmp = dir.join(format!("{TMP_PREFIX}{zxid:x}"));
    let done = dir.join(snapshot_name(zxid));
    let result = (|| {
        let f = File::create(&tmp)?;
        let mut bw = io::BufWriter::with_capacity(1 << 20, f);
        let n = serialize(src, &mut bw)?;
        let f = bw.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        // Read again only by a start-up or a learner's rebuild: as the log's records
        // do (log/mod.rs, DROP_BEHIND), the synced pages leave the page cache. Advice:
        // a failure costs memory only.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        drop(f);
        std::fs::rename(&tmp, &done)?;
        File::open(dir)?.sync_all()?;
        Ok(n)
    })();
    match result {
        Ok(n) => Ok((done, n)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Removes temporary snapshots a crash left behind.
pub fn remove_temporaries(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            std::fs::remove_file(e.path())?;
            n += 1;
        }
    }
    Ok(n)
}

/// StatPersisted: what a snapshot stores of a node's Stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

/// One node as read from a snapshot. `path` is "/" for the root (stored as "").
pub struct NodeRecord<'a> {
    pub path: &'a str,
    pub data: Option<&'a [u8]>,
    pub acl_ref: i64,
    pub stat: StatPersisted,
}

/// What a snapshot holds besides its nodes.
#[derive(Debug, Default)]
pub struct Summary {
    pub sessions: Vec<(i64, i32)>,
    pub acls: Vec<(i64, Vec<Acl>)>,
    pub nodes: u64,
    /// (zxid, digest) of the ZxidDigest trailer; None when absent or zero.
    pub digest: Option<(Zxid, i64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    #[error("not a snapshot (bad magic 0x{0:08x})")]
    Magic(i32),
    #[error("unsupported snapshot version {0}")]
    Version(i32),
    #[error("truncated or malformed at byte {0}")]
    Malformed(usize),
    #[error("checksum mismatch at byte {at}: stored 0x{stored:x}, computed 0x{computed:x}")]
    Checksum {
        at: usize,
        stored: u32,
        computed: u32,
    },
}

/// Reads a whole snapshot from its bytes, checking every seal; calls `node` per node in
/// file order. Call it once with a no-op `node` to validate before building anything.
pub fn parse<'a>(
    bytes: &'a [u8],
    mut node: impl FnMut(&Summary, NodeRecord<'a>) -> Result<(), NodeError>,
) -> Result<Summary, ParseError> {
    let mut r = Reader::new(bytes);
    let bad = |r: &Reader| SnapError::Malformed(r.position());
    let magic = r.read_i32().map_err(|_| bad(&r))?;
    if magic != SNAP_MAGIC {
        return Err(SnapError::Magic(magic).into());
    }
    let version = r.read_i32().map_err(|_| bad(&r))?;
    if version != SNAP_VERSION {
        return Err(SnapError::Version(version).into());
    }
    r.read_i64().map_err(|_| bad(&r))?;
    let mut s = Summary::default();
    let n = r.read_count(12).map_err(|_| bad(&r))?;
    for _ in 0..n {
        let id = r.read_i64().map_err(|_| bad(&r))?;
        let t = r.read_i32().map_err(|_| bad(&r))?;
        s.sessions.push((id, t));
    }
    let n = r.read_count(12).map_err(|_| bad(&r))?;
    for _ in 0..n {
        let id = r.read_i64().map_err(|_| bad(&r))?;
        let acl = read_acls(&mut r).map_err(|_| bad(&r))?;
        s.acls.push((id, acl));
    }
    loop {
        let path = r.read_string().map_err(|_| bad(&r))?;
        if path == "/" {
            break;
        }
        let data = r.read_buffer_opt().map_err(|_| bad(&r))?;
        let acl_ref = r.read_i64().map_err(|_| bad(&r))?;
        let mut st = StatPersisted::default();
        (|| -> Result<(), crate::proto::DecodeError> {
            st.czxid = r.read_i64()?;
            st.mzxid = r.read_i64()?;
            st.ctime = r.read_i64()?;
            st.mtime = r.read_i64()?;
            st.version = r.read_i32()?;
            st.cversion = r.read_i32()?;
            st.aversion = r.read_i32()?;
            st.ephemeral_owner = r.read_i64()?;
            st.pzxid = r.read_i64()?;
            Ok(())
        })()
        .map_err(|_| bad(&r))?;
        s.nodes += 1;
        let rec = NodeRecord {
            path: if path.is_empty() { "/" } else { path },
            data,
            acl_ref,
            stat: st,
        };
        node(&s, rec).map_err(ParseError::Node)?;
    }
    let mut sum = (Adler32::default(), 0usize);
    check_seal(bytes, &mut r, &mut sum)?;
    // ZooKeeper 3.6+: the digest and a second seal; older files end here.
    if r.remaining() > 0 {
        let zxid = r.read_i64().map_err(|_| bad(&r))?;
        let version = r.read_i32().map_err(|_| bad(&r))?;
        let digest = if version < 2 {
            let hex = r.read_string().map_err(|_| bad(&r))?;
            i64::from_str_radix(hex, 16).unwrap_or(0)
        } else {
            r.read_i64().map_err(|_| bad(&r))?
        };
        check_seal(bytes, &mut r, &mut sum)?;
        if zxid > 0 {
            s.digest = Some((zxid, digest));
        }
    }
    // ZooKeeper 3.9 appends lastProcessedZxid and a seal; it adds nothing we need.
    Ok(s)
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Snap(#[from] SnapError),
    #[error("{0}")]
    Node(#[from] NodeError),
    #[error("no root node")]
    NoRoot,
}

/// Why a snapshot's node cannot be built into a tree (`parse`'s caller's checks).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{path}: unknown ACL reference {acl_ref}")]
    UnknownAcl { path: String, acl_ref: i64 },
    #[error("bad path {0}")]
    BadPath(String),
    #[error("{path}: parent {parent} missing")]
    MissingParent { path: String, parent: String },
}

/// Checks the seal at the reader's position: the running checksum `sum` (over the bytes
/// before `sum.1`) is brought up to here first.
fn check_seal(
    bytes: &[u8],
    r: &mut Reader,
    running: &mut (Adler32, usize),
) -> Result<(), SnapError> {
    let at = r.position();
    running.0.update(&bytes[running.1..at]);
    running.1 = at;
    let sum = running.0;
    let stored = r.read_i64().map_err(|_| SnapError::Malformed(at))? as u32;
    let slash = r.read_string().map_err(|_| SnapError::Malformed(at))?;
    if slash != "/" {
        return Err(SnapError::Malformed(at));
    }
    if stored != sum.value() {
        return Err(SnapError::Checksum {
            at,
            stored,
            computed: sum.value(),
        });
    }
    Ok(())
}

/// Reads a snapshot file into memory (mapped).
pub fn map_file(path: &Path) -> io::Result<memmap2::Mmap> {
    let f = File::open(path)?;
    // SAFETY: snapshot files are never written after their rename.
    unsafe { memmap2::Mmap::map(&f) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler_matches_the_one_shot_value() {
        let mut a = Adler32::default();
        a.update(b"Wiki");
        a.update(b"pedia");
        assert_eq!(a.value(), 0x11E60398);
    }
}
