//! Page-mapped memory for relay buffers (FFI: `mmap`/`munmap`). A block goes back to the
//! system the moment it is dropped, so a worker returns to its idle size after a burst of
//! sessions without asking the allocator to trim its heap (a walk of the whole heap on the
//! event loop, and glibc-only).

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;

extern "C" {
    fn mmap(
        addr: *mut c_void,
        len: usize,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        off: i64,
    ) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
}

// The same values on every Linux architecture nginx runs on.
const PROT_READ: c_int = 1;
const PROT_WRITE: c_int = 2;
const MAP_PRIVATE: c_int = 2;
const MAP_ANONYMOUS: c_int = 0x20;
const MAP_FAILED: *mut c_void = !0 as *mut c_void;

/// Zero-filled anonymous memory of `len` bytes, owned.
pub struct Block {
    ptr: NonNull<u8>,
    len: usize,
}

impl Block {
    /// None when the system has no memory to give.
    pub fn new(len: usize) -> Option<Self> {
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == MAP_FAILED {
            return None;
        }
        NonNull::new(p.cast()).map(|ptr| Self { ptr, len })
    }

    pub fn size(&self) -> usize {
        self.len
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, and only this owner
        // reaches it; `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`, once.
        unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
