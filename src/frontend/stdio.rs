//! The gateway transport: a tonic [`Channel`] over the process's stdin and
//! stdout, which BuildKit connects to its gRPC server (buildkit-gateway.md §1).
//!
//! The frontend is the HTTP/2 client and speaks with prior knowledge (tonic's
//! `http://` endpoints always do). The pipes cannot be reopened, so the
//! connector hands out its stream once and fails any reconnect.
//!
//! Pipes and FIFOs (what BuildKit's executors hand a frontend) are switched to
//! `O_NONBLOCK` and polled by tokio's reactor ([`pipe`]), so nothing is left
//! blocked in a read when the frontend is done. Other fds (a regular file, a
//! terminal) fall back to tokio's stdin/stdout, whose reads run on a blocking
//! thread and cannot be cancelled: callers end the process after `Return`
//! either way.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, Join, ReadBuf, Stdin, Stdout};
use tokio::net::unix::pipe;
use tonic::transport::{Channel, Endpoint, Uri};

use super::error::FrontendError;

/// Largest gRPC message strata accepts from BuildKit. BuildKit from 0.14 sends
/// up to 16 MiB; tonic's default of 4 MiB would refuse big `ReadFile` answers.
pub(crate) const MAX_DECODING_MESSAGE_SIZE: usize = 64 << 20;

/// Largest request strata sends: BuildKit before 0.14 (Docker 26.1, 20.10)
/// accepts at most 4 MiB per message (docs/design.md §6).
pub(crate) const MAX_REQUEST_SIZE: usize = 4 << 20;

/// A bidirectional byte stream over a read fd and a write fd.
pub(crate) struct StdioStream {
    inner: Inner,
}

enum Inner {
    /// Non-blocking pipes polled by the reactor.
    Pipe(Join<pipe::Receiver, pipe::Sender>),
    /// tokio's stdin/stdout (blocking threads underneath).
    Std(Join<Stdin, Stdout>),
}

impl StdioStream {
    /// The process's stdin and stdout. Must be called inside a tokio runtime.
    pub(crate) fn stdio() -> Result<StdioStream, FrontendError> {
        let read = io::stdin().as_fd().try_clone_to_owned();
        let write = io::stdout().as_fd().try_clone_to_owned();
        let read = read.map_err(FrontendError::Stdio)?;
        let write = write.map_err(FrontendError::Stdio)?;
        match StdioStream::from_pipes(read, write) {
            Ok(stream) => Ok(stream),
            Err(_) => Ok(StdioStream {
                inner: Inner::Std(tokio::io::join(tokio::io::stdin(), tokio::io::stdout())),
            }),
        }
    }

    /// A stream over the read end of one pipe and the write end of another
    /// (anonymous pipes or FIFOs), which are switched to non-blocking mode.
    /// Fails for other kinds of fd. Must be called inside a tokio runtime.
    pub(crate) fn from_pipes(read: OwnedFd, write: OwnedFd) -> io::Result<StdioStream> {
        let rx = pipe::Receiver::from_owned_fd(read)?;
        let tx = pipe::Sender::from_owned_fd(write)?;
        Ok(StdioStream {
            inner: Inner::Pipe(tokio::io::join(rx, tx)),
        })
    }
}

impl AsyncRead for StdioStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Pipe(join) => Pin::new(join).poll_read(cx, buf),
            Inner::Std(join) => Pin::new(join).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for StdioStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Pipe(join) => Pin::new(join).poll_write(cx, data),
            Inner::Std(join) => Pin::new(join).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Pipe(join) => Pin::new(join).poll_flush(cx),
            Inner::Std(join) => Pin::new(join).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Pipe(join) => Pin::new(join).poll_shutdown(cx),
            Inner::Std(join) => Pin::new(join).poll_shutdown(cx),
        }
    }
}

/// Connects a gRPC channel over `io` with HTTP/2 prior knowledge. The
/// connector yields `io` once; a reconnect attempt fails.
pub(crate) async fn channel_over<IO>(io: IO) -> Result<Channel, FrontendError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let slot = Arc::new(Mutex::new(Some(io)));
    let connector = tower::service_fn(move |_: Uri| {
        let io = slot.lock().map(|mut s| s.take()).unwrap_or(None);
        async move {
            io.map(TokioIo::new).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the stdio transport cannot be reconnected",
                )
            })
        }
    });
    Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
        .map_err(FrontendError::Connect)
}

/// The channel to BuildKit over stdin/stdout. Must be called inside a tokio
/// runtime; nothing else may read stdin or write stdout afterwards.
pub(crate) async fn connect() -> Result<Channel, FrontendError> {
    channel_over(StdioStream::stdio()?).await
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn stream_reads_and_writes_pipes() {
        // BuildKit's view: it writes our stdin and reads our stdout.
        let (stdin_rx, mut to_us) = std::io::pipe().unwrap();
        let (mut from_us, stdout_tx) = std::io::pipe().unwrap();
        let mut stream = StdioStream::from_pipes(stdin_rx.into(), stdout_tx.into()).unwrap();

        stream.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        from_us.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");

        // A write bigger than the pipe buffer goes through as the peer drains.
        let big = vec![7u8; 1 << 20];
        let peer = std::thread::spawn(move || {
            let mut all = vec![0u8; 1 << 20];
            from_us.read_exact(&mut all).unwrap();
            to_us.write_all(b"pong").unwrap();
            all
        });
        stream.write_all(&big).await.unwrap();
        let mut answer = [0u8; 4];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"pong");
        assert_eq!(peer.join().unwrap(), big);
    }

    #[tokio::test]
    async fn other_fds_are_refused() {
        let file = tempfile::tempfile().unwrap();
        let (_, tx) = std::io::pipe().unwrap();
        assert!(StdioStream::from_pipes(file.into(), tx.into()).is_err());
    }
}
