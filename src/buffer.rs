//! Relay buffers that exist only while data moves. A session takes a buffer when it reads
//! and gives it back when the direction goes quiet; given-back buffers wait in a small
//! per-worker stack so that busy sessions do not pay an allocation (and its zeroing) on
//! every wake-up, while idle sessions hold no buffer at all. What does not fit the stack
//! goes back to the allocator and is counted, so the glue can ask it to return the pages
//! to the system after a burst of sessions.

use std::cell::Cell;

/// Spare buffers kept per worker (nginx workers are single-threaded).
const SPARES: usize = 32;

thread_local! {
    static SPARE: Cell<Vec<Vec<u8>>> = const { Cell::new(Vec::new()) };
    static FREED: Cell<usize> = const { Cell::new(0) };
}

/// Whether at least `bytes` of buffers went back to the allocator since the last time
/// this said yes.
pub fn take_freed_at_least(bytes: usize) -> bool {
    FREED.with(|f| {
        let over = f.get() >= bytes;
        if over {
            f.set(0);
        }
        over
    })
}

#[derive(Default)]
pub struct Buf {
    mem: Vec<u8>,
    /// Bytes ready for the peer: `pos..last`.
    pub pos: usize,
    pub last: usize,
}

impl Buf {
    pub fn pending(&self) -> bool {
        self.pos < self.last
    }

    /// The bytes waiting for the peer.
    pub fn ready(&mut self) -> &mut [u8] {
        self.mem.get_mut(self.pos..self.last).unwrap_or_default()
    }

    /// The first `size` bytes, once `ensure(size)` succeeded (empty otherwise).
    pub fn mem(&mut self, size: usize) -> &mut [u8] {
        let len = self.mem.len().min(size);
        self.mem.get_mut(..len).unwrap_or_default()
    }

    /// Makes at least `size` bytes available; false when memory is exhausted.
    pub fn ensure(&mut self, size: usize) -> bool {
        if self.mem.len() >= size {
            return true;
        }
        let mut mem = take_spare().unwrap_or_default();
        if mem.len() < size {
            if mem.try_reserve_exact(size - mem.len()).is_err() {
                return false;
            }
            mem.resize(size, 0);
        }
        give_spare(std::mem::replace(&mut self.mem, mem));
        true
    }

    /// Gives the memory back; the buffer must hold nothing pending.
    pub fn release(&mut self) {
        give_spare(std::mem::take(&mut self.mem));
        self.pos = 0;
        self.last = 0;
    }
}

fn take_spare() -> Option<Vec<u8>> {
    SPARE.with(|cell| {
        let mut spare = cell.take();
        let mem = spare.pop();
        cell.set(spare);
        mem
    })
}

fn give_spare(mem: Vec<u8>) {
    if mem.is_empty() {
        return;
    }
    SPARE.with(|cell| {
        let mut spare = cell.take();
        if spare.len() < SPARES && spare.try_reserve(1).is_ok() {
            spare.push(mem);
        } else {
            FREED.with(|f| f.set(f.get().saturating_add(mem.capacity())));
        }
        cell.set(spare);
    });
}

impl Drop for Buf {
    fn drop(&mut self) {
        give_spare(std::mem::take(&mut self.mem));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_memory_is_reused() {
        let mut a = Buf::default();
        assert!(a.mem(16).is_empty());
        assert!(a.ensure(4096));
        a.mem(4096)[0] = 7;
        let ptr = a.mem(4096).as_ptr();
        a.release();
        assert!(a.mem(4096).is_empty());
        let mut b = Buf::default();
        assert!(b.ensure(1024));
        assert_eq!(b.mem(1024).as_ptr(), ptr, "the spare buffer is taken again");
        assert_eq!(b.mem(1024).len(), 1024);
    }

    #[test]
    fn overflow_is_counted() {
        take_freed_at_least(0);
        let mut bufs: Vec<Buf> = (0..SPARES + 3).map(|_| Buf::default()).collect();
        for b in &mut bufs {
            assert!(b.ensure(256));
        }
        drop(bufs);
        assert!(take_freed_at_least(3 * 256));
        assert!(!take_freed_at_least(1));
    }

    #[test]
    fn grows_a_smaller_spare() {
        let mut a = Buf::default();
        assert!(a.ensure(100));
        a.release();
        let mut b = Buf::default();
        assert!(b.ensure(5000));
        assert_eq!(b.mem(5000).len(), 5000);
    }
}
