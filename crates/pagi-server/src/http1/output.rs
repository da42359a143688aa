//! What an HTTP/1.1 connection has to write: response heads and framing
//! (small, coalesced into one buffer), body pieces (kept as they are, no
//! copy) and files, written with vectored writes; files go out with
//! `sendfile(2)` on plain sockets, through a buffer otherwise.
//!
//! Reading a file must not block the connection's worker thread on a cold
//! page cache (see `crate::file_body`).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};

use crate::file_body::{truncated, FileReader};
use crate::http::exchange::FileBody;
use crate::listener::Io;

/// Pieces up to this size are copied into the framing buffer (one slice
/// fewer for the kernel); larger ones are written from where they are.
const COPY_MAX: usize = 1024;
/// Most slices handed to one `writev`.
const MAX_SLICES: usize = 64;
/// A file goes out by `sendfile` in chunks of this size, each probed for the
/// page cache first (1 MiB measured best with `bench/files`, against 256 KiB
/// and 2 MiB).
const SENDFILE_CHUNK: usize = 1024 * 1024;
/// Through a buffer (TLS), a file is read in chunks of this size.
const READ_CHUNK: usize = 256 * 1024;
/// Bytes written in one poll before the task yields to others: a fast
/// client downloading a large body must not starve the worker thread.
const WRITE_PER_POLL: u64 = 2 * 1024 * 1024;

/// One thing to write.
enum Piece {
    Bytes(Bytes),
    File(FileSend),
}

/// The connection's pending output.
#[derive(Default)]
pub(crate) struct Output {
    pieces: VecDeque<Piece>,
    /// Small bytes (heads, chunk framing, small bodies), not yet a piece.
    tail: BytesMut,
    /// Bytes not written yet (files count what is left of them).
    pending: u64,
}

impl Output {
    /// Bytes not written yet.
    pub(crate) fn pending(&self) -> u64 {
        self.pending
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// The buffer small output is written into (`pending` is counted when
    /// it is sealed).
    pub(crate) fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    pub(crate) fn put_slice(&mut self, b: &[u8]) {
        self.tail.extend_from_slice(b);
    }

    /// Queue body bytes: copied if small, else kept as they are.
    pub(crate) fn push_bytes(&mut self, b: Bytes) {
        if b.len() <= COPY_MAX {
            self.tail.extend_from_slice(&b);
            return;
        }
        self.seal();
        self.pending += b.len() as u64;
        self.pieces.push_back(Piece::Bytes(b));
    }

    /// Queue a file's bytes.
    pub(crate) fn push_file(&mut self, f: FileBody) {
        if f.len == 0 {
            return;
        }
        self.seal();
        self.pending += f.len;
        self.pieces.push_back(Piece::File(FileSend::new(f)));
    }

    /// Make the small bytes so far a piece of their own.
    fn seal(&mut self) {
        if !self.tail.is_empty() {
            let b = self.tail.split().freeze();
            self.pending += b.len() as u64;
            self.pieces.push_back(Piece::Bytes(b));
        }
    }

    /// Drop everything not written (the connection is going away).
    pub(crate) fn clear(&mut self) {
        self.pieces.clear();
        self.tail.clear();
        self.pending = 0;
    }

    /// Write until everything went out (`Ready(Ok)`), the socket is full,
    /// or this poll wrote its share (`Pending`, woken again).
    pub(crate) fn poll_write<I: Io>(
        &mut self,
        io: &mut I,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.seal();
        let mut written = 0u64;
        loop {
            if written >= WRITE_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match self.pieces.front_mut() {
                None => return Pin::new(&mut *io).poll_flush(cx),
                Some(Piece::File(f)) => {
                    let n = std::task::ready!(f.poll_send(io, cx))?;
                    written += n;
                    self.pending -= n;
                    if f.done() {
                        self.pieces.pop_front();
                    }
                }
                Some(Piece::Bytes(_)) => {
                    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                    let mut n = 0;
                    for p in self.pieces.iter() {
                        let Piece::Bytes(b) = p else { break };
                        if n == MAX_SLICES {
                            break;
                        }
                        slices[n] = IoSlice::new(b);
                        n += 1;
                    }
                    let stream = Pin::new(&mut *io);
                    let w = if n == 1 {
                        std::task::ready!(stream.poll_write(cx, &slices[0]))?
                    } else {
                        std::task::ready!(stream.poll_write_vectored(cx, &slices[..n]))?
                    };
                    if w == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    self.advance(w);
                    written += w as u64;
                }
            }
        }
    }

    /// `n` bytes of the leading byte pieces were written.
    fn advance(&mut self, mut n: usize) {
        self.pending -= n as u64;
        while n > 0 {
            let Some(Piece::Bytes(b)) = self.pieces.front_mut() else {
                unreachable!("advanced past the byte pieces");
            };
            if n < b.len() {
                b.advance(n);
                return;
            }
            n -= b.len();
            self.pieces.pop_front();
        }
    }
}

/// A file being sent: by `sendfile` where the stream allows it, else
/// through a buffer.
struct FileSend {
    reader: FileReader,
    /// Read from the file, not written yet (the buffered way).
    buffered: Bytes,
}

impl FileSend {
    fn new(f: FileBody) -> FileSend {
        FileSend {
            reader: FileReader::new(f.file, f.offset, f.len),
            buffered: Bytes::new(),
        }
    }

    fn done(&self) -> bool {
        self.reader.left() == 0 && self.buffered.is_empty()
    }

    /// Send some of the file: `Ready(Ok(n))` with the bytes written.
    fn poll_send<I: Io>(&mut self, io: &mut I, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        if !self.buffered.is_empty() {
            let n = std::task::ready!(Pin::new(&mut *io).poll_write(cx, &self.buffered))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.buffered.advance(n);
            return Poll::Ready(Ok(n as u64));
        }
        if io.can_sendfile() {
            let chunk = usize::try_from(self.reader.left())
                .unwrap_or(usize::MAX)
                .min(SENDFILE_CHUNK);
            // `sendfile` cannot be asked not to wait for the disk: the chunk
            // is brought into the page cache first if it is not there.
            std::task::ready!(self.reader.poll_warm(cx, chunk))?;
            let (file, offset) = self.reader.file_at();
            let sent = std::task::ready!(io.poll_sendfile(cx, file, offset, chunk))?;
            if sent == 0 {
                return Poll::Ready(Err(truncated()));
            }
            self.reader.sent(sent as u64);
            return Poll::Ready(Ok(sent as u64));
        }
        match std::task::ready!(self.reader.poll_chunk(cx, READ_CHUNK)) {
            Some(chunk) => {
                self.buffered = chunk?;
                Poll::Ready(Ok(0))
            }
            None => Poll::Ready(Ok(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use tokio::io::AsyncReadExt;

    fn temp_file(name: &str, len: usize) -> (std::path::PathBuf, Vec<u8>) {
        let path = std::env::temp_dir().join(format!("pagi-output-{name}-{}", std::process::id()));
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        (path, data)
    }

    /// Write everything in `out` into one end of a socket pair; what
    /// arrived at the other.
    async fn drain(mut out: Output) -> Vec<u8> {
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let mut a = crate::listener::Stream::Unix(a);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        std::future::poll_fn(|cx| out.poll_write(&mut a, cx))
            .await
            .unwrap();
        assert!(out.is_empty());
        drop(a);
        reader.await.unwrap()
    }

    #[tokio::test]
    async fn pieces_files_and_framing_arrive_in_order() {
        let (path, data) = temp_file("order", 3 * SENDFILE_CHUNK + 123);
        let mut out = Output::default();
        out.put_slice(b"HEAD\r\n");
        out.push_bytes(Bytes::from_static(b"small"));
        out.push_bytes(Bytes::from(vec![b'L'; 5000]));
        out.push_file(FileBody {
            file: File::open(&path).unwrap(),
            offset: 100,
            len: data.len() as u64 - 100,
        });
        out.put_slice(b"\r\nEND");
        let got = drain(out).await;
        let mut want = b"HEAD\r\nsmall".to_vec();
        want.extend(vec![b'L'; 5000]);
        want.extend(&data[100..]);
        want.extend(b"\r\nEND");
        assert_eq!(got.len(), want.len());
        assert!(got == want);
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn a_file_that_shrinks_while_sent_is_an_error_not_zeros() {
        let (path, data) = temp_file("shrink", 1000);
        let mut out = Output::default();
        out.push_file(FileBody {
            file: File::open(&path).unwrap(),
            offset: 0,
            len: data.len() as u64 + 500,
        });
        let (a, _b) = tokio::net::UnixStream::pair().unwrap();
        let mut a = crate::listener::Stream::Unix(a);
        let r = std::future::poll_fn(|cx| out.poll_write(&mut a, cx)).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        std::fs::remove_file(&path).unwrap();
    }
}
