//! Relay buffers that exist only while data moves. A session takes a buffer when it reads
//! and gives it back when the direction goes quiet, so idle sessions hold none. Given-back
//! buffers wait in a small per-worker stack, capped in count and in bytes, so busy sessions
//! do not map fresh pages on every wake-up; what does not fit is unmapped at once.

use std::cell::Cell;

use crate::relay::pages::Block;

/// Spare buffers kept per worker (nginx workers are single-threaded), and their total size.
const SPARES: usize = 32;
const SPARE_BYTES: usize = 4 << 20;

thread_local! {
    static SPARE: Cell<Vec<Block>> = const { Cell::new(Vec::new()) };
}

#[derive(Default)]
pub struct Buf {
    mem: Option<Block>,
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
        let (pos, last) = (self.pos, self.last);
        self.all().get_mut(pos..last).unwrap_or_default()
    }

    /// The first `size` bytes, once `ensure(size)` succeeded (empty otherwise).
    pub fn mem(&mut self, size: usize) -> &mut [u8] {
        let all = self.all();
        let len = all.len().min(size);
        all.get_mut(..len).unwrap_or_default()
    }

    fn all(&mut self) -> &mut [u8] {
        self.mem
            .as_mut()
            .map(Block::as_mut_slice)
            .unwrap_or_default()
    }

    /// Bytes of memory held.
    pub fn held(&self) -> usize {
        self.mem.as_ref().map_or(0, Block::size)
    }

    /// Makes at least `size` bytes available; false when memory is exhausted. Never
    /// called while bytes are pending: the memory may move.
    pub fn ensure(&mut self, size: usize) -> bool {
        if self.held() >= size {
            return true;
        }
        let Some(mem) = take_spare(size).or_else(|| Block::new(size)) else {
            return false;
        };
        give_spare(self.mem.replace(mem));
        true
    }

    /// Gives the memory back; the buffer must hold nothing pending.
    pub fn release(&mut self) {
        give_spare(self.mem.take());
        self.pos = 0;
        self.last = 0;
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        give_spare(self.mem.take());
    }
}

/// A spare of exactly `size` bytes: a larger one would hold memory the session's
/// configuration does not ask for.
fn take_spare(size: usize) -> Option<Block> {
    SPARE.with(|cell| {
        let mut spare = cell.take();
        let found = spare.iter().rposition(|b| b.size() == size);
        let mem = found.map(|i| spare.swap_remove(i));
        cell.set(spare);
        mem
    })
}

fn give_spare(mem: Option<Block>) {
    let Some(mem) = mem else { return };
    SPARE.with(|cell| {
        let mut spare = cell.take();
        let bytes: usize = spare.iter().map(Block::size).sum();
        let fits = spare.len() < SPARES && bytes + mem.size() <= SPARE_BYTES;
        if fits && spare.try_reserve(1).is_ok() {
            spare.push(mem);
        }
        // Otherwise `mem` is dropped here: unmapped, its pages back to the system.
        cell.set(spare);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spare_bytes() -> usize {
        SPARE.with(|cell| {
            let spare = cell.take();
            let n = spare.iter().map(Block::size).sum();
            cell.set(spare);
            n
        })
    }

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
        assert!(b.ensure(4096));
        assert_eq!(b.mem(4096).as_ptr(), ptr, "the spare buffer is taken again");
        assert_eq!(b.mem(1024).len(), 1024);
        let mut c = Buf::default();
        assert!(c.ensure(4096));
        b.release();
        assert!(c.ensure(1024));
        assert_eq!(c.held(), 4096, "a larger buffer already held is kept");
        let mut d = Buf::default();
        assert!(d.ensure(1024));
        assert_ne!(d.mem(1024).as_ptr(), ptr, "a larger spare is not taken");
        assert_eq!(d.held(), 1024);
    }

    #[test]
    fn spares_are_capped_in_count_and_bytes() {
        let mut bufs: Vec<Buf> = (0..SPARES + 3).map(|_| Buf::default()).collect();
        for b in &mut bufs {
            assert!(b.ensure(4096));
        }
        drop(bufs);
        assert!(spare_bytes() <= SPARES * 4096);
        let mut big: Vec<Buf> = (0..3).map(|_| Buf::default()).collect();
        for b in &mut big {
            assert!(b.ensure(SPARE_BYTES / 2));
        }
        drop(big);
        assert!(spare_bytes() <= SPARE_BYTES, "at most the byte cap is kept");
    }

    #[test]
    fn a_smaller_spare_is_not_taken() {
        let mut a = Buf::default();
        assert!(a.ensure(100));
        a.release();
        let mut b = Buf::default();
        assert!(b.ensure(5000));
        assert_eq!(b.mem(5000).len(), 5000);
    }
}
