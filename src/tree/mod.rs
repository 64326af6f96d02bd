//! DataTree: the znodes, readable without locks while the writer thread changes them.
//!
//! Main types: `Node` (one immutable version of a znode), `DataTree` (path → current
//! version, a lock-free concurrent map).
//!
//! Holds:
//! - Only the writer thread calls the mutating methods (`put`, `remove`); reactors only read.
//! - A reader sees one whole version of a node: versions are immutable `NodeRef`s that are
//!   replaced, never changed in place; memory of replaced versions is reclaimed by the map's
//!   epoch scheme and by reference counts.
//! - A txn becomes visible to readers whole or not at all (ARCHITECTURE.md invariant 4):
//!   the writer makes each txn's changes inside `publish`, a seqlock window (the sequence
//!   number is odd while it lasts), and a reader that wants a consistent view reads
//!   between `read_begin` and `read_valid` and tries again if a window overlapped. The
//!   writer never waits for a reader; a reader waits at most for one txn's publish.
//!   Since txns publish in zxid order, a reader's consistent views never go back.
//!
//! Not here: what a txn changes (txn/), who may read what (acl/).

pub mod digest;
mod noderef;
pub mod path;
pub mod pathref;

pub use noderef::NodeRef;
pub use pathref::PathRef;

use crate::proto::records::Acl;
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// An ACL list, shared by every node that has it.
pub type AclRef = triomphe::Arc<AclList>;

/// An ACL list behind a thin pointer (the list itself is shared by every node that has it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclList(pub Box<[Acl]>);

impl std::ops::Deref for AclList {
    type Target = [Acl];
    fn deref(&self) -> &[Acl] {
        &self.0
    }
}

impl AclList {
    pub fn shared(acl: &[Acl]) -> AclRef {
        triomphe::Arc::new(AclList(acl.into()))
    }
}

/// A node's children, by full path: the same allocation as the tree's key for that child,
/// so a child costs its parent one pointer, not a second copy of its name.
pub type Children = imbl::OrdSet<PathRef>;

/// The fields of one version of a znode; `NodeRef` holds them with the data. Stored
/// cversion counts child creations (ZooKeeper's encoding; `NodeRef::stat` converts).
#[derive(Debug, Clone)]
pub struct Node {
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub ephemeral_owner: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub acl: AclRef,
    pub children: Option<Box<Children>>,
    /// This version's digest (tree/digest.rs), set by `NodeRef::new`; it fills what
    /// would be padding.
    pub digest: u32,
}

impl Node {
    pub fn num_children(&self) -> usize {
        self.children.as_ref().map_or(0, |c| c.len())
    }
    /// Names (last path segments) of the children.
    pub fn children_iter(&self) -> impl Iterator<Item = &str> {
        self.children
            .iter()
            .flat_map(|c| c.iter())
            .map(|p| &p[p.rfind('/').map_or(0, |i| i + 1)..])
    }
    pub fn empty(acl: AclRef) -> Node {
        Node {
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            ctime: 0,
            mtime: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            digest: 0,
            acl,
            children: None,
        }
    }
    /// Adds a child by its full path.
    pub fn add_child(&mut self, path: PathRef) {
        self.children
            .get_or_insert_with(Default::default)
            .insert(path);
    }
    /// Removes a child by its full path.
    pub fn remove_child(&mut self, path: &str) {
        if let Some(c) = self.children.as_mut() {
            c.remove(path);
            if c.is_empty() {
                self.children = None;
            }
        }
    }
}

/// Parent of a path ("/" for top-level nodes) and the last segment. `None` for "/" or a
/// path without a slash.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let i = path.rfind('/')?;
    if path == "/" {
        return None;
    }
    let parent = if i == 0 { "/" } else { &path[..i] };
    Some((parent, &path[i + 1..]))
}

pub fn join_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// A std HashMap with the Fx hash, for the writer's own maps keyed by paths and ids.
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

type Map = papaya::HashMap<PathRef, NodeRef, std::hash::BuildHasherDefault<FxHasher>>;

/// The published tree. Owned by the writer thread; shared read-only with the reactors.
pub struct DataTree {
    nodes: Map,
    /// The publish sequence: odd while the writer is making a txn's changes.
    seq: AtomicU64,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree {
            nodes: Map::with_hasher(Default::default()),
            seq: AtomicU64::new(0),
        }
    }
}

impl DataTree {
    /// Writer only: the changes `f` makes (and whatever else it stores, such as the
    /// applied zxid) become visible to consistent readers all at once.
    pub fn publish<R>(&self, f: impl FnOnce() -> R) -> R {
        let s = self.seq.load(Ordering::Relaxed);
        debug_assert!(s.is_multiple_of(2), "publish windows do not nest");
        self.seq.store(s + 1, Ordering::Relaxed);
        // Orders the odd sequence before every change f makes: a reader that sees any
        // of them sees the sequence moved when it checks (`read_valid`).
        fence(Ordering::Release);
        let r = f();
        self.seq.store(s + 2, Ordering::Release);
        r
    }

    /// Opens a consistent read: `None` while a publish is under way (try again).
    #[inline]
    pub fn read_begin(&self) -> Option<u64> {
        let s = self.seq.load(Ordering::Acquire);
        s.is_multiple_of(2).then_some(s)
    }

    /// Whether what was read since `read_begin` returned `begun` is one consistent view
    /// (no publish overlapped it).
    #[inline]
    pub fn read_valid(&self, begun: u64) -> bool {
        fence(Ordering::Acquire);
        self.seq.load(Ordering::Relaxed) == begun
    }

    pub fn get(&self, path: &str) -> Option<NodeRef> {
        self.nodes.pin().get(path).cloned()
    }
    /// Runs `f` on the current version of `path` without taking a reference count.
    pub fn with<R>(&self, path: &str, f: impl FnOnce(Option<&NodeRef>) -> R) -> R {
        let g = self.nodes.pin();
        f(g.get(path))
    }
    /// Writer only.
    pub fn put(&self, path: PathRef, node: NodeRef) {
        self.nodes.pin().insert(path, node);
    }
    /// Writer only: replaces or adds `path`, reusing the stored key when there is one.
    pub fn put_path(&self, path: PathRef, node: NodeRef) {
        let g = self.nodes.pin();
        let key = match g.get_key_value(&*path) {
            Some((k, _)) => k.clone(),
            None => path,
        };
        g.insert(key, node);
    }
    /// Writer only.
    pub fn remove(&self, path: &str) {
        self.nodes.pin().remove(path);
    }
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// Every node from the root down, parents before children and each subtree in one
    /// run (pre-order; children in their set's order). Nodes the writer changes meanwhile
    /// may or may not be seen: call it where nothing writes (start-up, the snapshot child).
    pub fn walk(&self, mut f: impl FnMut(&str, &NodeRef)) {
        let g = self.nodes.pin();
        let mut stack: Vec<&str> = vec!["/"];
        while let Some(path) = stack.pop() {
            let Some(node) = g.get(path) else { continue };
            f(path, node);
            if let Some(c) = &node.children {
                stack.extend(c.iter().rev().map(|k| &**k));
            }
        }
    }
    /// Every (path, node) pair; order unspecified. For admin commands and tests.
    pub fn for_each(&self, mut f: impl FnMut(&str, &NodeRef)) {
        for (k, v) in self.nodes.pin().iter() {
            f(k, v);
        }
    }
}

/// The Fx hash (rustc's): fast for short keys; the server's maps need no DoS resistance
/// beyond what path validation and ACLs already bound.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut b = bytes;
        while b.len() >= 8 {
            self.add(u64::from_le_bytes(b[..8].try_into().unwrap()));
            b = &b[8..];
        }
        if b.len() >= 4 {
            self.add(u32::from_le_bytes(b[..4].try_into().unwrap()) as u64);
            b = &b[4..];
        }
        for &x in b {
            self.add(x as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Spread the low bits the map uses for buckets.
        self.hash
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(26)
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn split() {
        assert_eq!(split_path("/a"), Some(("/", "a")));
        assert_eq!(split_path("/a/b"), Some(("/a", "b")));
        assert_eq!(split_path("/"), None);
        assert_eq!(join_path("/", "a"), "/a");
        assert_eq!(join_path("/a", "b"), "/a/b");
    }
}
