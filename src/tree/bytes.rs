//! `Bytes`: a znode's data behind one thin pointer.
//!
//! Layout of the allocation: `u32` length, then the bytes (align 4). A `Box<[u8]>` is a
//! 16-byte fat pointer; this is 8, which keeps a node version inside a smaller allocator
//! size class. Immutable once made, like the node version that holds it.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

pub struct Bytes {
    ptr: NonNull<u8>,
}

// SAFETY: `Bytes` owns its allocation and never mutates it after construction.
unsafe impl Send for Bytes {}
unsafe impl Sync for Bytes {}

const HEADER: usize = 4;

fn layout(len: usize) -> Layout {
    Layout::from_size_align(HEADER + len, 4).expect("data length fits a layout")
}

impl Bytes {
    pub fn new(data: &[u8]) -> Bytes {
        let len = u32::try_from(data.len()).expect("znode data is bounded by jute.maxbuffer");
        let layout = layout(data.len());
        // SAFETY: the layout has a non-zero size (the header); we write exactly the header
        // and `len` bytes inside it.
        unsafe {
            let p = alloc(layout);
            let Some(ptr) = NonNull::new(p) else {
                handle_alloc_error(layout)
            };
            p.cast::<u32>().write(len);
            std::ptr::copy_nonoverlapping(data.as_ptr(), p.add(HEADER), data.len());
            Bytes { ptr }
        }
    }

    pub fn len(&self) -> usize {
        // SAFETY: the header was written by `new` and is aligned to 4.
        unsafe { self.ptr.as_ptr().cast::<u32>().read() as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes follow the header, initialised by `new`, alive while `self` is.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(HEADER), self.len()) }
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        let layout = layout(self.len());
        // SAFETY: allocated in `new` with this same layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout) }
    }
}

impl Clone for Bytes {
    fn clone(&self) -> Bytes {
        Bytes::new(self.as_slice())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::Bytes;
    #[test]
    fn round_trip() {
        for n in [0usize, 1, 3, 4, 5, 100, 4096] {
            let v: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let b = Bytes::new(&v);
            assert_eq!(b.len(), n);
            assert_eq!(b.as_slice(), &v[..]);
            assert_eq!(b.clone(), b);
        }
        assert_eq!(std::mem::size_of::<Option<Bytes>>(), 8);
    }
}
