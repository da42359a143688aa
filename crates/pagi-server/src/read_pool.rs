//! A small per-thread cache of empty read buffers. Every connection gives
//! its buffer back whenever it has drained it (so idle connections hold
//! none); without the cache, a connection with one message in flight would
//! pay an allocation and a free of its read buffer per message. Bounded:
//! at most `MAX_POOLED_BYTES` of buffers per worker thread.

use std::cell::RefCell;

use bytes::BytesMut;

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
    buf.clear();
    // Decoding advanced the buffer's start: move it back to the front of
    // its allocation (no copy, it is empty). Fails when the allocation is
    // shared with a message split off it; such a buffer is not kept.
    if !buf.try_reclaim(READ_CHUNK) || buf.capacity() > 2 * MAX_READ_CHUNK {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled_bytes() -> usize {
        POOL.with(|p| p.borrow().bytes)
    }

    #[test]
    fn buffers_are_reused_and_the_pool_is_bounded() {
        let mut b = take(READ_CHUNK);
        let ptr = b.as_ptr();
        // Used: filled and consumed, as the decoder does.
        b.extend_from_slice(&[1; 1000]);
        let _ = b.split_to(1000);
        give(b);
        let again = take(READ_CHUNK);
        assert_eq!(again.as_ptr(), ptr, "reused");
        assert!(again.is_empty() && again.capacity() >= READ_CHUNK);
        assert_eq!(pooled_bytes(), 0);
        // Too large to keep.
        give(BytesMut::with_capacity(4 * MAX_READ_CHUNK));
        assert_eq!(pooled_bytes(), 0);
        // Shared with a message still alive: not kept.
        let mut shared = again;
        shared.extend_from_slice(&[2; 100]);
        let msg = shared.split_to(100).freeze();
        give(shared);
        assert_eq!(pooled_bytes(), 0);
        drop(msg);
        // Asked for more than the pooled one holds: a new buffer.
        give(BytesMut::with_capacity(READ_CHUNK));
        assert!(take(4 * READ_CHUNK).capacity() >= 4 * READ_CHUNK);
        for _ in 0..1000 {
            give(BytesMut::with_capacity(READ_CHUNK));
        }
        assert!(pooled_bytes() <= MAX_POOLED_BYTES);
        assert!(pooled_bytes() > MAX_POOLED_BYTES - 2 * READ_CHUNK);
    }
}
