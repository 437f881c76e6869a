//! Block-parallel compression: the stream is cut into blocks of a fixed
//! uncompressed size, each compressed on its own (a complete gzip member or
//! zstd frame) on the rayon pool, and the results are written in order.
//!
//! Each block is a pure function of its bytes and the codec, so the output
//! never depends on the number of threads or on which thread compressed
//! what. Concatenated gzip members and zstd frames are valid streams
//! (RFC 1952 §2.2; the zstd format), read by Go's `compress/gzip` and zstd
//! readers (containerd, BuildKit, skopeo, umoci, Docker) and by strata's own
//! readers.
//!
//! Memory is bounded: at most [`BlockEncoder::window`] blocks (input or
//! output) are in flight per stream. Waiting never blocks a rayon worker on
//! a block that no thread has started: the writer takes such a block and
//! compresses it itself, so the encoder cannot deadlock, whatever pool it
//! runs on, including a pool of one thread whose only worker is the writer.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use flate2::GzBuilder;

/// A block codec: how one block becomes one self-contained member or frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockCodec {
    /// A gzip member (deflate at `level`, strata's fixed header).
    Gzip {
        /// Deflate level.
        level: u32,
        /// Header OS byte.
        os: u8,
    },
    /// A zstd frame at `level`: no checksum, no content size, no dictionary ID.
    Zstd {
        /// zstd level.
        level: i32,
    },
}

impl BlockCodec {
    /// Compresses one block into a complete member or frame.
    pub fn compress(self, block: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Self::Gzip { level, os } => {
                let mut enc = GzBuilder::new().mtime(0).operating_system(os).write(
                    Vec::with_capacity(block.len() / 2 + 64),
                    flate2::Compression::new(level),
                );
                enc.write_all(block)?;
                enc.finish()
            }
            Self::Zstd { level } => {
                let mut enc = zstd::stream::write::Encoder::new(
                    Vec::with_capacity(block.len() / 2 + 64),
                    level,
                )?;
                enc.include_checksum(false)?;
                enc.include_contentsize(false)?;
                enc.include_dictid(false)?;
                enc.write_all(block)?;
                enc.finish()
            }
        }
    }
}

enum State {
    /// Not started: its input.
    Pending(Vec<u8>),
    /// Taken by a thread that is compressing it.
    Running,
    /// Compressed (or failed).
    Done(io::Result<Vec<u8>>),
    /// Given up (the encoder was dropped), or its output was taken.
    Gone,
}

/// One block in flight.
struct Job {
    codec: BlockCodec,
    state: Mutex<State>,
    done: Condvar,
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Compression never panics holding the lock; recover anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Compresses the block if no thread has taken it yet.
    fn run(&self) {
        let input = {
            let mut s = self.lock();
            match std::mem::replace(&mut *s, State::Running) {
                State::Pending(input) => input,
                other => {
                    *s = other;
                    return;
                }
            }
        };
        let out = self.codec.compress(&input);
        drop(input);
        *self.lock() = State::Done(out);
        self.done.notify_all();
    }

    /// The block's output: compressed here if no thread has started it,
    /// else waited for.
    fn output(&self) -> io::Result<Vec<u8>> {
        self.run();
        let mut s = self.lock();
        loop {
            match std::mem::replace(&mut *s, State::Gone) {
                State::Done(out) => return out,
                State::Running => {
                    *s = State::Running;
                    s = self.done.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
                State::Pending(_) | State::Gone => unreachable!("run() took or finished it"),
            }
        }
    }

    fn is_pending(&self) -> bool {
        matches!(*self.lock(), State::Pending(_))
    }

    fn is_done(&self) -> bool {
        matches!(*self.lock(), State::Done(_))
    }

    /// Drops the input of a block no thread has started.
    fn cancel(&self) {
        let mut s = self.lock();
        if matches!(*s, State::Pending(_)) {
            *s = State::Gone;
        }
    }
}

/// A writer that compresses what it is given in blocks of `block_size`
/// bytes on the current rayon pool and writes the members or frames, in
/// order, to `inner`. [`finish`](Self::finish) writes the last block.
pub struct BlockEncoder<W: Write> {
    inner: W,
    codec: BlockCodec,
    block_size: usize,
    window: usize,
    buf: Vec<u8>,
    queue: Queue,
    blocks: u64,
}

impl<W: Write> BlockEncoder<W> {
    /// An encoder on the current rayon pool (the pool this thread works
    /// in, else the global one).
    pub fn new(inner: W, codec: BlockCodec, block_size: usize) -> Self {
        assert!(block_size > 0, "block size must be positive");
        Self {
            inner,
            codec,
            block_size,
            window: Self::window(),
            buf: Vec::with_capacity(block_size),
            queue: Queue::default(),
            blocks: 0,
        }
    }

    /// Blocks in flight at most: twice the pool's threads, so every
    /// thread has the next block ready when it finishes one.
    pub fn window() -> usize {
        2 * rayon::current_num_threads().max(1)
    }

    /// Hands the buffered block to the pool; writes finished blocks out
    /// while the window is full.
    fn submit(&mut self) -> io::Result<()> {
        let input = std::mem::replace(&mut self.buf, Vec::with_capacity(self.block_size));
        let job = Arc::new(Job {
            codec: self.codec,
            state: Mutex::new(State::Pending(input)),
            done: Condvar::new(),
        });
        self.queue.0.push_back(Arc::clone(&job));
        self.blocks += 1;
        rayon::spawn_fifo(move || job.run());
        while self.queue.0.len() >= self.window {
            self.write_front()?;
        }
        Ok(())
    }

    /// Writes the oldest block out, compressing it here if no thread has
    /// started it. While another thread compresses it, a writer that is
    /// itself a pool thread compresses later blocks of the window rather
    /// than idle; a writer outside the pool leaves them to the pool and
    /// gets back to feeding it (the tar and its hashes are the serial part).
    fn write_front(&mut self) -> io::Result<()> {
        let Some(front) = self.queue.0.front().cloned() else {
            return Ok(());
        };
        front.run();
        let in_pool = rayon::current_thread_index().is_some();
        while in_pool && !front.is_done() {
            match self.queue.0.iter().find(|j| j.is_pending()) {
                Some(job) => job.run(),
                None => break,
            }
        }
        self.queue.0.pop_front();
        let out = front.output()?;
        self.inner.write_all(&out)?;
        Ok(())
    }

    /// Compresses the rest (an empty stream still gets one empty member
    /// or frame), writes every block and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || self.blocks == 0 {
            self.submit()?;
        }
        while !self.queue.0.is_empty() {
            self.write_front()?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for BlockEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.block_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.block_size {
            self.submit()?;
        }
        Ok(n)
    }

    /// Flushes the inner writer only: blocks are cut at fixed sizes, never
    /// at a flush, so the bytes do not depend on how the input was written.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The blocks in flight, oldest first. Dropping it (an encoder dropped
/// after an error) cancels the blocks no thread has started.
#[derive(Default)]
struct Queue(VecDeque<Arc<Job>>);

impl Drop for Queue {
    fn drop(&mut self) {
        for job in &self.0 {
            job.cancel();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    /// Compressible pseudo-random text: words picked by xorshift.
    pub(crate) fn text(len: usize) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "layer ", "digest ", "model ", "shard ", "tar ", "gzip ", "zstd ", "frame ", "member ",
            "block ", "thread ", "pool ", "bytes ", "image ", "strata ", "\n",
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
            if x.is_multiple_of(7) {
                out.extend_from_slice(format!("{} ", x % 1000).as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn encode_in_pool(threads: usize, codec: BlockCodec, block: usize, input: &[u8]) -> Vec<u8> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(BlockEncoder::<Vec<u8>>::window(), 2 * threads);
            let mut enc = BlockEncoder::new(Vec::new(), codec, block);
            // Odd-sized writes: blocks are cut by size, not by write.
            for chunk in input.chunks(7919) {
                enc.write_all(chunk).unwrap();
            }
            enc.finish().unwrap()
        })
    }

    const CODECS: [BlockCodec; 2] = [
        BlockCodec::Gzip { level: 3, os: 255 },
        BlockCodec::Zstd { level: 3 },
    ];

    /// The blob is the concatenation of independently compressed blocks,
    /// whatever the pool size, including a pool whose one thread is the
    /// writer itself (it compresses every block: no deadlock).
    #[test]
    fn bytes_do_not_depend_on_threads() {
        let block = 256 << 10;
        let input = text(5 * block + 12345);
        for codec in CODECS {
            let expected: Vec<u8> = input
                .chunks(block)
                .flat_map(|c| codec.compress(c).unwrap())
                .collect();
            for threads in [1, 2, 16] {
                let out = encode_in_pool(threads, codec, block, &input);
                assert!(out == expected, "{codec:?} with {threads} threads");
            }
            assert!(expected.len() * 3 < input.len(), "{codec:?} compresses");
        }
    }

    /// Readers of multi-member gzip and multi-frame zstd get the input back.
    #[test]
    fn multi_block_streams_round_trip() {
        let block = 100_000;
        let input = text(7 * block + 1);
        let gz = encode_in_pool(2, CODECS[0], block, &input);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == input);
        // A single-member reader stops after the first block: these really
        // are separate members.
        let mut first = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut first)
            .unwrap();
        assert_eq!(first.len(), block);
        let zst = encode_in_pool(2, CODECS[1], block, &input);
        assert!(zstd::decode_all(&zst[..]).unwrap() == input);
        // Block size exactly reached: no empty trailing block.
        let exact = encode_in_pool(2, CODECS[0], block, &input[..2 * block]);
        let two: Vec<u8> = input[..2 * block]
            .chunks(block)
            .flat_map(|c| CODECS[0].compress(c).unwrap())
            .collect();
        assert!(exact == two);
    }

    #[test]
    fn empty_stream_is_one_empty_member_or_frame() {
        for codec in CODECS {
            let out = encode_in_pool(1, codec, 1024, b"");
            assert_eq!(out, codec.compress(b"").unwrap());
        }
        let mut back = Vec::new();
        let gz = encode_in_pool(1, CODECS[0], 1024, b"");
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }

    #[derive(Debug)]
    struct Failing;

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn inner_write_errors_reach_the_caller() {
        let input = text(10 * 1024);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let err = pool.install(|| {
            let mut enc = BlockEncoder::new(Failing, CODECS[0], 1024);
            match enc.write_all(&input) {
                // The window filled up and the first block was written.
                Err(e) => e,
                Ok(()) => enc.finish().unwrap_err(),
            }
        });
        assert_eq!(err.to_string(), "disk full");
    }
}
