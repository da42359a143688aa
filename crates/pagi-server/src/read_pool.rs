//! A small per-thread cache of empty read buffers. Every connection gives
//! its buffer back whenever it has drained it (so idle connections hold
//! none); without the cache, a connection with one message in flight would
//! pay an allocation and a free of its read buffer per message. Bounded:
//! at most `MAX_POOLED_BYTES` of buffers per worker thread.

use std::cell::RefCell;

use bytes::{Buf, BytesMut};

/// The first read reservation of a connection, and the largest buffer
/// connections grow to (see the WebSocket driver's read sizing).
pub(crate) const READ_CHUNK: usize = 16 * 1024;
pub(crate) const MAX_READ_CHUNK: usize = 128 * 1024;

const MAX_POOLED_BYTES: usize = 1024 * 1024;

#[derive(Default)]
struct Pool {
    bufs: Vec<BytesMut>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// An empty buffer with room for at least `min` bytes.
pub(crate) fn take(min: usize) -> BytesMut {
    let pooled = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let b = p.bufs.pop()?;
        p.bytes -= b.capacity();
        Some(b)
    });
    match pooled {
        Some(b) if b.capacity() >= min => b,
        _ => BytesMut::with_capacity(min),
    }
}

/// Keep a drained buffer for the next `take` on this thread, if it is of
/// a usual size and the cache has room; otherwise free it.
pub(crate) fn give(mut buf: BytesMut) {
    // Emptied by advancing (not `clear`): a buffer read into is then past
    // its front, which the check below needs.
    let unread = buf.len();
    buf.advance(unread);
    // Decoding advanced the buffer's start: move it back to the front of
    // its allocation (no copy, it is empty). Asking for a byte more than it
    // has makes `try_reclaim` look (with less it returns `true` at once):
    // it fails when a message split off the allocation is still alive, and
    // such a buffer is not kept (nor is one never read into, still at the
    // front: rare, a spurious wake-up).
    let whole = buf.capacity() + 1;
    if !buf.try_reclaim(whole) || buf.capacity() > 2 * MAX_READ_CHUNK {
        return;
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.bytes + buf.capacity() <= MAX_POOLED_BYTES {
            p.bytes += buf.capacity();
            p.bufs.push(buf);
        }
    });
}

/// How much room a connection's next read gets: `READ_CHUNK` at first,
/// doubled while reads fill what they were given (so a large message
/// arrives in one read, without reallocation), up to `MAX_READ_CHUNK`, and
/// halved after `SHRINK_AFTER` reads in a row used under a quarter of it
/// (one short read, such as the tail of a frame, does not undo the growth).
#[derive(Debug)]
pub(crate) struct ReadSize {
    size: usize,
    /// Consecutive reads that used under a quarter of `size`.
    small: u8,
}

/// Small reads in a row before the read size halves.
const SHRINK_AFTER: u8 = 8;

impl Default for ReadSize {
    fn default() -> Self {
        ReadSize {
            size: READ_CHUNK,
            small: 0,
        }
    }
}

impl ReadSize {
    /// The room the next read should have.
    pub(crate) fn get(&self) -> usize {
        self.size
    }

    /// Whether a buffer with `spare` bytes free is too full for the next
    /// read: the read would likely stop at its end and need a second
    /// `recv` (or a reallocation) for the rest of a message.
    pub(crate) fn wants_more_than(&self, spare: usize) -> bool {
        spare < self.size / 2
    }

    /// Record a read of `n` bytes into `spare` free bytes; `limited` when
    /// `spare` was cut short by a memory budget (then the read says nothing
    /// about the peer, either way).
    pub(crate) fn record(&mut self, n: usize, spare: usize, limited: bool) {
        if limited {
            return;
        }
        if n == spare {
            self.size = (self.size * 2).min(MAX_READ_CHUNK);
            self.small = 0;
        } else if n < self.size / 4 {
            self.small += 1;
            if self.small >= SHRINK_AFTER {
                self.size = (self.size / 2).max(READ_CHUNK);
                self.small = 0;
            }
        } else {
            self.small = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_size_grows_on_full_reads_and_survives_a_short_tail() {
        let mut r = ReadSize::default();
        // A 16 KiB frame (plus its header) fills the first read...
        r.record(READ_CHUNK, READ_CHUNK, false);
        assert_eq!(r.get(), 2 * READ_CHUNK);
        // ...and its 14-byte tail does not undo the growth.
        r.record(14, 2 * READ_CHUNK, false);
        assert_eq!(r.get(), 2 * READ_CHUNK);
        // The next frames arrive whole.
        r.record(READ_CHUNK + 14, 2 * READ_CHUNK, false);
        assert_eq!(r.get(), 2 * READ_CHUNK);
        // A budget-limited full read is not growth.
        r.record(100, 100, true);
        assert_eq!(r.get(), 2 * READ_CHUNK);
        // Sustained small reads shrink it, never below READ_CHUNK.
        for _ in 0..SHRINK_AFTER {
            r.record(64, 2 * READ_CHUNK, false);
        }
        assert_eq!(r.get(), READ_CHUNK);
        for _ in 0..4 * SHRINK_AFTER {
            r.record(64, READ_CHUNK, false);
        }
        assert_eq!(r.get(), READ_CHUNK);
        for _ in 0..10 {
            let s = r.get();
            r.record(s, s, false);
        }
        assert_eq!(r.get(), MAX_READ_CHUNK);
    }

    #[test]
    fn a_buffer_left_with_less_than_half_the_read_size_is_replaced() {
        let mut r = ReadSize::default();
        r.record(READ_CHUNK, READ_CHUNK, false);
        // After a 16 KiB frame was split off a 32 KiB buffer.
        assert!(r.wants_more_than(2 * READ_CHUNK - (READ_CHUNK + 14)));
        // After a 64-byte message was taken from it.
        assert!(!r.wants_more_than(2 * READ_CHUNK - 78));
    }

    fn pooled_bytes() -> usize {
        POOL.with(|p| p.borrow().bytes)
    }

    #[test]
    fn buffers_are_reused_and_the_pool_is_bounded() {
        /// A buffer read into and drained, as the decoder leaves it.
        fn used(cap: usize) -> BytesMut {
            let mut b = BytesMut::with_capacity(cap);
            b.extend_from_slice(&[1; 10]);
            let _ = b.split_to(10);
            b
        }
        let mut b = take(READ_CHUNK);
        let ptr = b.as_ptr();
        b.extend_from_slice(&[1; 1000]);
        let _ = b.split_to(1000);
        give(b);
        let again = take(READ_CHUNK);
        assert_eq!(again.as_ptr(), ptr, "reused");
        assert!(again.is_empty() && again.capacity() >= READ_CHUNK);
        assert_eq!(pooled_bytes(), 0);
        // Too large to keep.
        give(used(4 * MAX_READ_CHUNK));
        assert_eq!(pooled_bytes(), 0);
        // Shared with a message still alive: not kept.
        let mut shared = again;
        shared.extend_from_slice(&[2; 100]);
        let msg = shared.split_to(100).freeze();
        give(shared);
        assert_eq!(pooled_bytes(), 0);
        drop(msg);
        // Asked for more than the pooled one holds: a new buffer.
        give(used(READ_CHUNK));
        assert!(take(4 * READ_CHUNK).capacity() >= 4 * READ_CHUNK);
        for _ in 0..1000 {
            give(used(READ_CHUNK));
        }
        assert!(pooled_bytes() <= MAX_POOLED_BYTES);
        assert!(pooled_bytes() > MAX_POOLED_BYTES - 2 * READ_CHUNK);
    }

    #[test]
    fn a_large_drained_tail_shared_with_a_live_message_is_not_pooled() {
        let before = pooled_bytes();
        let mut b = BytesMut::with_capacity(4 * READ_CHUNK);
        b.extend_from_slice(&[3; 100]);
        // The message lives on (in the app); the tail has over READ_CHUNK
        // free, which `try_reclaim(READ_CHUNK)` alone would accept.
        let msg = b.split_to(100).freeze();
        assert!(b.capacity() > READ_CHUNK);
        give(b);
        assert_eq!(pooled_bytes(), before, "a shared tail was pooled");
        drop(msg);
    }
}
