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

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn mincore(addr: *mut c_void, len: usize, vec: *mut u8) -> c_int;
        fn sysconf(name: c_int) -> std::ffi::c_long;
    }

    const SC_PAGESIZE: c_int = 30; // Linux, glibc and musl alike

    fn page_size() -> usize {
        // SAFETY: sysconf only reads a constant of the system.
        usize::try_from(unsafe { sysconf(SC_PAGESIZE) }).unwrap_or(4096)
    }

    /// The whole pages inside `addr..addr + len`.
    fn pages(addr: usize, len: usize, page: usize) -> impl Iterator<Item = usize> {
        (addr.div_ceil(page) * page..(addr + len) / page * page).step_by(page)
    }

    /// How many of those pages are in memory; an unmapped page is not.
    fn resident(addr: usize, len: usize, page: usize) -> usize {
        pages(addr, len, page)
            .filter(|&p| {
                let mut v = 0u8;
                // SAFETY: mincore reads the page tables for one page-aligned page and
                // writes one byte to `v`; for an unmapped page it fails with ENOMEM.
                let rc = unsafe { mincore(p as *mut c_void, page, &mut v) };
                rc == 0 && v & 1 != 0
            })
            .count()
    }

    /// A burst of sessions takes buffers while small long-lived allocations (pools,
    /// connections) are made between them; when the burst is over, the buffers' pages
    /// go back to the system. From malloc's heap they would not: the small blocks pin it.
    /// Only the buffers' own pages are looked at (mincore), each right after its drop, so
    /// other test threads' memory does not count; one of them may map a freed address
    /// again before it is looked at, hence the quarter of slack.
    #[test]
    fn freed_buffers_return_their_pages_despite_live_small_allocations() {
        const N: usize = 400;
        let page = page_size();
        let mut small = Vec::new();
        let mut blocks = Vec::new();
        for _ in 0..N {
            let mut b = Block::new(65543).expect("mmap");
            b.as_mut_slice().fill(1);
            blocks.push(b);
            small.push(vec![2u8; 1024]);
        }
        let (mut whole, mut taken, mut kept) = (0, 0, 0);
        for mut b in blocks {
            let (addr, len) = (b.as_mut_slice().as_mut_ptr() as usize, b.size());
            whole += pages(addr, len, page).count();
            taken += resident(addr, len, page);
            drop(b);
            kept += resident(addr, len, page);
        }
        assert!(whole >= N * 15, "{whole} pages of {page} bytes");
        assert!(
            taken > whole * 3 / 4,
            "the burst took memory: {taken} of {whole} pages resident"
        );
        assert!(
            kept < taken / 4,
            "pages returned: {kept} of {taken} still resident after the drops"
        );
        assert_eq!(small.len(), N);
    }
}
