//! `PathRef`: a znode's full path behind one thin, reference-counted pointer.
//!
//! The same allocation is the tree map's key and the entry in the parent's children set,
//! so both hold 8 bytes per znode instead of a 16-byte `Arc<str>`, which halves the map's
//! entry and the children B-tree's leaves. Layout of the allocation: `AtomicU32` count,
//! `u32` length, then the UTF-8 bytes (align 4): 38 bytes for a 30-byte path, the same
//! size class an `Arc<str>` of it needs.
//!
//! Immutable once made. Counting follows `std::sync::Arc`: relaxed increments, a release
//! decrement and an acquire fence before the last owner frees it.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

pub struct PathRef {
    ptr: NonNull<u8>,
}

// SAFETY: the bytes are never mutated after construction and the count is atomic.
unsafe impl Send for PathRef {}
unsafe impl Sync for PathRef {}

const HEADER: usize = 8;
/// Clones past this abort, as `Arc` does, rather than let the count wrap.
const MAX_COUNT: u32 = i32::MAX as u32;

fn layout(len: usize) -> Layout {
    Layout::from_size_align(HEADER + len, 4).expect("path length fits a layout")
}

impl PathRef {
    pub fn new(s: &str) -> PathRef {
        let len = u32::try_from(s.len()).expect("paths are bounded by jute.maxbuffer");
        let layout = layout(s.len());
        // SAFETY: the layout has a non-zero size (the header); we write exactly the header
        // and `len` bytes inside it, at 4-aligned offsets for the two u32s.
        unsafe {
            let p = alloc(layout);
            let Some(ptr) = NonNull::new(p) else {
                handle_alloc_error(layout)
            };
            p.cast::<AtomicU32>().write(AtomicU32::new(1));
            p.add(4).cast::<u32>().write(len);
            std::ptr::copy_nonoverlapping(s.as_ptr(), p.add(HEADER), s.len());
            PathRef { ptr }
        }
    }

    fn count(&self) -> &AtomicU32 {
        // SAFETY: the count was written by `new`, is aligned, and lives while `self` does.
        unsafe { &*self.ptr.as_ptr().cast::<AtomicU32>() }
    }

    fn byte_len(&self) -> usize {
        // SAFETY: as for `count`; the length is never written after `new`.
        unsafe { self.ptr.as_ptr().add(4).cast::<u32>().read() as usize }
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: `new` copied `byte_len` bytes of a `&str` after the header; they are
        // valid UTF-8 and immutable while any owner lives.
        unsafe {
            let bytes = std::slice::from_raw_parts(self.ptr.as_ptr().add(HEADER), self.byte_len());
            std::str::from_utf8_unchecked(bytes)
        }
    }

    /// Owners of this allocation (for tests).
    pub fn strong_count(this: &PathRef) -> usize {
        this.count().load(Ordering::Acquire) as usize
    }
}

impl Clone for PathRef {
    fn clone(&self) -> PathRef {
        if self.count().fetch_add(1, Ordering::Relaxed) >= MAX_COUNT {
            std::process::abort();
        }
        PathRef { ptr: self.ptr }
    }
}

impl Drop for PathRef {
    fn drop(&mut self) {
        if self.count().fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let layout = layout(self.byte_len());
        // SAFETY: we were the last owner; allocated in `new` with this same layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout) }
    }
}

impl std::ops::Deref for PathRef {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for PathRef {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for PathRef {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Hashes as the `str` does, so maps keyed by `PathRef` can be searched with a `&str`.
impl std::hash::Hash for PathRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialEq for PathRef {
    fn eq(&self, other: &PathRef) -> bool {
        self.ptr == other.ptr || self.as_str() == other.as_str()
    }
}

impl Eq for PathRef {}

impl PartialOrd for PathRef {
    fn partial_cmp(&self, other: &PathRef) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathRef {
    fn cmp(&self, other: &PathRef) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::fmt::Debug for PathRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for PathRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for PathRef {
    fn from(s: &str) -> PathRef {
        PathRef::new(s)
    }
}

impl From<String> for PathRef {
    fn from(s: String) -> PathRef {
        PathRef::new(&s)
    }
}

impl From<&String> for PathRef {
    fn from(s: &String) -> PathRef {
        PathRef::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::PathRef;
    use std::collections::HashSet;

    #[test]
    fn round_trip_and_counts() {
        for s in ["", "/", "/a", "/service-0042/node-0000012345", "/ü/ß"] {
            let p = PathRef::new(s);
            assert_eq!(&*p, s);
            let q = p.clone();
            assert_eq!(PathRef::strong_count(&p), 2);
            assert_eq!(p, q);
            drop(q);
            assert_eq!(PathRef::strong_count(&p), 1);
        }
        assert_eq!(std::mem::size_of::<Option<PathRef>>(), 8);
    }

    #[test]
    fn hash_and_order_follow_str() {
        let set: HashSet<PathRef> = ["/a", "/b"].into_iter().map(PathRef::from).collect();
        assert!(set.contains("/a"));
        assert!(!set.contains("/c"));
        assert!(PathRef::from("/a") < PathRef::from("/a/b"));
        assert!(PathRef::from("/b") > PathRef::from("/a/b"));
    }
}
