//! Terminal recordings, read as asciicast v2: a JSON header line, then one
//! `[seconds, "o", text]` line per output chunk and `[seconds, "r", "COLSxROWS"]`
//! per resize. Input is never recorded (it would hold passwords).
//!
//! What is stored is the output as it came, not its asciicast text: each
//! part is a zstd frame of [`RAW_MAGIC`] and records (header, output bytes
//! with their time, resize), and [`decode_recording`] renders asciicast on
//! read. So the busy path copies bytes and compresses them, nothing more:
//! UTF-8 decoding and JSON escaping, which cost about as much as the
//! compression, happen only when someone plays the recording. A chunk is
//! timed when the relay hands it over, so playback keeps the session's
//! rhythm however late the recorder gets to it.
//!
//! A recorder is a thread of its own at background priority (nice 10 on
//! Linux), fed through a bounded channel it drains five times a second
//! (never woken per chunk: the relay cuts a nap short only once output
//! piles up), so a busy terminal never waits for compression or the
//! database and recording never takes the CPU from the sessions it
//! records; a task stores what it produces through the store
//! (files beside a SQLite database, rows in PostgreSQL). Records collect in
//! a buffer; every 512 KiB, or 2 s, the buffer is compressed as one zstd
//! frame (level 1 with a context reused for the whole session: about 4×
//! cheaper than gzip's fastest level, and terminal text shrinks to a few
//! percent) and stored as the next part; parts that queue up while earlier
//! ones are being stored go in together (one sync for all of them). So
//! memory stays small, a crash loses at most the last seconds, and parts
//! decode one after the other.
//! Parts stored by earlier versions (asciicast text as zstd frames or gzip
//! members) still decode.

use std::io::Read;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::RecordingTurn;
use crate::store::{RecordingState, Store, StoreError};

/// Uncompressed record bytes per stored part, at most (about).
const PART_RAW: usize = 512 * 1024;
/// What an idle session's line buffer shrinks back to after a part.
const IDLE_BUFFER: usize = 16 * 1024;
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Compressed parts queued for storing, at most, besides those of the
/// append under way; the recorder waits when the queue is full (memory
/// stays bounded when storage is slow).
const PRODUCED_QUEUE: usize = 4;
/// Events (output chunks, resizes, flushes) queued for the recorder
/// thread, at most; the relay waits when the queue is full.
const EVENT_QUEUE: usize = 256;
/// Queued events at which the relay wakes a napping recorder thread. An
/// echo queues one; bulk output can fill the queue within a nap (256 of
/// the agent's ~30 KiB chunks came in under 0.2 s in the terminal
/// benchmark, and without this wake the relay waited for the thread 17–55
/// times over 15 recorded 100 MiB `cat`s, 0.4–0.6 s in all).
const WAKE_AT: usize = 32;
/// The recorder thread's nap between drains of its queue. Output that
/// comes faster than [`WAKE_AT`] events a nap wakes the thread sooner, so
/// the nap need not shrink while output flows: typing wakes the thread five
/// times a second, not on every echo (naps that shrank to 10 ms after any
/// output woke it about 100 times a second in the terminal benchmark's
/// echo, for every session being typed in).
const NAP: Duration = Duration::from_millis(200);
const ZSTD_LEVEL: i32 = 1;
/// 2^17 = 128 KiB: bounds the compressor's memory per recorded session.
const ZSTD_WINDOW_LOG: u32 = 17;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// How a part of records begins once decompressed; asciicast text, as
/// earlier versions stored, begins with `{` or `[`.
const RAW_MAGIC: &[u8; 8] = b"\0SOVREC1";
/// A decompressed part of records is at most this big (a part is cut at
/// 512 KiB plus one chunk); more means damage, not a recording.
const RAW_PART_MAX: u64 = 16 << 20;
const REC_HEADER: u8 = b'h';
const REC_OUTPUT: u8 = b'o';
const REC_RESIZE: u8 = b'r';

/// Events carry their time (µs since the Unix epoch) from the relay.
enum Event {
    Output(u64, Bytes, i64),
    Resize(u32, u32, i64),
    Flush(oneshot::Sender<()>),
}

/// What the recorder thread hands the storing task.
enum Produced {
    Part {
        data: Vec<u8>,
        recorded_upto: u64,
    },
    /// Everything before this is stored.
    Flushed(oneshot::Sender<()>),
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the recorder: {0}")]
    Start(std::io::Error),
}

/// The relay's handle on a session's recorder.
pub struct Recorder {
    tx: mpsc::Sender<Event>,
    recorded_upto: u64,
    /// Declared after `tx`, so it is dropped after it: the thread, woken
    /// then, finds its queue closed and ends instead of napping on.
    thread: RecorderThread,
}

/// The recorder thread, for cutting its nap short; dropping it wakes the
/// thread.
struct RecorderThread(std::thread::Thread);

impl RecorderThread {
    fn wake(&self) {
        self.0.unpark();
    }
}

impl Drop for RecorderThread {
    fn drop(&mut self) {
        self.wake();
    }
}

impl Recorder {
    /// Opens the recording of a session (a new one starts with the header, a
    /// resumed one continues after what is stored) and starts its thread and
    /// storing task.
    ///
    /// A relay's `turn` is given up once everything this recorder records is
    /// stored (or at once if it cannot open), so the session's next
    /// recorder, waiting for it, reads where the stored recording ends.
    pub async fn open(
        store: Store,
        session_id: &str,
        cols: u32,
        rows: u32,
        title: &str,
        cap: u64,
        turn: Option<RecordingTurn>,
    ) -> Result<Self, RecorderError> {
        let state = store.recording_state(session_id).await?;
        let enc = Encoder::new(session_id, &state, cols, rows, title, cap)
            .map_err(RecorderError::Start)?;
        let (recorder, mut parts) = start(enc, NAP).map_err(RecorderError::Start)?;
        let session_id = session_id.to_owned();
        tokio::spawn(async move {
            let _turn = turn;
            // Whatever queued up while the last parts were being stored goes
            // in one append: under bulk output, one sync for several parts.
            let mut queued = Vec::new();
            while parts.recv_many(&mut queued, PRODUCED_QUEUE).await > 0 {
                let mut batch = Vec::new();
                let mut upto = 0;
                let mut flushed = Vec::new();
                for p in queued.drain(..) {
                    match p {
                        Produced::Part {
                            data,
                            recorded_upto,
                        } => {
                            batch.push(data);
                            upto = recorded_upto;
                        }
                        Produced::Flushed(done) => flushed.push(done),
                    }
                }
                let n = batch.len();
                if let Err(e) = store.append_recording(&session_id, batch, upto).await {
                    tracing::error!(session_id, parts = n, error = %e, "Could not store terminal recording parts; they are lost.");
                }
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        Ok(recorder)
    }

    /// Output offset up to which the recording was complete when opened.
    pub fn recorded_upto(&self) -> u64 {
        self.recorded_upto
    }

    /// Records output at `offset` (shared, not copied); waits only if the
    /// recorder is far behind.
    pub async fn output(&self, offset: u64, data: Bytes) {
        self.send(Event::Output(offset, data, now_us())).await;
    }

    pub async fn resize(&self, cols: u32, rows: u32) {
        self.send(Event::Resize(cols, rows, now_us())).await;
    }

    /// Queues an event, and wakes the thread once [`WAKE_AT`] are queued.
    async fn send(&self, event: Event) {
        let _ = self.tx.send(event).await;
        if self.tx.max_capacity() - self.tx.capacity() >= WAKE_AT {
            self.thread.wake();
        }
    }

    /// Stores everything recorded so far.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Event::Flush(done)).await.is_ok() {
            self.thread.wake();
            let _ = wait.await;
        }
    }
}

/// Starts a recorder thread on `enc`: the relay's handle, and the parts the
/// thread produces for storing.
fn start(enc: Encoder, nap: Duration) -> std::io::Result<(Recorder, mpsc::Receiver<Produced>)> {
    let recorded_upto = enc.recorded_upto;
    let (tx, rx) = mpsc::channel::<Event>(EVENT_QUEUE);
    let (produced, parts) = mpsc::channel::<Produced>(PRODUCED_QUEUE);
    let handle = std::thread::Builder::new()
        .name("recorder".into())
        .spawn(move || record(enc, rx, produced, nap))?;
    let recorder = Recorder {
        tx,
        recorded_upto,
        thread: RecorderThread(handle.thread().clone()),
    };
    Ok((recorder, parts))
}

/// The recorder thread. Its queue is drained after each `nap` rather than
/// on a wake-up per chunk, so an echo never pays for waking it; the relay
/// cuts a nap short when output piles up, a flush is asked for, or the
/// session is over.
fn record(
    mut enc: Encoder,
    mut rx: mpsc::Receiver<Event>,
    produced: mpsc::Sender<Produced>,
    nap: Duration,
) {
    background_priority();
    // Hands a part (if any) to the storing task; false once that task is gone.
    let hand_over = |p: Option<Produced>| p.is_none_or(|p| produced.blocking_send(p).is_ok());
    loop {
        match rx.try_recv() {
            Ok(Event::Output(offset, data, at)) => enc.output(offset, &data, at),
            Ok(Event::Resize(c, r, at)) => enc.resize(c, r, at),
            Ok(Event::Flush(done)) => {
                if !(hand_over(enc.part()) && hand_over(Some(Produced::Flushed(done)))) {
                    return;
                }
            }
            Err(mpsc::error::TryRecvError::Empty) => std::thread::park_timeout(nap),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        }
        if enc.due() && !hand_over(enc.part()) {
            return;
        }
    }
    hand_over(enc.part());
}

/// Recording is background work: its thread gives way to the terminals and
/// the API whenever they want the CPU. On Linux a thread has its own nice
/// value; elsewhere this would renice the whole process, so it is left alone.
fn background_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::debug!(error = %e, "Could not lower the recorder thread's priority.");
    }
}

fn compressor() -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
    c.set_parameter(zstd::zstd_safe::CParameter::WindowLog(ZSTD_WINDOW_LOG))?;
    Ok(c)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A session's recording in the making, on the recorder thread.
struct Encoder {
    session_id: String,
    started_at_us: i64,
    /// Records of the part being collected, after [`RAW_MAGIC`].
    records: Vec<u8>,
    zstd: zstd::bulk::Compressor<'static>,
    recorded_upto: u64,
    cap: u64,
    stopped: bool,
    part_started: Instant,
}

impl Encoder {
    fn new(
        session_id: &str,
        state: &RecordingState,
        cols: u32,
        rows: u32,
        title: &str,
        cap: u64,
    ) -> std::io::Result<Self> {
        let mut e = Self {
            session_id: session_id.to_owned(),
            started_at_us: state.started_at_ms.saturating_mul(1000),
            records: Vec::new(),
            zstd: compressor()?,
            recorded_upto: state.recorded_upto,
            cap,
            stopped: state.recorded_upto >= cap,
            part_started: Instant::now(),
        };
        if !state.has_parts {
            let header = serde_json::json!({
                "version": 2,
                "width": cols,
                "height": rows,
                "timestamp": state.started_at_ms / 1000,
                "title": title,
                "env": { "TERM": "xterm-256color" },
            })
            .to_string();
            e.push(REC_HEADER, None, &[], Some(header.as_bytes()));
        }
        Ok(e)
    }

    /// Appends one record: kind, time (µs since the session started, if
    /// timed), numbers, then bytes (if any) after their length.
    fn push(&mut self, kind: u8, at_us: Option<i64>, numbers: &[u64], bytes: Option<&[u8]>) {
        if self.records.is_empty() {
            self.part_started = Instant::now();
            self.records.extend_from_slice(RAW_MAGIC);
        }
        self.records.push(kind);
        if let Some(at) = at_us {
            let t = at.saturating_sub(self.started_at_us).max(0);
            put_varint(&mut self.records, t.unsigned_abs());
        }
        for n in numbers {
            put_varint(&mut self.records, *n);
        }
        if let Some(bytes) = bytes {
            put_varint(&mut self.records, bytes.len() as u64);
            self.records.extend_from_slice(bytes);
        }
    }

    /// Records output at `offset`, skipping bytes already recorded (a replay
    /// after re-attaching).
    fn output(&mut self, offset: u64, data: &[u8], at_us: i64) {
        let end = offset + data.len() as u64;
        if self.stopped || end <= self.recorded_upto {
            return;
        }
        let skip = usize::try_from(self.recorded_upto.saturating_sub(offset))
            .unwrap_or(data.len())
            .min(data.len());
        self.recorded_upto = end;
        self.push(REC_OUTPUT, Some(at_us), &[], Some(&data[skip..]));
        if self.recorded_upto >= self.cap {
            tracing::warn!(session_id = %self.session_id, cap = self.cap, "Terminal recording reached its size limit; the rest is not recorded.");
            self.stopped = true;
        }
    }

    fn resize(&mut self, cols: u32, rows: u32, at_us: i64) {
        if !self.stopped {
            self.push(
                REC_RESIZE,
                Some(at_us),
                &[u64::from(cols), u64::from(rows)],
                None,
            );
        }
    }

    fn due(&self) -> bool {
        self.records.len() >= PART_RAW
            || (!self.records.is_empty() && self.part_started.elapsed() >= FLUSH_EVERY)
    }

    /// The collected records as one compressed frame, if there are any.
    fn part(&mut self) -> Option<Produced> {
        if self.records.is_empty() {
            return None;
        }
        let compressed = self.zstd.compress(&self.records);
        let full = self.records.len() >= PART_RAW;
        self.records.clear();
        if !full {
            // A quiet session does not keep a bulk-sized buffer.
            self.records.shrink_to(IDLE_BUFFER);
        }
        match compressed {
            Ok(data) => Some(Produced::Part {
                data,
                recorded_upto: self.recorded_upto,
            }),
            Err(e) => {
                tracing::error!(session_id = %self.session_id, error = %e, "Could not compress a terminal recording part; it is lost.");
                None
            }
        }
    }
}

/// LEB128: seven bits a byte, low first.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn damaged() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "a recording part is damaged",
    )
}

/// Reads records from a decompressed part.
struct Records<'a>(&'a [u8]);

impl<'a> Records<'a> {
    fn byte(&mut self) -> std::io::Result<u8> {
        let (&b, rest) = self.0.split_first().ok_or_else(damaged)?;
        self.0 = rest;
        Ok(b)
    }

    fn varint(&mut self) -> std::io::Result<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(damaged());
            }
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(damaged())
    }

    fn bytes(&mut self) -> std::io::Result<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| damaged())?;
        if len > self.0.len() {
            return Err(damaged());
        }
        let (b, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(b)
    }

    fn seconds(&mut self) -> std::io::Result<f64> {
        Ok(self.varint()? as f64 / 1_000_000.0)
    }
}

/// Renders asciicast v2 from records, one line per record. Output is
/// decoded as UTF-8 across records: a character split between chunks is
/// kept whole (`carry` holds its first bytes), invalid bytes become U+FFFD.
#[derive(Default)]
struct Renderer {
    text: Vec<u8>,
    carry: Vec<u8>,
}

impl Renderer {
    fn line<T: serde::Serialize>(&mut self, value: &T) {
        // Writing into a Vec cannot fail; a line is whole or absent.
        let len = self.text.len();
        if serde_json::to_writer(&mut self.text, value).is_ok() {
            self.text.push(b'\n');
        } else {
            self.text.truncate(len);
        }
    }

    fn output(&mut self, t: f64, data: &[u8]) {
        let joined: Vec<u8>;
        let bytes = if self.carry.is_empty() {
            data
        } else {
            joined = [std::mem::take(&mut self.carry).as_slice(), data].concat();
            &joined
        };
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                if !text.is_empty() {
                    self.line(&(t, "o", text));
                }
            }
            Err(e) => {
                let valid = if e.error_len().is_none() {
                    e.valid_up_to()
                } else {
                    bytes.len()
                };
                let (text, rest) = bytes.split_at(valid);
                self.carry = rest.to_vec();
                if !text.is_empty() {
                    self.line(&(t, "o", String::from_utf8_lossy(text)));
                }
            }
        }
    }

    /// Renders one part of records, stopping once `max` bytes are out.
    fn part(&mut self, mut r: Records<'_>, max: u64) -> std::io::Result<()> {
        while !r.0.is_empty() && (self.text.len() as u64) < max {
            match r.byte()? {
                REC_HEADER => {
                    let header = r.bytes()?;
                    self.text.extend_from_slice(header);
                    self.text.push(b'\n');
                }
                REC_OUTPUT => {
                    let t = r.seconds()?;
                    let data = r.bytes()?;
                    self.output(t, data);
                }
                REC_RESIZE => {
                    let t = r.seconds()?;
                    let (cols, rows) = (r.varint()?, r.varint()?);
                    self.line(&(t, "r", format!("{cols}x{rows}")));
                }
                _ => return Err(damaged()),
            }
        }
        Ok(())
    }
}

/// Turns stored parts back into asciicast text, at most `max` bytes.
/// Parts of records are rendered; parts from earlier versions (asciicast
/// text as zstd frames or gzip members) are taken as they are.
pub fn decode_recording(parts: &[Vec<u8>], max: u64) -> std::io::Result<String> {
    let mut out = Renderer::default();
    for part in parts {
        let left = max.saturating_sub(out.text.len() as u64);
        if left == 0 {
            break;
        }
        let mut reader: Box<dyn Read + '_> = if part.starts_with(&ZSTD_MAGIC) {
            Box::new(zstd::stream::read::Decoder::new(part.as_slice())?)
        } else if part.starts_with(&GZIP_MAGIC) {
            Box::new(flate2::read::MultiGzDecoder::new(part.as_slice()))
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a recording part is neither zstd nor gzip",
            ));
        };
        let mut head = Vec::with_capacity(RAW_MAGIC.len());
        (&mut reader)
            .take(RAW_MAGIC.len() as u64)
            .read_to_end(&mut head)?;
        if head == RAW_MAGIC {
            let mut records = Vec::new();
            reader.take(RAW_PART_MAX + 1).read_to_end(&mut records)?;
            if records.len() as u64 > RAW_PART_MAX {
                return Err(damaged());
            }
            out.part(Records(&records), max)?;
        } else {
            out.text.extend_from_slice(&head);
            reader.take(left).read_to_end(&mut out.text)?;
        }
    }
    let mut text = out.text;
    text.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    // Only the `max` cut can split a character.
    Ok(String::from_utf8(text)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::store::tests::temp_sqlite;

    /// The output events of an asciicast recording, joined.
    fn recorded_output(cast: &str) -> String {
        cast.lines()
            .skip(1)
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e[1] == "o")
            .map(|e| e[2].as_str().unwrap().to_owned())
            .collect()
    }

    /// A fresh 80×24 session `id` (started at 0) and its recorder, capped at `cap`.
    async fn session_recorder(store: &Store, id: &str, cap: u64) -> Recorder {
        store
            .open_terminal_session(id, &crate::fleet::AgentId::new(), "admin", 0, 80, 24)
            .await
            .unwrap();
        Recorder::open(store.clone(), id, 80, 24, "x", cap, None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn records_asciicast_without_duplicates_across_reattach() {
        let (_dir, store) = temp_sqlite().await;
        let agent = crate::fleet::AgentId::new();
        store
            .open_terminal_session("s1", &agent, "admin", 1_800_000_000_000, 80, 24)
            .await
            .unwrap();
        let r = Recorder::open(store.clone(), "s1", 80, 24, "web-1", 1 << 20, None)
            .await
            .unwrap();
        r.output(0, Bytes::from_static(b"hello ")).await;
        // A UTF-8 character split across chunks is kept whole.
        r.output(6, Bytes::copy_from_slice(&"é".as_bytes()[..1]))
            .await;
        r.output(7, Bytes::copy_from_slice(&"é".as_bytes()[1..]))
            .await;
        r.resize(100, 30).await;
        r.flush().await;
        // Re-attach: the agent replays from 0; only new bytes are recorded.
        let r = Recorder::open(store.clone(), "s1", 100, 30, "web-1", 1 << 20, None)
            .await
            .unwrap();
        assert_eq!(r.recorded_upto(), 8);
        r.output(0, Bytes::from_static(b"hello \xc3\xa9 world"))
            .await;
        // An invalid byte becomes U+FFFD; nothing after it is lost.
        r.output(14, Bytes::from_static(b"\xff!")).await;
        r.flush().await;
        let text = decode_recording(&store.recording_parts("s1").await.unwrap(), 1 << 20).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let header: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(header["version"], 2);
        assert_eq!(header["width"], 80);
        let events: Vec<serde_json::Value> = lines[1..]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(recorded_output(&text), "hello é world\u{fffd}!");
        assert!(events.iter().any(|e| e[1] == "r" && e[2] == "100x30"));
        assert!(
            events
                .windows(2)
                .all(|w| w[0][0].as_f64() <= w[1][0].as_f64())
        );
    }

    #[tokio::test]
    async fn recording_stops_at_its_cap_and_bulk_output_is_split_into_parts() {
        let (_dir, store) = temp_sqlite().await;
        let r = session_recorder(&store, "s2", 100).await;
        r.output(0, Bytes::from(vec![b'a'; 80])).await;
        r.output(80, Bytes::from(vec![b'b'; 80])).await;
        r.output(160, Bytes::from(vec![b'c'; 80])).await;
        r.flush().await;
        let text = decode_recording(&store.recording_parts("s2").await.unwrap(), 1 << 20).unwrap();
        assert!(text.contains("aaaa") && text.contains("bbbb") && !text.contains("cccc"));

        let r = session_recorder(&store, "s3", 64 << 20).await;
        // Fresh random hex text each chunk: it halves at best, like a big
        // `cat` of random data.
        const CHUNK: u64 = 32 * 1024;
        for i in 0..64u64 {
            let chunk: Vec<u8> = (0..CHUNK)
                .map(|_| b"0123456789abcdef"[usize::from(rand::random::<u8>() % 16)])
                .collect();
            r.output(i * CHUNK, Bytes::from(chunk)).await;
        }
        r.flush().await;
        let parts = store.recording_parts("s3").await.unwrap();
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert!(
            parts.len() > 1,
            "bulk output is stored in several parts: {sizes:?}"
        );
        let text = decode_recording(&parts, 1 << 30).unwrap();
        assert_eq!(text.lines().count(), 65);
    }

    #[tokio::test]
    async fn a_recording_whose_file_was_deleted_starts_again_with_its_header() {
        let (_dir, store) = temp_sqlite().await;
        let r = session_recorder(&store, "s6", 1 << 20).await;
        r.output(0, Bytes::from_static(b"before")).await;
        r.flush().await;
        let file = store.recordings_dir().unwrap().join("s6.rec");
        std::fs::remove_file(&file).unwrap();
        let r = Recorder::open(store.clone(), "s6", 80, 24, "x", 1 << 20, None)
            .await
            .unwrap();
        r.output(6, Bytes::from_static(b"after")).await;
        r.flush().await;
        let text = decode_recording(&store.recording_parts("s6").await.unwrap(), 1 << 20).unwrap();
        let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(header["version"], 2, "{text}");
        assert!(text.contains("after") && !text.contains("before"), "{text}");
    }

    #[test]
    fn parts_from_earlier_versions_decode_and_garbage_is_refused() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"version\":2}\n").unwrap();
        let old = gz.finish().unwrap();
        let new = compressor()
            .unwrap()
            .compress(b"[0.5,\"o\",\"hi\"]\n")
            .unwrap();
        let text = decode_recording(&[old.clone(), new.clone()], 1 << 20).unwrap();
        assert_eq!(text, "{\"version\":2}\n[0.5,\"o\",\"hi\"]\n");
        // The limit holds across parts.
        assert_eq!(decode_recording(&[new.clone(), new], 20).unwrap().len(), 20);
        assert!(decode_recording(&[b"not a part".to_vec()], 1 << 20).is_err());
        // A session recorded before the upgrade and resumed after it: the
        // old text, then rendered records.
        let records = compressor()
            .unwrap()
            .compress(&[RAW_MAGIC.as_slice(), b"o\xa0\x8d\x06\x03new"].concat())
            .unwrap();
        let text = decode_recording(&[old, records], 1 << 20).unwrap();
        assert_eq!(text, "{\"version\":2}\n[0.1,\"o\",\"new\"]\n");
    }

    #[test]
    fn output_is_timed_when_handed_over_and_rendered_on_read() {
        let state = RecordingState {
            started_at_ms: 1_800_000_000_000,
            recorded_upto: 0,
            has_parts: false,
        };
        let mut enc = Encoder::new("s5", &state, 80, 24, "web-1", 1 << 20).unwrap();
        let at = |ms: i64| (state.started_at_ms + ms) * 1000;
        // Times come with the events, however late the thread gets to them.
        enc.output(0, b"\x1b[1mbold\r\n\"q\"", at(1500));
        enc.resize(120, 40, at(2250));
        enc.output(16, "€".as_bytes(), at(3000));
        let Some(Produced::Part {
            data,
            recorded_upto,
        }) = enc.part()
        else {
            panic!("a part");
        };
        assert_eq!(recorded_upto, 19);
        let text = decode_recording(std::slice::from_ref(&data), 1 << 20).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["title"], "web-1");
        assert_eq!(lines[0]["timestamp"], 1_800_000_000);
        assert_eq!(
            lines[1],
            serde_json::json!([1.5, "o", "\u{1b}[1mbold\r\n\"q\""])
        );
        assert_eq!(lines[2], serde_json::json!([2.25, "r", "120x40"]));
        assert_eq!(lines[3], serde_json::json!([3.0, "o", "€"]));
        assert_eq!(lines.len(), 4);
        // The limit cuts the rendered text.
        let cut = decode_recording(&[data], 50).unwrap();
        assert_eq!(cut.len(), 50);
        assert!(text.starts_with(&cut));
    }

    #[test]
    fn damaged_parts_of_records_are_refused() {
        let part = |records: &[u8]| {
            compressor()
                .unwrap()
                .compress(&[RAW_MAGIC.as_slice(), records].concat())
                .unwrap()
        };
        // Fine: one output record of 2 bytes at t = 0.
        assert!(
            decode_recording(&[part(b"o\x00\x02hi")], 1 << 20)
                .unwrap()
                .contains("hi")
        );
        for bad in [
            &b"o\x00\x64short"[..],                           // longer than what follows
            b"x\x00",                                         // an unknown record
            b"r\x00\x80",                                     // a number cut short
            b"o\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", // a number over 64 bits
        ] {
            assert!(decode_recording(&[part(bad)], 1 << 20).is_err(), "{bad:?}");
        }
        // A part that decompresses to more than any recorder writes.
        let huge = part(&vec![0u8; (RAW_PART_MAX + 1) as usize]);
        assert!(decode_recording(&[huge], 1 << 20).is_err());
    }

    /// A recorder thread whose naps would last an hour still drains a burst
    /// of output at once (the relay wakes it once output piles up), stores
    /// on a flush at once, is not woken for one chunk, and stores what is
    /// queued and ends as soon as its relay drops the recorder.
    #[tokio::test]
    async fn the_relay_cuts_the_recorder_threads_nap_short() {
        let state = RecordingState {
            started_at_ms: 0,
            recorded_upto: 0,
            has_parts: false,
        };
        let enc = Encoder::new("s5", &state, 80, 24, "x", 1 << 20).unwrap();
        let hour = Duration::from_secs(3600);
        let (r, mut parts) = start(enc, hour).unwrap();
        // The storing task's part: keep the parts, acknowledge flushes.
        let stored = tokio::spawn(async move {
            let mut stored = Vec::new();
            while let Some(p) = parts.recv().await {
                match p {
                    Produced::Part { data, .. } => stored.push(data),
                    Produced::Flushed(done) => {
                        let _ = done.send(());
                    }
                }
            }
            stored
        });
        // Let the thread find its queue empty and begin its hour-long nap.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let within = Duration::from_secs(10);
        for offset in 0..WAKE_AT as u64 {
            r.output(offset, Bytes::from_static(b"x")).await;
        }
        let t = Instant::now();
        while r.tx.capacity() < r.tx.max_capacity() {
            assert!(t.elapsed() < within, "a burst of output was not drained");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        r.output(WAKE_AT as u64, Bytes::from_static(b"!")).await;
        tokio::time::timeout(within, r.flush())
            .await
            .expect("a flush waited for the nap");
        // Once the thread naps again, one chunk (an echo) stays queued.
        tokio::time::sleep(Duration::from_millis(500)).await;
        r.output(WAKE_AT as u64 + 1, Bytes::from_static(b"?")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(r.tx.max_capacity() - r.tx.capacity(), 1);
        // Dropped with it queued: the thread stores it and ends.
        drop(r);
        let stored = tokio::time::timeout(within, stored)
            .await
            .expect("the thread outlived its recorder")
            .unwrap();
        let text = decode_recording(&stored, 1 << 20).unwrap();
        assert_eq!(recorded_output(&text), format!("{}!?", "x".repeat(WAKE_AT)));
    }

    #[tokio::test]
    async fn a_quiet_session_is_stored_within_seconds_by_a_background_thread() {
        let (_dir, store) = temp_sqlite().await;
        let r = session_recorder(&store, "s4", 1 << 20).await;
        #[cfg(target_os = "linux")]
        {
            // The recorder thread (named and reniced as it starts) runs at
            // nice 10: field 19 of its stat.
            let recorder_nices = || -> Vec<String> {
                std::fs::read_dir("/proc/self/task")
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        let dir = t.ok()?.path();
                        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
                        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
                        let nice = stat.rsplit(')').next()?.split_whitespace().nth(16)?;
                        (comm.trim() == "recorder").then(|| nice.to_owned())
                    })
                    .collect()
            };
            let t = Instant::now();
            let mut nices = recorder_nices();
            while !nices.iter().any(|n| n == "10") && t.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                nices = recorder_nices();
            }
            assert!(
                nices.iter().any(|n| n == "10"),
                "recorder threads' nice values: {nices:?}"
            );
        }
        r.output(0, Bytes::from_static(b"quiet")).await;
        // No flush: the 2 s timer stores it.
        let t = Instant::now();
        loop {
            let parts = store.recording_parts("s4").await.unwrap();
            if !parts.is_empty() {
                assert!(decode_recording(&parts, 1 << 20).unwrap().contains("quiet"));
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "nothing stored after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(r);
    }
}
