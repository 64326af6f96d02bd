//! `NodeRef`: one immutable version of a znode, its fields and its data in one allocation.
//!
//! Layout: `AtomicU32` count, `u32` data length (`NULL_DATA` for null data), the `Node`
//! fields, then the data bytes. One allocation instead of two (node, data) saves an
//! allocator size class per znode: a node with 100 bytes of data is 188 bytes, a 192-byte
//! block, where the two blocks were 96 + 112. The pointer is thin (8 bytes).
//!
//! Counting follows `std::sync::Arc`: relaxed increments, a release decrement and an
//! acquire fence before the last owner frees it. Every access to the data goes through the
//! allocation's own pointer, never past the end of a `&Node`.

use super::Node;
use crate::proto::ops::ephemeral_session;
use crate::proto::records::Stat;
use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

#[repr(C)]
struct Inner {
    count: AtomicU32,
    data_len: u32,
    node: Node,
}

/// `data_len` of a node whose data is null (kept apart from empty, as ZooKeeper does).
const NULL_DATA: u32 = u32::MAX;
const MAX_COUNT: u32 = i32::MAX as u32;

fn layout(data_len: usize) -> Layout {
    let size = std::mem::size_of::<Inner>() + data_len;
    Layout::from_size_align(size, std::mem::align_of::<Inner>()).expect("node fits a layout")
}

pub struct NodeRef {
    ptr: NonNull<Inner>,
}

// SAFETY: the version is never mutated after construction (Node is Send + Sync) and the
// count is atomic.
unsafe impl Send for NodeRef {}
unsafe impl Sync for NodeRef {}

impl NodeRef {
    /// A new version of `path` with these fields and data (`None` = null data); its
    /// digest is computed here.
    pub fn new(path: &str, mut node: Node, data: Option<&[u8]>) -> NodeRef {
        node.digest = super::digest::node_digest(path, data, &node);
        let (data_len, bytes) = match data {
            None => (NULL_DATA, &[][..]),
            Some(d) => {
                let n = u32::try_from(d.len())
                    .ok()
                    .filter(|&n| n != NULL_DATA)
                    .expect("znode data is bounded by jute.maxbuffer");
                (n, d)
            }
        };
        let layout = layout(bytes.len());
        // SAFETY: the layout is non-zero (Inner) and aligned for Inner; we write the Inner
        // and exactly `bytes.len()` bytes after it, all inside the layout.
        unsafe {
            let p = alloc(layout);
            let Some(raw) = NonNull::new(p) else {
                handle_alloc_error(layout)
            };
            let ptr = raw.cast::<Inner>();
            ptr.as_ptr().write(Inner {
                count: AtomicU32::new(1),
                data_len,
                node,
            });
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                p.add(std::mem::size_of::<Inner>()),
                bytes.len(),
            );
            NodeRef { ptr }
        }
    }

    fn inner(&self) -> &Inner {
        // SAFETY: written by `new`, alive while any owner is.
        unsafe { self.ptr.as_ref() }
    }

    /// The data, `None` when null.
    pub fn data(&self) -> Option<&[u8]> {
        let len = self.inner().data_len;
        if len == NULL_DATA {
            return None;
        }
        // SAFETY: `new` wrote `len` bytes right after the Inner, in the same allocation;
        // the pointer is derived from the allocation's own, so it covers them.
        unsafe {
            let p = self
                .ptr
                .as_ptr()
                .cast::<u8>()
                .add(std::mem::size_of::<Inner>());
            Some(std::slice::from_raw_parts(p, len as usize))
        }
    }

    pub fn data_len(&self) -> usize {
        match self.inner().data_len {
            NULL_DATA => 0,
            n => n as usize,
        }
    }

    /// The fields, to build the next version from (`NodeRef::new(path, fields, node.data())`).
    pub fn fields(&self) -> Node {
        self.inner().node.clone()
    }

    /// The Stat a client sees.
    pub fn stat(&self, extended_types: bool) -> Stat {
        let node = &self.inner().node;
        let n = node.num_children() as i32;
        let owner = ephemeral_session(node.ephemeral_owner, extended_types).unwrap_or(0);
        Stat {
            czxid: node.czxid,
            mzxid: node.mzxid,
            ctime: node.ctime,
            mtime: node.mtime,
            version: node.version,
            cversion: node.cversion.wrapping_mul(2).wrapping_sub(n),
            aversion: node.aversion,
            ephemeral_owner: owner,
            data_length: self.data_len() as i32,
            num_children: n,
            pzxid: node.pzxid,
        }
    }

    pub fn ptr_eq(a: &NodeRef, b: &NodeRef) -> bool {
        a.ptr == b.ptr
    }
}

impl std::ops::Deref for NodeRef {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.inner().node
    }
}

impl Clone for NodeRef {
    fn clone(&self) -> NodeRef {
        if self.inner().count.fetch_add(1, Ordering::Relaxed) >= MAX_COUNT {
            std::process::abort();
        }
        NodeRef { ptr: self.ptr }
    }
}

impl Drop for NodeRef {
    fn drop(&mut self) {
        if self.inner().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let layout = layout(self.data().map_or(0, |d| d.len()));
        // SAFETY: we were the last owner: drop the fields in place, then free the block
        // allocated in `new` with this same layout.
        unsafe {
            std::ptr::drop_in_place(std::ptr::addr_of_mut!((*self.ptr.as_ptr()).node));
            dealloc(self.ptr.as_ptr().cast::<u8>(), layout);
        }
    }
}

impl std::fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRef")
            .field("node", &self.inner().node)
            .field("data_len", &self.data().map(|d| d.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::NodeRef;
    use crate::tree::{AclList, Node};

    #[test]
    fn fields_and_data() {
        let acl = AclList::shared(&[]);
        for data in [
            None,
            Some(&b""[..]),
            Some(&b"x"[..]),
            Some(&[7u8; 4096][..]),
        ] {
            let mut n = Node::empty(acl.clone());
            n.version = 3;
            let r = NodeRef::new("/x", n, data);
            assert_eq!(r.data(), data);
            assert_eq!(r.data_len(), data.map_or(0, |d| d.len()));
            assert_eq!(r.version, 3);
            let s = r.stat(false);
            assert_eq!(s.data_length as usize, r.data_len());
            let r2 = r.clone();
            assert!(NodeRef::ptr_eq(&r, &r2));
            drop(r);
            assert_eq!(r2.data(), data);
        }
        assert_eq!(std::mem::size_of::<Option<NodeRef>>(), 8);
    }

    #[test]
    fn a_node_of_100_bytes_is_one_192_byte_block() {
        assert!(super::layout(100).size() <= 192, "{:?}", super::layout(100));
    }
}
