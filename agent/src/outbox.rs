//! Durable, bounded, on-disk queue of metric batches awaiting the control plane's ack.
//!
//! Directory layout:
//! - `seg-<first_seq, 20 digits>.log`: segments of records, each framed as
//!   `[u32 len][u32 crc32(seq ++ payload)][u64 seq][payload]` (little-endian). Seqs within
//!   a segment are contiguous, starting at the seq in the file name.
//! - `acked`: the highest acknowledged seq (`u64` + `u32` crc32), replaced atomically.
//!
//! Durability: each append is one header write plus one payload write followed by one
//! `fdatasync`. Starting a new segment (about every 1 MiB) also fsyncs the directory once;
//! each effective ack fsyncs the state file and the directory.
//!
//! Damage found on disk (torn tail, garbage, bad checksum) is never an error: everything
//! from the first bad record of a segment onwards is truncated with a warning.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

/// Largest payload [`Outbox::append`] accepts.
pub const MAX_PAYLOAD: usize = 4 * 1024 * 1024;
/// Bytes of framing in front of every payload.
const HEADER: u64 = 16;
/// Segments roll at this size, or at `max_bytes / 8` if that is smaller.
const SEGMENT_TARGET: u64 = 1024 * 1024;
const READ_BUF: usize = 64 * 1024;
const STATE_FILE: &str = "acked";
const STATE_TMP: &str = "acked.tmp";

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox I/O error on {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("payload of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    PayloadTooLarge { len: usize },
    #[error("record of {record} bytes cannot fit in an outbox capped at {max_bytes} bytes")]
    ExceedsCap { record: u64, max_bytes: u64 },
    #[error("outbox sequence numbers exhausted")]
    SeqExhausted,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// In-memory index entry for one segment file; holds no payloads.
#[derive(Debug)]
struct Segment {
    /// Seq of the first record (from the file name).
    first: u64,
    /// Seq the next record appended to this segment would get.
    next: u64,
    /// Valid bytes in the file.
    bytes: u64,
}

impl Segment {
    fn unacked(&self, acked: u64) -> u64 {
        self.next
            .saturating_sub(self.first.max(acked.saturating_add(1)))
    }
}

#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    max_bytes: u64,
    segment_target: u64,
    /// Oldest first; the back one is the segment appends go to.
    segments: VecDeque<Segment>,
    /// Open handle on the back segment, positioned at its end.
    active: Option<File>,
    acked: u64,
    last_seq: u64,
    dropped: u64,
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `dir`, holding at most `max_bytes` on disk.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Outbox, OutboxError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        remove_if_exists(&dir.join(STATE_TMP))?;
        let acked = read_state(&dir.join(STATE_FILE))?;

        let mut firsts = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            if let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();

        let mut segments = VecDeque::new();
        let mut last_seq = acked;
        let mut prev_next = 0;
        for (i, &first) in firsts.iter().enumerate() {
            let path = segment_path(dir, first);
            let seg = recover_segment(&path, first)?;
            // Even a segment we discard below proves these seqs were handed out.
            last_seq = last_seq.max(seg.next.saturating_sub(1));
            let overlaps = seg.first < prev_next;
            if overlaps {
                warn!(path = %path.display(), "outbox: deleting segment overlapping an older one");
            }
            prev_next = prev_next.max(seg.next);
            // Fully acked and empty segments go, except a newest empty one: its name is
            // what remembers the last seq.
            let keep = !overlaps
                && if seg.next == seg.first {
                    i + 1 == firsts.len()
                } else {
                    seg.unacked(acked) > 0
                };
            if keep {
                segments.push_back(seg);
            } else {
                remove_if_exists(&path)?;
            }
        }

        Ok(Outbox {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_target: (max_bytes / 8).min(SEGMENT_TARGET),
            segments,
            active: None,
            acked,
            last_seq,
            dropped: 0,
        })
    }

    /// Appends one opaque payload; returns its sequence number (strictly increasing, starts at 1,
    /// survives process restarts and never goes backwards even after everything is acked and deleted).
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, OutboxError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(OutboxError::PayloadTooLarge { len: payload.len() });
        }
        let record = HEADER + payload.len() as u64;
        if record > self.max_bytes {
            return Err(OutboxError::ExceedsCap {
                record,
                max_bytes: self.max_bytes,
            });
        }
        // u64::MAX is never written, so readers can always compute `seq + 1`.
        let seq = self
            .last_seq
            .checked_add(1)
            .filter(|&s| s != u64::MAX)
            .ok_or(OutboxError::SeqExhausted)?;

        let roll = self.segments.back().is_none_or(|seg| {
            seg.next != seq || (seg.bytes > 0 && seg.bytes + record > self.segment_target)
        });
        if roll {
            self.start_segment(seq)?;
        }
        // The back segment (where this record goes) is never dropped, so it always fits.
        self.enforce_cap(record)?;

        let Some(seg) = self.segments.back_mut() else {
            return Err(io_err(&self.dir)(io::Error::other("no active segment")));
        };
        let active = match &mut self.active {
            Some(file) => file,
            None => self.active.insert(open_active(&self.dir, seg)?),
        };
        let mut header = [0u8; HEADER as usize];
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..8]
            .copy_from_slice(&crc32_update(crc32(&seq.to_le_bytes()), payload).to_le_bytes());
        header[8..].copy_from_slice(&seq.to_le_bytes());
        let written = active
            .write_all(&header)
            .and_then(|()| active.write_all(payload))
            .and_then(|()| active.sync_data());
        if let Err(source) = written {
            // Reopening truncates the file back to `seg.bytes`, discarding the partial record.
            self.active = None;
            return Err(OutboxError::Io {
                path: segment_path(&self.dir, seg.first),
                source,
            });
        }
        seg.bytes += record;
        seg.next = seq + 1;
        self.last_seq = seq;
        Ok(seq)
    }

    /// Everything with seq <= up_to is acknowledged: may be deleted. Acks going backwards are ignored.
    ///
    /// An ack beyond `last_seq` (e.g. the outbox directory was lost) fast-forwards `last_seq`
    /// so that new records get seqs above what the control plane has already seen.
    pub fn ack(&mut self, up_to: u64) -> Result<(), OutboxError> {
        if up_to <= self.acked {
            return Ok(());
        }
        write_state(&self.dir, up_to)?;
        self.acked = up_to;
        self.last_seq = self.last_seq.max(up_to);
        // The back segment is kept (and reused) so steady-state appends don't create files.
        while self.segments.len() > 1 {
            match self.segments.front() {
                Some(seg) if seg.unacked(up_to) == 0 => {
                    remove_if_exists(&segment_path(&self.dir, seg.first))?;
                    self.segments.pop_front();
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Unacked records with seq > after, oldest first, at most `max` records.
    pub fn read_after(&self, after: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, OutboxError> {
        let after = after.max(self.acked);
        let start = self
            .segments
            .partition_point(|seg| seg.next <= after.saturating_add(1));
        let mut out = Vec::new();
        for seg in self.segments.iter().skip(start) {
            if out.len() >= max {
                break;
            }
            self.read_segment(seg, after, max, &mut out)?;
        }
        Ok(out)
    }

    /// Highest acked seq.
    pub fn acked_seq(&self) -> u64 {
        self.acked
    }

    /// Highest appended seq (0 if none ever).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Number of unacked records still on disk.
    pub fn pending(&self) -> u64 {
        self.segments.iter().map(|s| s.unacked(self.acked)).sum()
    }

    /// Bytes of segment data on disk (the small `acked` file is not counted).
    pub fn bytes_on_disk(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Records dropped because of the size cap, since open.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Flushes and fsyncs whatever is buffered (called on shutdown).
    ///
    /// Appends are already durable when they return, so this is only a safety net.
    pub fn flush(&mut self) -> Result<(), OutboxError> {
        if let (Some(file), Some(seg)) = (&mut self.active, self.segments.back()) {
            let path = segment_path(&self.dir, seg.first);
            file.flush().map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// Seals the back segment and starts a new one whose first record will be `seq`.
    fn start_segment(&mut self, seq: u64) -> Result<(), OutboxError> {
        self.active = None;
        if let Some(seg) = self.segments.back()
            && seg.unacked(self.acked) == 0
        {
            remove_if_exists(&segment_path(&self.dir, seg.first))?;
            self.segments.pop_back();
        }
        let seg = Segment {
            first: seq,
            next: seq,
            bytes: 0,
        };
        // Created before any old segment is dropped: its name keeps `last_seq` durable.
        self.active = Some(open_active(&self.dir, &seg)?);
        self.segments.push_back(seg);
        Ok(())
    }

    /// Drops the oldest segments (never the back one) until `record` more bytes fit.
    fn enforce_cap(&mut self, record: u64) -> Result<(), OutboxError> {
        let mut dropped = 0;
        let mut result = Ok(());
        while self.segments.len() > 1 && self.bytes_on_disk() + record > self.max_bytes {
            let Some(seg) = self.segments.front() else {
                break;
            };
            if let Err(e) = remove_if_exists(&segment_path(&self.dir, seg.first)) {
                result = Err(e);
                break;
            }
            dropped += seg.unacked(self.acked);
            self.segments.pop_front();
        }
        if dropped > 0 {
            self.dropped += dropped;
            warn!(
                dropped,
                max_bytes = self.max_bytes,
                "outbox: size cap reached, dropped {dropped} oldest unacked records"
            );
        }
        result
    }

    fn read_segment(
        &self,
        seg: &Segment,
        after: u64,
        max: usize,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), OutboxError> {
        let path = segment_path(&self.dir, seg.first);
        let file = File::open(&path).map_err(io_err(&path))?;
        let mut reader = BufReader::with_capacity(READ_BUF, file);
        let (mut pos, mut seq) = (0, seg.first);
        while pos < seg.bytes && out.len() < max {
            let step = read_header(&mut reader, pos, seg.bytes, seq).and_then(|(len, crc)| {
                if seq <= after {
                    reader.seek_relative(len as i64)?;
                    return Ok((len, None));
                }
                let mut payload = vec![0; len as usize];
                reader.read_exact(&mut payload)?;
                if crc32_update(crc32(&seq.to_le_bytes()), &payload) != crc {
                    return Err(corrupt("checksum mismatch"));
                }
                Ok((len, Some(payload)))
            });
            match step {
                Ok((len, payload)) => {
                    out.extend(payload.map(|p| (seq, p)));
                    pos += HEADER + len;
                    seq += 1;
                }
                Err(e) if is_corruption(&e) => {
                    warn!(path = %path.display(), offset = pos, error = %e,
                        "outbox: skipping rest of damaged segment");
                    break;
                }
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Ok(())
    }
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("seg-{first:020}.log"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Opens the file of `seg` for appending, creating it (and fsyncing the directory) if needed.
fn open_active(dir: &Path, seg: &Segment) -> Result<File, OutboxError> {
    let path = segment_path(dir, seg.first);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    // Discards anything past the last good record (e.g. a failed earlier write).
    file.set_len(seg.bytes)
        .and_then(|()| file.seek(SeekFrom::Start(seg.bytes)))
        .map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Scans a segment, truncating it at the first damaged record.
fn recover_segment(path: &Path, first: u64) -> Result<Segment, OutboxError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = BufReader::with_capacity(READ_BUF, &file);
    let mut seg = Segment {
        first,
        next: first,
        bytes: 0,
    };
    let damage = loop {
        if seg.bytes == len {
            break None;
        }
        match check_record(&mut reader, seg.bytes, len, seg.next) {
            Ok(plen) => {
                seg.bytes += HEADER + plen;
                seg.next += 1;
            }
            Err(e) if is_corruption(&e) => break Some(e),
            Err(e) => return Err(io_err(path)(e)),
        }
    };
    if let Some(e) = damage {
        warn!(path = %path.display(), offset = seg.bytes, discarded_bytes = len - seg.bytes,
            error = %e, "outbox: truncating damaged segment tail");
        file.set_len(seg.bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_err(path))?;
    }
    Ok(seg)
}

/// Validates the record at `pos` (header and checksum) without holding its payload in memory.
fn check_record(reader: &mut impl Read, pos: u64, end: u64, seq: u64) -> io::Result<u64> {
    let (len, crc) = read_header(reader, pos, end, seq)?;
    let mut crc_acc = crc32(&seq.to_le_bytes());
    let mut buf = [0u8; 8192];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        reader.read_exact(&mut buf[..n])?;
        crc_acc = crc32_update(crc_acc, &buf[..n]);
        left -= n as u64;
    }
    if crc_acc != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(len)
}

/// Reads and validates the header at `pos`; returns (payload length, crc).
/// Lengths are checked before anything is allocated.
fn read_header(reader: &mut impl Read, pos: u64, end: u64, seq: u64) -> io::Result<(u64, u32)> {
    if end - pos < HEADER {
        return Err(corrupt("truncated header"));
    }
    let (mut len, mut crc, mut got) = ([0u8; 4], [0u8; 4], [0u8; 8]);
    reader.read_exact(&mut len)?;
    reader.read_exact(&mut crc)?;
    reader.read_exact(&mut got)?;
    let len = u64::from(u32::from_le_bytes(len));
    if len > MAX_PAYLOAD as u64 {
        return Err(corrupt("length over payload limit"));
    }
    if len > end - pos - HEADER {
        return Err(corrupt("record runs past end of segment"));
    }
    let got = u64::from_le_bytes(got);
    if got != seq || got == u64::MAX {
        return Err(corrupt("unexpected sequence number"));
    }
    Ok((len, u32::from_le_bytes(crc)))
}

fn corrupt(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Damaged or short data, as opposed to a failing disk.
fn is_corruption(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    )
}

fn read_state(path: &Path) -> Result<u64, OutboxError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(path)(e)),
    };
    let parsed = bytes.split_first_chunk::<8>().and_then(|(seq, crc)| {
        let crc = u32::from_le_bytes(<[u8; 4]>::try_from(crc).ok()?);
        (crc32(seq) == crc).then(|| u64::from_le_bytes(*seq))
    });
    Ok(parsed.unwrap_or_else(|| {
        warn!(path = %path.display(), "outbox: ack state file is corrupt, treating everything as unacked");
        0
    }))
}

/// Atomically replaces the ack state: write temp, fsync, rename, fsync directory.
fn write_state(dir: &Path, acked: u64) -> Result<(), OutboxError> {
    let mut data = [0u8; 12];
    data[..8].copy_from_slice(&acked.to_le_bytes());
    data[8..].copy_from_slice(&crc32(&acked.to_le_bytes()).to_le_bytes());
    let tmp = dir.join(STATE_TMP);
    File::create(&tmp)
        .and_then(|mut f| f.write_all(&data).and_then(|()| f.sync_all()))
        .map_err(io_err(&tmp))?;
    let path = dir.join(STATE_FILE);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

fn remove_if_exists(path: &Path) -> Result<(), OutboxError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// Makes file creations and renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Continues a CRC-32 (IEEE) over more data; `crc32_update(crc32(a), b) == crc32(a ++ b)`.
fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

#[cfg(test)]
mod tests;
