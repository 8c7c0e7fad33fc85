//! Parallel gzip in the pigz manner: the input is cut into blocks that every core
//! compresses at once, each primed with the 32 KiB of input before it and ended with a
//! sync flush, so their concatenation is one deflate stream in one gzip member that any
//! gzip reader takes. The CRC and size are computed in order as the input arrives.

use std::io::{self, Write};

use flate2::{Compress, Compression, FlushCompress, Status};

/// Input per block.
const BLOCK: usize = 1024 * 1024;
/// Deflate's window: what a block may refer back to.
const WINDOW: usize = 32 * 1024;

/// A gzip writer that compresses on several threads.
pub(crate) struct ParallelGzip<W: Write> {
    inner: W,
    level: Compression,
    threads: usize,
    /// Input not yet compressed.
    pending: Vec<u8>,
    /// The last `WINDOW` bytes of input already compressed.
    dictionary: Vec<u8>,
    crc: crc32fast::Hasher,
    size: u64,
}

/// Deflates one block; `last` ends the stream, otherwise a sync flush ends the block
/// on a byte boundary.
fn deflate_block(
    level: Compression,
    dictionary: &[u8],
    input: &[u8],
    last: bool,
) -> io::Result<Vec<u8>> {
    let level = if level.level() > 0 && incompressible(input) {
        Compression::none()
    } else {
        level
    };
    let mut compress = Compress::new(level, false);
    if !dictionary.is_empty() {
        compress
            .set_dictionary(dictionary)
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 256);
    // Fed in pieces with no flush, then flushed: zlib works through its window in
    // pieces of this size anyway, and they stay in cache.
    let mut fed = 0;
    while fed < input.len() {
        let end = (fed + 64 * 1024).min(input.len());
        while (compress.total_in() as usize) < end {
            if out.len() == out.capacity() {
                out.reserve(64 * 1024);
            }
            let consumed = compress.total_in() as usize;
            compress
                .compress_vec(&input[consumed..end], &mut out, FlushCompress::None)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        fed = end;
    }
    loop {
        if out.len() == out.capacity() {
            out.reserve(64 * 1024);
        }
        let status = compress
            .compress_vec(&[], &mut out, flush)
            .map_err(|e| io::Error::other(e.to_string()))?;
        // zlib's rule: a flush is complete once output space is left over.
        match status {
            Status::StreamEnd => return Ok(out),
            _ if !last && out.len() < out.capacity() => return Ok(out),
            _ => {}
        }
    }
}

/// Whether a block looks like random data (already compressed, encrypted): three
/// samples that the fastest level cannot shrink by 2%. Such blocks are stored (level
/// 0): deflating them only spends time, and level 1 even grows them. The choice
/// depends on the data alone, so the output stays reproducible.
fn incompressible(input: &[u8]) -> bool {
    const SAMPLE: usize = 16 * 1024;
    if input.len() < 4 * SAMPLE {
        return false;
    }
    [0, input.len() / 2, input.len() - SAMPLE]
        .iter()
        .all(|&start| {
            let sample = &input[start..start + SAMPLE];
            let mut compress = Compress::new(Compression::fast(), false);
            let mut out = Vec::with_capacity(SAMPLE + 1024);
            let done = compress.compress_vec(sample, &mut out, FlushCompress::Finish);
            done.is_ok() && out.len() * 100 >= sample.len() * 98
        })
}

impl<W: Write> ParallelGzip<W> {
    /// A writer at `level` using `threads` threads (1 or more).
    pub(crate) fn new(mut inner: W, level: Compression, threads: usize) -> io::Result<Self> {
        // The gzip header: no name, no time, unknown OS (as Go writes it).
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
        Ok(Self {
            inner,
            level,
            threads: threads.max(1),
            pending: Vec::new(),
            dictionary: Vec::new(),
            crc: crc32fast::Hasher::new(),
            size: 0,
        })
    }

    /// Compresses `data` (whole blocks, or the rest when `last`) on the threads and
    /// writes the blocks in order.
    fn compress(&mut self, data: &[u8], last: bool) -> io::Result<()> {
        let blocks: Vec<&[u8]> = if data.is_empty() {
            vec![data]
        } else {
            data.chunks(BLOCK).collect()
        };
        let dictionaries: Vec<&[u8]> = (0..blocks.len())
            .map(|i| match i {
                0 => self.dictionary.as_slice(),
                _ => {
                    let previous = blocks[i - 1];
                    &previous[previous.len().saturating_sub(WINDOW)..]
                }
            })
            .collect();
        let count = blocks.len();
        let level = self.level;
        let per_thread = count.div_ceil(self.threads);
        let outputs: Vec<io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .step_by(per_thread)
                .map(|start| {
                    let end = (start + per_thread).min(count);
                    let (blocks, dictionaries) = (&blocks[start..end], &dictionaries[start..end]);
                    scope.spawn(move || {
                        blocks
                            .iter()
                            .zip(dictionaries)
                            .enumerate()
                            .map(|(i, (block, dictionary))| {
                                deflate_block(
                                    level,
                                    dictionary,
                                    block,
                                    last && start + i + 1 == count,
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(io::Error::other("a compression thread panicked"))]
                    })
                })
                .collect()
        });
        for output in outputs {
            self.inner.write_all(&output?)?;
        }
        let tail = &data[data.len().saturating_sub(WINDOW)..];
        if tail.len() == WINDOW {
            self.dictionary = tail.to_vec();
        } else {
            self.dictionary.extend_from_slice(tail);
            let excess = self.dictionary.len().saturating_sub(WINDOW);
            self.dictionary.drain(..excess);
        }
        Ok(())
    }

    /// Writes the last blocks and the trailer; returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let rest = std::mem::take(&mut self.pending);
        self.compress(&rest, true)?;
        let crc = std::mem::take(&mut self.crc).finalize();
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&(self.size as u32).to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        self.size += buf.len() as u64;
        self.pending.extend_from_slice(buf);
        // Enough for every thread to take a few blocks.
        let batch = BLOCK * self.threads * 4;
        if self.pending.len() >= batch {
            let whole = self.pending.len() / BLOCK * BLOCK;
            let data: Vec<u8> = self.pending.drain(..whole).collect();
            self.compress(&data, false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn round_trip(input: &[u8], threads: usize, level: u32) {
        let mut gz = ParallelGzip::new(Vec::new(), Compression::new(level), threads).unwrap();
        // Odd write sizes cross block boundaries.
        for piece in input.chunks(77_777) {
            gz.write_all(piece).unwrap();
        }
        let compressed = gz.finish().unwrap();
        // A single-member reader must see everything: one gzip member.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, input, "threads {threads}, level {level}");
    }

    #[test]
    fn one_member_that_any_reader_decodes() {
        let text: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        for threads in [1, 2, 3] {
            round_trip(&text, threads, 6);
        }
        round_trip(&text[..1000], 2, 1);
        round_trip(b"", 2, 6);
        round_trip(&text[..BLOCK * 8], 2, 0);
    }

    #[test]
    fn random_blocks_are_seen_as_incompressible() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let random: Vec<u8> = (0..BLOCK)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(incompressible(&random));
        let text: Vec<u8> = (0..BLOCK as u32)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        assert!(!incompressible(&text[..BLOCK]));
        round_trip(&[random.as_slice(), &text[..BLOCK]].concat(), 2, 9);
    }

    #[test]
    fn compresses_like_one_stream() {
        // References across block boundaries keep the ratio close to plain gzip.
        let text: Vec<u8> = (0..2_000_000u32)
            .flat_map(|i| format!("line {}\n", i % 5000).into_bytes())
            .collect();
        let mut gz = ParallelGzip::new(Vec::new(), Compression::default(), 2).unwrap();
        gz.write_all(&text).unwrap();
        let parallel = gz.finish().unwrap().len();
        let mut plain = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        plain.write_all(&text).unwrap();
        let plain = plain.finish().unwrap().len();
        assert!(parallel < plain + plain / 20, "{parallel} vs {plain}");
    }
}
