//! A strict reading of a zip file's structure, before any member is trusted.
//!
//! Zip readers disagree on ambiguous archives, and a forger uses exactly that: the `zip` crate reads the
//! central directory (and keeps one of two entries with the same name), while `unzip -n`, Java's
//! `ZipInputStream` and other streaming readers walk the local headers from the start of the file. An
//! archive whose two views differ can verify here and show forged content there. So [`check`] accepts only
//! archives where both views are the same archive:
//!
//! * one end-of-central-directory record, at the very end (no trailing bytes; a zip64 record and locator
//!   where the sizes need them), on disk 0, with consistent entry counts;
//! * a central directory that ends exactly where the end record (or zip64 record) starts, whose entries
//!   are exactly as many as the end record says, with unique names;
//! * local entries laid end to end from byte 0 — no data before the first, between two, or between the last
//!   and the central directory — each local header matching its central entry (name, method, flags, CRC
//!   and sizes, or a data descriptor that matches them).
//!
//! It reads headers only (seeks and small reads), so it costs nothing next to hashing the members.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;

/// One member as the central directory describes it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Name.
    pub name: String,
    /// Offset of its local header.
    pub offset: u64,
    /// Compressed size.
    pub compressed: u64,
    /// Uncompressed size.
    pub uncompressed: u64,
    crc: u32,
    method: u16,
    flags: u16,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64le(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn read_at<R: Read + Seek>(r: &mut R, at: u64, len: usize) -> Result<Vec<u8>, String> {
    r.seek(SeekFrom::Start(at))
        .map_err(|e| format!("cannot seek to byte {at}: {e}"))?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)
        .map_err(|_| format!("truncated: {len} bytes expected at byte {at}"))?;
    Ok(buf)
}

/// The zip64 extended information of an entry: replaces the fields that are all-ones.
fn zip64_extra(
    extra: &[u8],
    uncompressed: &mut u64,
    compressed: &mut u64,
    offset: Option<&mut u64>,
) -> Result<(), String> {
    let mut i = 0;
    while i + 4 <= extra.len() {
        let id = u16le(extra, i);
        let len = u16le(extra, i + 2) as usize;
        let data = extra
            .get(i + 4..i + 4 + len)
            .ok_or("an extra field runs past its header")?;
        if id == 0x0001 {
            let mut k = 0;
            let mut next = |v: &mut u64| -> Result<(), String> {
                if *v == u32::MAX as u64 {
                    *v = u64le(data.get(k..k + 8).ok_or("short zip64 field")?, 0);
                    k += 8;
                }
                Ok(())
            };
            next(uncompressed)?;
            next(compressed)?;
            if let Some(o) = offset {
                next(o)?;
            }
            return Ok(());
        }
        i += 4 + len;
    }
    Ok(())
}

/// Checks the structure of the zip read by `r` (see the module docs); returns its entries in file order.
pub fn check<R: Read + Seek>(r: &mut R) -> Result<Vec<Entry>, String> {
    let len = r
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("cannot read the file size: {e}"))?;
    if len < 22 {
        return Err(format!("{len} bytes: too short to be a zip archive"));
    }
    // The end record (22 bytes) carries a comment length; ours have none, but any comment must end the
    // file exactly.
    let tail_len = len.min(22 + 65_535) as usize;
    let tail = read_at(r, len - tail_len as u64, tail_len)?;
    let eocd_at = (0..=tail_len.saturating_sub(22))
        .rev()
        .find(|&i| {
            u32le(&tail, i) == EOCD_SIG && i + 22 + u16le(&tail, i + 20) as usize == tail_len
        })
        .ok_or("no end-of-central-directory record at the end of the file (trailing data?)")?;
    let eocd = &tail[eocd_at..eocd_at + 22];
    let eocd_pos = len - tail_len as u64 + eocd_at as u64;
    let (disk, cd_disk) = (u16le(eocd, 4), u16le(eocd, 6));
    let (on_disk, total) = (u16le(eocd, 8) as u64, u16le(eocd, 10) as u64);
    let mut cd_size = u32le(eocd, 12) as u64;
    let mut cd_offset = u32le(eocd, 16) as u64;
    if disk != 0 || cd_disk != 0 || on_disk != total {
        return Err("multi-disk archive, or entry counts in the end record disagree".into());
    }
    let mut entries_total = total;
    // Where the central directory must end: the zip64 record if there is one, else the end record.
    let mut cd_end = eocd_pos;
    if eocd_pos >= 20 {
        let loc = read_at(r, eocd_pos - 20, 20)?;
        if u32le(&loc, 0) == ZIP64_LOCATOR_SIG {
            let z64_pos = u64le(&loc, 8);
            if u32le(&loc, 4) != 0 || u32le(&loc, 16) != 1 || z64_pos + 56 > eocd_pos - 20 {
                return Err("zip64 locator is inconsistent".into());
            }
            let z = read_at(r, z64_pos, 56)?;
            if u32le(&z, 0) != ZIP64_EOCD_SIG || z64_pos + 12 + u64le(&z, 4) != eocd_pos - 20 {
                return Err("zip64 end record is missing or not followed by its locator".into());
            }
            if u64le(&z, 24) != u64le(&z, 32) {
                return Err("entry counts in the zip64 end record disagree".into());
            }
            entries_total = u64le(&z, 32);
            cd_size = u64le(&z, 40);
            cd_offset = u64le(&z, 48);
            cd_end = z64_pos;
        }
    }
    if cd_offset.checked_add(cd_size) != Some(cd_end) {
        return Err(format!(
            "the central directory ({cd_size} bytes at {cd_offset}) does not end where the end record \
             starts ({cd_end}): data between them"
        ));
    }
    if cd_size > 256 << 20 || entries_total > 10_000_000 {
        return Err("central directory too large".into());
    }
    let cd = read_at(r, cd_offset, cd_size as usize)?;
    let mut entries = Vec::new();
    let mut names = BTreeSet::new();
    let mut i = 0usize;
    while i < cd.len() {
        if i + 46 > cd.len() || u32le(&cd, i) != CENTRAL_SIG {
            return Err(format!(
                "central directory entry {} is malformed",
                entries.len()
            ));
        }
        let flags = u16le(&cd, i + 8);
        let method = u16le(&cd, i + 10);
        let crc = u32le(&cd, i + 16);
        let mut compressed = u32le(&cd, i + 20) as u64;
        let mut uncompressed = u32le(&cd, i + 24) as u64;
        let (n, x, c) = (
            u16le(&cd, i + 28) as usize,
            u16le(&cd, i + 30) as usize,
            u16le(&cd, i + 32) as usize,
        );
        let mut offset = u32le(&cd, i + 42) as u64;
        let name_bytes = cd
            .get(i + 46..i + 46 + n)
            .ok_or("central directory entry name runs past the directory")?;
        let extra = cd
            .get(i + 46 + n..i + 46 + n + x)
            .ok_or("central directory extra field runs past the directory")?;
        zip64_extra(extra, &mut uncompressed, &mut compressed, Some(&mut offset))?;
        let name = String::from_utf8(name_bytes.to_vec())
            .map_err(|_| "an entry name is not UTF-8".to_string())?;
        if !names.insert(name.clone()) {
            return Err(format!(
                "member {name} appears twice in the central directory"
            ));
        }
        entries.push(Entry {
            name,
            offset,
            compressed,
            uncompressed,
            crc,
            method,
            flags,
        });
        i += 46 + n + x + c;
    }
    if entries.len() as u64 != entries_total {
        return Err(format!(
            "the end record counts {entries_total} entries, the central directory holds {}",
            entries.len()
        ));
    }
    entries.sort_by_key(|e| e.offset);
    let mut expected = 0u64;
    for e in &entries {
        if e.offset != expected {
            return Err(format!(
                "member {}: its local header is at byte {} but the previous entry ends at {expected} \
                 ({})",
                e.name,
                e.offset,
                if e.offset > expected {
                    "data hidden before or between entries"
                } else {
                    "entries overlap"
                }
            ));
        }
        let h = read_at(r, e.offset, 30)?;
        if u32le(&h, 0) != LOCAL_SIG {
            return Err(format!(
                "member {}: no local header at byte {}",
                e.name, e.offset
            ));
        }
        let (n, x) = (u16le(&h, 26) as usize, u16le(&h, 28) as usize);
        let rest = read_at(r, e.offset + 30, n + x)?;
        if rest[..n] != *e.name.as_bytes() {
            return Err(format!(
                "member {}: the local header names it {:?}",
                e.name,
                String::from_utf8_lossy(&rest[..n])
            ));
        }
        let (lflags, lmethod) = (u16le(&h, 6), u16le(&h, 8));
        if lmethod != e.method || (lflags & 0x0008) != (e.flags & 0x0008) {
            return Err(format!(
                "member {}: local and central headers disagree on method or flags",
                e.name
            ));
        }
        let mut lcomp = u32le(&h, 18) as u64;
        let mut lunc = u32le(&h, 22) as u64;
        zip64_extra(&rest[n..], &mut lunc, &mut lcomp, None)?;
        let data_end = e.offset + 30 + (n + x) as u64 + e.compressed;
        if lflags & 0x0008 == 0 {
            if u32le(&h, 14) != e.crc || lcomp != e.compressed || lunc != e.uncompressed {
                return Err(format!(
                    "member {}: local and central headers disagree on CRC or sizes",
                    e.name
                ));
            }
            expected = data_end;
        } else {
            // Data descriptor after the data: optional signature, CRC, sizes (4 or 8 bytes each).
            let d = read_at(
                r,
                data_end,
                24.min((cd_offset - data_end.min(cd_offset)) as usize),
            )?;
            let at = usize::from(d.len() >= 4 && u32le(&d, 0) == DESCRIPTOR_SIG) * 4;
            let long = e.compressed >= u32::MAX as u64 || e.uncompressed >= u32::MAX as u64;
            let size = if long { 20 } else { 12 };
            if d.len() < at + size || u32le(&d, at) != e.crc {
                return Err(format!(
                    "member {}: data descriptor missing or wrong",
                    e.name
                ));
            }
            let (dc, du) = if long {
                (u64le(&d, at + 4), u64le(&d, at + 12))
            } else {
                (u32le(&d, at + 4) as u64, u32le(&d, at + 8) as u64)
            };
            if dc != e.compressed || du != e.uncompressed {
                return Err(format!("member {}: data descriptor sizes disagree", e.name));
            }
            expected = data_end + (at + size) as u64;
        }
    }
    if expected != cd_offset {
        return Err(format!(
            "{} bytes between the last entry and the central directory",
            cd_offset as i128 - expected as i128
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::check;
    use std::io::Cursor;

    /// Found by the `bundle_verify` fuzz target: an empty file (or any file shorter than an end record)
    /// indexed past the end of its last 0 bytes.
    #[test]
    fn fuzz_empty_and_short_files_are_errors_not_panics() {
        for len in 0..30 {
            let bytes = vec![0u8; len];
            assert!(check(&mut Cursor::new(&bytes)).is_err(), "{len}");
        }
        let mut eocd_only = vec![0x50, 0x4b, 0x05, 0x06];
        eocd_only.extend([0u8; 18]);
        assert_eq!(check(&mut Cursor::new(&eocd_only)).unwrap().len(), 0);
    }
}
