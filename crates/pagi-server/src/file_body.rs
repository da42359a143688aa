//! Reading a file body without blocking a worker thread on a cold page
//! cache: a chunk is read at once with a non-blocking positional read
//! (`preadv2` with `RWF_NOWAIT`) when the page cache has it, and on tokio's
//! blocking pool when it does not. Used for every file body that is not
//! sent with `sendfile` (TLS, HTTP/2), and to warm the cache before a
//! `sendfile`, which cannot be asked not to wait.

use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::task::JoinHandle;

/// A file body, read from `offset` for `left` bytes.
pub(crate) struct FileReader {
    file: Arc<File>,
    offset: u64,
    left: u64,
    /// A read on the blocking pool (the page cache missed).
    reading: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileReader {
    pub(crate) fn new(file: File, offset: u64, len: u64) -> FileReader {
        // Tell the kernel to read ahead generously (ignored if unsupported).
        let _ = rustix::fs::fadvise(
            &file,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::Sequential,
        );
        FileReader {
            file: Arc::new(file),
            offset,
            left: len,
            reading: None,
        }
    }

    /// Bytes not read (or sent) yet.
    pub(crate) fn left(&self) -> u64 {
        self.left
    }

    /// The file and where the next byte is, for `sendfile` (which advances
    /// the offset); report what it sent with [`FileReader::sent`].
    pub(crate) fn file_at(&mut self) -> (&File, &mut u64) {
        (&self.file, &mut self.offset)
    }

    /// `n` bytes went out by `sendfile` (the offset moved already).
    pub(crate) fn sent(&mut self, n: u64) {
        self.left -= n;
    }

    fn next_len(&self, max: usize) -> usize {
        usize::try_from(self.left).unwrap_or(usize::MAX).min(max)
    }

    /// The next chunk of at most `max` bytes; `None` at the end. A file that
    /// shrank meanwhile is an `UnexpectedEof` error, never zeros.
    pub(crate) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<Option<io::Result<Bytes>>> {
        if let Some(reading) = &mut self.reading {
            let read = std::task::ready!(Pin::new(reading).poll(cx));
            self.reading = None;
            return Poll::Ready(Some(
                read.map_err(io::Error::other)
                    .and_then(|r| r)
                    .and_then(|chunk| self.advance(chunk)),
            ));
        }
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let mut buf = vec![0u8; self.next_len(max)];
        match read_nowait(&self.file, self.offset, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Poll::Ready(Some(self.advance(Bytes::from(buf))))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.read_in_background(self.next_len(max), false);
                self.poll_chunk(cx, max)
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    /// Ready once the next `len` bytes are in the page cache (so a
    /// `sendfile` of them does not wait for the disk).
    pub(crate) fn poll_warm(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if let Some(reading) = &mut self.reading {
            let read = std::task::ready!(Pin::new(reading).poll(cx));
            self.reading = None;
            return Poll::Ready(read.map_err(io::Error::other).and_then(|r| r.map(drop)));
        }
        if cached(&self.file, self.offset, len) {
            return Poll::Ready(Ok(()));
        }
        self.read_in_background(len, true);
        self.poll_warm(cx, len)
    }

    fn advance(&mut self, chunk: Bytes) -> io::Result<Bytes> {
        if chunk.is_empty() {
            return Err(truncated());
        }
        let n = (chunk.len() as u64).min(self.left);
        self.offset += n;
        self.left -= n;
        Ok(chunk)
    }

    /// Read `len` bytes at the offset on the blocking pool (`warm_only`:
    /// just to get them into the page cache).
    fn read_in_background(&mut self, len: usize, warm_only: bool) {
        let (file, offset) = (self.file.clone(), self.offset);
        self.reading = Some(tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; len];
            let mut filled = 0;
            while filled < len {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            Ok(if warm_only {
                Bytes::new()
            } else {
                Bytes::from(buf)
            })
        }));
    }
}

pub(crate) fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file shrank while it was being sent",
    )
}

/// Whether both ends of the chunk at `offset` are in the page cache (a
/// non-blocking one-byte read of each succeeds). A file system that cannot
/// tell is taken as cached.
fn cached(file: &File, offset: u64, len: usize) -> bool {
    let mut byte = [0u8; 1];
    [offset, offset + len.saturating_sub(1) as u64]
        .into_iter()
        .all(|at| match read_nowait(file, at, &mut byte) {
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            Ok(_) => true,
        })
}

/// A positional read that fails with `WouldBlock` instead of waiting for
/// the disk (`preadv2` with `RWF_NOWAIT`); where that flag is not
/// supported, a plain positional read.
fn read_nowait(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    use rustix::io::{preadv2, Errno, ReadWriteFlags};
    match preadv2(
        file,
        &mut [io::IoSliceMut::new(buf)],
        offset,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(n) => Ok(n),
        Err(Errno::AGAIN) => Err(io::ErrorKind::WouldBlock.into()),
        Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {
            use std::os::unix::fs::FileExt;
            file.read_at(buf, offset)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_cover_the_range_and_a_shrunk_file_is_an_error() {
        let path = std::env::temp_dir().join(format!("pagi-file-body-{}", std::process::id()));
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut r = FileReader::new(File::open(&path).unwrap(), 10, 50_000);
        let mut got = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| r.poll_chunk(cx, 4096)).await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= 4096);
            got.extend_from_slice(&chunk);
        }
        assert!(got == data[10..50_010]);
        let mut r = FileReader::new(File::open(&path).unwrap(), 99_000, 5_000);
        let first = std::future::poll_fn(|cx| r.poll_chunk(cx, 1 << 20)).await;
        assert_eq!(first.unwrap().unwrap().len(), 1_000);
        let next = std::future::poll_fn(|cx| r.poll_chunk(cx, 1 << 20)).await;
        assert_eq!(
            next.unwrap().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        std::fs::remove_file(&path).unwrap();
    }
}
