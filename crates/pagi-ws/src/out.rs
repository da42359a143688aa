//! The output queue: encoded frames waiting for the socket.
//!
//! Small frames are copied (header and payload) into one growing `BytesMut` tail so that many of
//! them go out in one slice. A large payload stays in its own `Bytes` (no copy): the tail up to
//! and including its header is frozen into the queue, then the payload is queued after it. The
//! wire order is therefore `chunks[0], chunks[1], …, tail`.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::frame::{header_len, put_header};

/// Payloads at least this big are queued without copying.
pub(crate) const ZERO_COPY_MIN: usize = 4096;
/// First allocation of the tail: enough for a batch of small frames.
const TAIL_MIN_ALLOC: usize = 512;

#[derive(Default)]
pub(crate) struct OutQueue {
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
    len: usize,
}

impl OutQueue {
    /// Bytes queued and not yet written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn reserve_tail(&mut self, n: usize) {
        if self.tail.capacity() == 0 && n <= TAIL_MIN_ALLOC {
            self.tail = tail_pool::take();
        }
        if self.tail.capacity() - self.tail.len() < n {
            self.tail.reserve(n.max(TAIL_MIN_ALLOC));
        }
    }

    /// Queue a frame whose payload is copied into the tail.
    pub(crate) fn push_copy(&mut self, b0: u8, payload: &[u8]) {
        let n = header_len(payload.len()) + payload.len();
        self.reserve_tail(n);
        put_header(&mut self.tail, b0, payload.len());
        self.tail.put_slice(payload);
        self.len += n;
    }

    /// Queue a frame whose two-part payload is copied into the tail (close code + reason).
    pub(crate) fn push_copy2(&mut self, b0: u8, a: &[u8], b: &[u8]) {
        let plen = a.len() + b.len();
        let n = header_len(plen) + plen;
        self.reserve_tail(n);
        put_header(&mut self.tail, b0, plen);
        self.tail.put_slice(a);
        self.tail.put_slice(b);
        self.len += n;
    }

    /// Queue a frame; large payloads are kept as they are, small ones copied.
    pub(crate) fn push(&mut self, b0: u8, payload: Bytes) {
        if payload.len() < ZERO_COPY_MIN {
            self.push_copy(b0, &payload);
            return;
        }
        let h = header_len(payload.len());
        self.reserve_tail(h);
        put_header(&mut self.tail, b0, payload.len());
        self.len += h + payload.len();
        self.chunks.push_back(self.tail.split().freeze());
        self.chunks.push_back(payload);
    }

    /// Fill `dst` with the queued bytes in order; returns how many slices were filled.
    pub(crate) fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let parts = self
            .chunks
            .iter()
            .map(|b| &b[..])
            .chain(std::iter::once(&self.tail[..]))
            .filter(|s| !s.is_empty());
        for (slot, part) in dst.iter_mut().zip(parts) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }

    /// Drop `n` written bytes from the front. Once empty, every buffer is released.
    pub(crate) fn advance(&mut self, mut n: usize) {
        assert!(
            n <= self.len,
            "advance({n}) past the {} queued bytes",
            self.len
        );
        self.len -= n;
        while n > 0 {
            match self.chunks.front_mut() {
                Some(front) if n >= front.len() => {
                    n -= front.len();
                    self.chunks.pop_front();
                }
                Some(front) => {
                    front.advance(n);
                    n = 0;
                }
                None => {
                    self.tail.advance(n);
                    n = 0;
                }
            }
        }
        if self.len == 0 {
            self.release();
        }
    }

    /// Free the buffers (only when nothing is queued).
    fn release(&mut self) {
        debug_assert_eq!(self.len, 0);
        self.chunks = VecDeque::new();
        tail_pool::give(std::mem::take(&mut self.tail));
    }

    /// Heap bytes held by the queue's own buffers (excluding shared payloads).
    #[cfg(test)]
    pub(crate) fn held_capacity(&self) -> usize {
        self.tail.capacity() + self.chunks.capacity() * std::mem::size_of::<Bytes>()
    }
}

/// A per-thread cache of drained tails. The queue frees its buffers whenever it drains (so an
/// idle session holds none), which with one message in flight would otherwise mean an
/// allocation and a free per message. Bounded: at most `MAX_POOLED` tails of at most
/// `MAX_POOLED_CAPACITY` bytes per thread; larger ones go back to the allocator.
mod tail_pool {
    use std::cell::RefCell;

    use bytes::BytesMut;

    use super::TAIL_MIN_ALLOC;

    const MAX_POOLED: usize = 64;
    const MAX_POOLED_CAPACITY: usize = 4096;

    thread_local! {
        static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty tail (possibly without capacity, if the pool is empty).
    pub(super) fn take() -> BytesMut {
        POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default()
    }

    /// Keep a drained tail for the next `take` on this thread, if it is small and unshared.
    pub(super) fn give(mut tail: BytesMut) {
        tail.clear();
        // Reset the start to the front of the allocation; fails if a frozen part is still
        // shared (then it is not kept).
        if !tail.try_reclaim(TAIL_MIN_ALLOC) || tail.capacity() > MAX_POOLED_CAPACITY {
            return;
        }
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < MAX_POOLED {
                p.push(tail);
            }
        });
    }

    #[cfg(test)]
    pub(super) fn pooled() -> usize {
        POOL.with(|p| p.borrow().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &OutQueue) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 64];
        let n = q.chunks_vectored(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn order_and_zero_copy() {
        let mut q = OutQueue::default();
        q.push_copy(0x81, b"a");
        let big = Bytes::from(vec![7u8; 70_000]);
        let big_ptr = big.as_ptr();
        q.push(0x82, big);
        q.push_copy(0x8A, b"pong");
        q.push(0x82, Bytes::from_static(b"small"));
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(q.chunks_vectored(&mut slices), 3);
        assert_eq!(slices[1].as_ptr(), big_ptr, "large payload not copied");
        let wire = drain(&q);
        let mut want = vec![0x81, 1, b'a', 0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70];
        want.extend(std::iter::repeat_n(7u8, 70_000));
        want.extend_from_slice(&[0x8A, 4, b'p', b'o', b'n', b'g', 0x82, 5]);
        want.extend_from_slice(b"small");
        assert_eq!(wire, want);
        assert_eq!(q.len(), want.len());

        // Partial writes at every kind of boundary keep the order.
        let mut written = Vec::new();
        for step in [1usize, 12, 3, 50_000, 19_990, 5, 7].into_iter().cycle() {
            if q.len() == 0 {
                break;
            }
            let rest = drain(&q);
            let step = step.min(rest.len());
            written.extend_from_slice(&rest[..step]);
            q.advance(step);
        }
        assert_eq!(q.len(), 0);
        assert_eq!(written, want);
        assert_eq!(q.held_capacity(), 0, "buffers released when drained");
    }

    #[test]
    fn drained_tails_are_reused_from_the_thread_pool() {
        let mut q = OutQueue::default();
        q.push_copy(0x82, b"abc");
        let ptr = q.tail.as_ptr();
        q.advance(q.len());
        assert_eq!(q.held_capacity(), 0);
        let before = tail_pool::pooled();
        assert!(before >= 1);
        q.push_copy(0x82, b"def");
        assert_eq!(q.tail.as_ptr(), ptr, "same allocation");
        assert_eq!(tail_pool::pooled(), before - 1);
        assert_eq!(drain(&q), [0x82, 3, b'd', b'e', b'f']);
        // A tail that grew large is freed, not pooled.
        q.push_copy(0x82, &[0u8; 10_000]);
        q.advance(q.len());
        assert_eq!(tail_pool::pooled(), before - 1);
    }

    #[test]
    fn limited_slices() {
        let mut q = OutQueue::default();
        for _ in 0..4 {
            q.push(0x82, Bytes::from(vec![1u8; 5000]));
        }
        let mut slices = [IoSlice::new(&[]); 3];
        assert_eq!(q.chunks_vectored(&mut slices), 3);
        let mut none: [IoSlice<'_>; 0] = [];
        assert_eq!(q.chunks_vectored(&mut none), 0);
    }
}
