//! Payload blocks: the wide, rarely read part of events (the raw record verbatim and its request
//! parameters) stored zstd-compressed in blocks of consecutive events.
//!
//! Audit records are highly repetitive JSON, so a block of a few hundred compresses several-fold, which
//! cuts the bytes SQLite writes (and the case's size) by about that factor. Each event row names its block
//! and its index in the block. Compression is lossless: the raw record read back is byte-for-byte the source
//! line (tests check this against the source files).
//!
//! Block format (before compression): `u32 count`, then `count + 1` little-endian `u32` offsets into the
//! body, then the body; entry *i* is `body[off[i]..off[i+1]]` = `u32 params_len`, params JSON, raw record.

use crate::Result;
use rusqlite::{Connection, OptionalExtension, Statement, params};

/// Events per block at most.
pub const BLOCK_EVENTS: usize = 256;
/// Uncompressed body bytes per block at most (a block closes once it passes this).
pub const BLOCK_BYTES: usize = 256 * 1024;
/// zstd level: fast, since blocks are written on the ingest's critical path.
const LEVEL: i32 = 1;

/// Accumulates entries into blocks. Does no I/O and no compression: the ingest's writer adds the payload
/// of each new event (duplicates' are never kept) and hands full blocks to a [`Compressor`] on a helper
/// thread.
pub struct BlockBuilder {
    next_id: i64,
    offsets: Vec<u32>,
    body: Vec<u8>,
}

/// A block, uncompressed, in the block format.
pub struct PlainBlock {
    /// Its id in `payload_blocks`.
    pub id: i64,
    /// The block's bytes before compression.
    pub plain: Vec<u8>,
}

/// A compressed block ready to insert.
pub struct Block {
    /// Its id in `payload_blocks`.
    pub id: i64,
    /// zstd-compressed contents.
    pub data: Vec<u8>,
}

impl BlockBuilder {
    /// A builder whose first block gets `first_id`.
    pub fn new(first_id: i64) -> Self {
        BlockBuilder {
            next_id: first_id,
            offsets: vec![0],
            body: Vec::with_capacity(BLOCK_BYTES + 64 * 1024),
        }
    }

    /// The id the first block of a case gets next: one after the largest stored.
    pub fn first_free_id(conn: &Connection) -> Result<i64> {
        Ok(conn.query_row(
            "SELECT coalesce(max(id), 0) + 1 FROM payload_blocks",
            [],
            |r| r.get(0),
        )?)
    }

    /// Where the next entry [`push`](Self::push)ed will be: (block id, index in block).
    pub fn next_entry(&self) -> (i64, i64) {
        (self.next_id, (self.offsets.len() - 1) as i64)
    }

    /// Adds an entry; returns (block id, index in block) to store on the event.
    pub fn push(&mut self, params: &str, raw: &str) -> (i64, i64) {
        let at = self.next_entry();
        self.body
            .extend_from_slice(&(params.len() as u32).to_le_bytes());
        self.body.extend_from_slice(params.as_bytes());
        self.body.extend_from_slice(raw.as_bytes());
        self.offsets.push(self.body.len() as u32);
        at
    }

    /// True once the open block should be closed.
    pub fn is_full(&self) -> bool {
        self.offsets.len() > BLOCK_EVENTS || self.body.len() >= BLOCK_BYTES
    }

    /// Returns the open block, if it holds anything, and starts the next.
    pub fn finish_block(&mut self) -> Option<PlainBlock> {
        let count = self.offsets.len() - 1;
        if count == 0 {
            return None;
        }
        let mut plain = Vec::with_capacity(4 + 4 * self.offsets.len() + self.body.len());
        plain.extend_from_slice(&(count as u32).to_le_bytes());
        for o in &self.offsets {
            plain.extend_from_slice(&o.to_le_bytes());
        }
        plain.extend_from_slice(&self.body);
        let block = PlainBlock {
            id: self.next_id,
            plain,
        };
        self.next_id += 1;
        self.offsets.truncate(1);
        self.body.clear();
        Some(block)
    }
}

/// Compresses blocks, reusing one zstd context (setting one up costs hundreds of KB).
pub struct Compressor {
    zstd: zstd::bulk::Compressor<'static>,
}

impl Compressor {
    /// A compressor at the store's level.
    pub fn new() -> std::io::Result<Self> {
        Ok(Compressor {
            zstd: zstd::bulk::Compressor::new(LEVEL)?,
        })
    }

    /// The block, compressed.
    pub fn compress(&mut self, block: &PlainBlock) -> std::io::Result<Block> {
        let mut data = Vec::with_capacity(zstd::zstd_safe::compress_bound(block.plain.len()));
        self.zstd.compress_to_buffer(&block.plain[..], &mut data)?;
        Ok(Block { id: block.id, data })
    }
}

/// Stores a block.
pub fn insert_block(stmt: &mut Statement<'_>, block: &Block) -> Result<()> {
    stmt.execute(params![block.id, block.data])?;
    Ok(())
}

/// The statement [`insert_block`] runs.
pub const INSERT_BLOCK: &str = "INSERT INTO payload_blocks(id, data) VALUES(?1, ?2)";

/// Reads entries back, keeping the last few decompressed blocks: time-ordered listings and exports visit
/// events in an order close to, but not exactly, the blocks' order (the 200k benchmark's time-ordered scan
/// switched blocks 28,758 times across 782 blocks, never going back more than one block), so one cached
/// block decompressed each block ~37 times. A decompression context is reused across blocks.
#[derive(Default)]
pub struct BlockReader {
    /// Most recently used last; at most [`BlockReader::CACHED`].
    cached: Vec<(i64, Vec<u8>)>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

/// One event's payload.
pub struct Payload {
    /// Request parameters, JSON.
    pub params: String,
    /// The raw record.
    pub raw: String,
}

fn corrupt(block: i64, what: &str) -> crate::StoreError {
    crate::StoreError::NotFound(format!("payload block {block} is damaged: {what}"))
}

impl BlockReader {
    /// Decompressed blocks kept (a block is ~256 events, ~200 KB).
    const CACHED: usize = 8;

    fn decompress(&mut self, block: i64, data: &[u8]) -> Result<Vec<u8>> {
        let damaged = |e: &dyn std::fmt::Display| corrupt(block, &e.to_string());
        // Blocks are written with their size in the frame header; a frame without one (none are written
        // so) would still be read, by the streaming decoder.
        let size = zstd::zstd_safe::get_frame_content_size(data).map_err(|e| damaged(&e))?;
        match size {
            Some(n) if n <= 1 << 30 => {
                if self.zstd.is_none() {
                    self.zstd = Some(zstd::bulk::Decompressor::new().map_err(|e| damaged(&e))?);
                }
                let z = self.zstd.as_mut().expect("just set");
                z.decompress(data, n as usize).map_err(|e| damaged(&e))
            }
            Some(_) => Err(corrupt(block, "implausible size")),
            None => zstd::stream::decode_all(data).map_err(|e| damaged(&e)),
        }
    }

    /// The payload of entry `index` of `block`.
    pub fn get(&mut self, conn: &Connection, block: i64, index: i64) -> Result<Payload> {
        match self.cached.iter().position(|c| c.0 == block) {
            Some(at) => {
                let hit = self.cached.remove(at);
                self.cached.push(hit);
            }
            None => {
                let data: Vec<u8> = conn
                    .query_row(
                        "SELECT data FROM payload_blocks WHERE id = ?1",
                        [block],
                        |r| r.get(0),
                    )
                    .optional()?
                    .ok_or_else(|| corrupt(block, "missing"))?;
                let plain = self.decompress(block, &data)?;
                if self.cached.len() == Self::CACHED {
                    self.cached.remove(0);
                }
                self.cached.push((block, plain));
            }
        }
        let plain = &self.cached.last().expect("cached").1;
        let u32_at = |at: usize| -> Option<usize> {
            plain
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        };
        let count = u32_at(0).ok_or_else(|| corrupt(block, "short header"))?;
        let i = usize::try_from(index)
            .ok()
            .filter(|i| *i < count)
            .ok_or_else(|| corrupt(block, "index out of range"))?;
        let body = 4 + 4 * (count + 1);
        let (start, end) = (
            u32_at(4 + 4 * i).ok_or_else(|| corrupt(block, "short offsets"))?,
            u32_at(4 + 4 * (i + 1)).ok_or_else(|| corrupt(block, "short offsets"))?,
        );
        let entry = plain
            .get(body + start..body + end)
            .ok_or_else(|| corrupt(block, "entry out of range"))?;
        let plen = entry
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| corrupt(block, "short entry"))?;
        let params = entry
            .get(4..4 + plen)
            .ok_or_else(|| corrupt(block, "short params"))?;
        let raw = &entry[4 + plen..];
        Ok(Payload {
            params: String::from_utf8_lossy(params).into_owned(),
            raw: String::from_utf8(raw.to_vec())
                .map_err(|_| corrupt(block, "raw record is not UTF-8"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where an entry went (block, index) and its raw record.
    type Placed = ((i64, i64), String);

    /// An in-memory payload table holding `n` entries (raw record `raw(i)`, params `{"i":"<i>"}`), written
    /// as the store writes them; where each went, with its raw record.
    fn stored(n: usize, raw: impl Fn(usize) -> String) -> (Connection, Vec<Placed>) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE payload_blocks(id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
        )
        .unwrap();
        let mut b = BlockBuilder::new(BlockBuilder::first_free_id(&conn).unwrap());
        let mut z = Compressor::new().unwrap();
        let mut ins = conn.prepare(INSERT_BLOCK).unwrap();
        let mut store = |plain: PlainBlock| {
            let block = z.compress(&plain).unwrap();
            // Blocks carry their size, so readers take the one-shot path with a reused context.
            assert!(matches!(
                zstd::zstd_safe::get_frame_content_size(&block.data),
                Ok(Some(_))
            ));
            insert_block(&mut ins, &block).unwrap();
        };
        let mut at = Vec::new();
        for i in 0..n {
            let raw = raw(i);
            at.push((b.push(&format!("{{\"i\":\"{i}\"}}"), &raw), raw));
            if b.is_full() {
                store(b.finish_block().unwrap());
            }
        }
        if let Some(last) = b.finish_block() {
            store(last);
        }
        assert!(b.finish_block().is_none());
        drop(ins);
        (conn, at)
    }

    #[test]
    fn entries_round_trip_across_blocks() {
        let (conn, at) = stored(1000, |i| {
            format!("{{\"n\":{i},\"s\":\"{}\"}}", "é".repeat(i % 7))
        });
        let blocks: i64 = conn
            .query_row("SELECT count(*) FROM payload_blocks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blocks, 4);
        let mut r = BlockReader::default();
        for (i, ((b, idx), raw)) in at.iter().enumerate().rev() {
            let p = r.get(&conn, *b, *idx).unwrap();
            assert_eq!(&p.raw, raw);
            assert_eq!(p.params, format!("{{\"i\":\"{i}\"}}"));
        }
        assert!(r.get(&conn, 1, 999).is_err());
        assert!(r.get(&conn, 99, 0).is_err());
    }

    #[test]
    fn reads_jumping_between_more_blocks_than_are_cached_stay_right() {
        let (conn, at) = stored(BLOCK_EVENTS * (BlockReader::CACHED + 4), |i| {
            format!("{{\"n\":{i}}}")
        });
        // A stride that visits every block in turn (evicting), then nearby entries (hitting the cache).
        let mut r = BlockReader::default();
        let n = at.len();
        for k in 0..n {
            let i = (k * 7919) % n;
            let ((block, idx), raw) = &at[i];
            assert_eq!(&r.get(&conn, *block, *idx).unwrap().raw, raw, "entry {i}");
            let j = (i + 1).min(n - 1);
            let ((block, idx), raw) = &at[j];
            assert_eq!(&r.get(&conn, *block, *idx).unwrap().raw, raw, "entry {j}");
        }
        assert!(r.cached.len() <= BlockReader::CACHED);
    }
}
