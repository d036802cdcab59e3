//! Terminal recordings in asciicast v2: a JSON header line, then one
//! `[seconds, "o", text]` line per output chunk and `[seconds, "r", "COLSxROWS"]`
//! per resize. Input is never recorded (it would hold passwords).
//!
//! A recorder is a task of its own, fed through a bounded channel, so a busy
//! terminal never waits for compression or the database. Lines stream into a
//! zstd encoder (level 1: about 4× cheaper than gzip's fastest level, and
//! terminal text shrinks to a few percent); every ~512 KiB of compressed
//! output, or 2 s, the frame is finished and stored as the next part, so
//! memory stays small, a crash loses at most the last seconds, and parts
//! decode one after the other. Parts stored as gzip members by earlier
//! versions still decode.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError};

const PART_BYTES: usize = 512 * 1024;
const FLUSH_EVERY: Duration = Duration::from_secs(2);
const ZSTD_LEVEL: i32 = 1;
/// 2^17 = 128 KiB: bounds the encoder's memory per recorded session.
const ZSTD_WINDOW_LOG: u32 = 17;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

enum Event {
    Output(u64, Bytes),
    Resize(u32, u32),
    Flush(oneshot::Sender<()>),
}

/// The relay's handle on a session's recorder task.
pub struct Recorder {
    tx: mpsc::Sender<Event>,
    recorded_upto: u64,
}

impl Recorder {
    /// Opens the recording of a session (a new one starts with the header, a
    /// resumed one continues after what is stored) and starts its task.
    pub async fn open(
        store: Store,
        session_id: &str,
        cols: u32,
        rows: u32,
        title: &str,
        cap: u64,
    ) -> Result<Self, StoreError> {
        let mut w = Writer::open(store, session_id, cols, rows, title, cap).await?;
        let recorded_upto = w.recorded_upto;
        let (tx, mut rx) = mpsc::channel::<Event>(256);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(Event::Output(offset, data)) => w.output(offset, &data),
                        Some(Event::Resize(c, r)) => w.resize(c, r),
                        Some(Event::Flush(done)) => {
                            w.store_part().await;
                            let _ = done.send(());
                        }
                        None => break,
                    },
                    _ = tick.tick() => {}
                }
                w.store_if_due().await;
            }
            w.store_part().await;
        });
        Ok(Self { tx, recorded_upto })
    }

    /// Output offset up to which the recording was complete when opened.
    pub fn recorded_upto(&self) -> u64 {
        self.recorded_upto
    }

    /// Records output at `offset` (shared, not copied); waits only if the
    /// recorder is far behind.
    pub async fn output(&self, offset: u64, data: Bytes) {
        let _ = self.tx.send(Event::Output(offset, data)).await;
    }

    pub async fn resize(&self, cols: u32, rows: u32) {
        let _ = self.tx.send(Event::Resize(cols, rows)).await;
    }

    /// Stores everything recorded so far.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Event::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

type Encoder = zstd::stream::write::Encoder<'static, Vec<u8>>;

fn encoder() -> std::io::Result<Encoder> {
    let mut e = Encoder::new(Vec::with_capacity(PART_BYTES), ZSTD_LEVEL)?;
    e.window_log(ZSTD_WINDOW_LOG)?;
    Ok(e)
}

/// The recorder task's state.
struct Writer {
    store: Store,
    session_id: String,
    started_at_ms: i64,
    part: Option<Encoder>,
    recorded_upto: u64,
    /// Bytes of an incomplete UTF-8 sequence carried to the next chunk.
    carry: Vec<u8>,
    /// One event line, reused.
    line: Vec<u8>,
    next_part: i64,
    cap: u64,
    stopped: bool,
    part_started: Instant,
}

impl Writer {
    async fn open(
        store: Store,
        session_id: &str,
        cols: u32,
        rows: u32,
        title: &str,
        cap: u64,
    ) -> Result<Self, StoreError> {
        let state = store.recording_state(session_id).await?;
        let mut w = Self {
            store,
            session_id: session_id.to_owned(),
            started_at_ms: state.started_at_ms,
            part: None,
            recorded_upto: state.recorded_upto,
            carry: Vec::new(),
            line: Vec::new(),
            next_part: state.next_part,
            cap,
            stopped: state.recorded_upto >= cap,
            part_started: Instant::now(),
        };
        if state.next_part == 0 {
            let header = serde_json::json!({
                "version": 2,
                "width": cols,
                "height": rows,
                "timestamp": state.started_at_ms / 1000,
                "title": title,
                "env": { "TERM": "xterm-256color" },
            });
            let mut line = header.to_string().into_bytes();
            line.push(b'\n');
            w.write(&line);
        }
        Ok(w)
    }

    fn write(&mut self, line: &[u8]) {
        if self.part.is_none() {
            match encoder() {
                Ok(e) => {
                    self.part = Some(e);
                    self.part_started = Instant::now();
                }
                Err(e) => {
                    tracing::error!(session_id = %self.session_id, error = %e, "Cannot start a terminal recording part; the rest is not recorded.");
                    self.stopped = true;
                    return;
                }
            }
        }
        if let Some(part) = self.part.as_mut()
            && let Err(e) = part.write_all(line)
        {
            tracing::error!(session_id = %self.session_id, error = %e, "Cannot compress terminal output; the rest is not recorded.");
            self.stopped = true;
        }
    }

    fn event(&mut self, kind: &str, data: &str) {
        let now = crate::pki::millis(std::time::SystemTime::now());
        let t = (((now - self.started_at_ms).max(0) as f64) / 1000.0 * 1_000_000.0).round()
            / 1_000_000.0;
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        if serde_json::to_writer(&mut line, &(t, kind, data)).is_ok() {
            line.push(b'\n');
            self.write(&line);
        }
        self.line = line;
    }

    /// Records output at `offset`, skipping bytes already recorded (a replay
    /// after re-attaching).
    fn output(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        if self.stopped || end <= self.recorded_upto {
            return;
        }
        let skip = usize::try_from(self.recorded_upto.saturating_sub(offset))
            .unwrap_or(data.len())
            .min(data.len());
        self.recorded_upto = end;
        let joined: Vec<u8>;
        let bytes = if self.carry.is_empty() {
            &data[skip..]
        } else {
            joined = [std::mem::take(&mut self.carry).as_slice(), &data[skip..]].concat();
            &joined
        };
        // Keep an incomplete UTF-8 sequence at the end for the next chunk.
        let valid = match std::str::from_utf8(bytes) {
            Ok(_) => bytes.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => bytes.len(),
        };
        let (text, rest) = bytes.split_at(valid);
        self.carry = rest.to_vec();
        if !text.is_empty() {
            self.event("o", &String::from_utf8_lossy(text));
        }
        if self.recorded_upto >= self.cap {
            tracing::warn!(session_id = %self.session_id, cap = self.cap, "Terminal recording reached its size limit; the rest is not recorded.");
            self.stopped = true;
        }
    }

    fn resize(&mut self, cols: u32, rows: u32) {
        if !self.stopped {
            self.event("r", &format!("{cols}x{rows}"));
        }
    }

    async fn store_if_due(&mut self) {
        let due = self.part.as_ref().is_some_and(|p| {
            p.get_ref().len() >= PART_BYTES || self.part_started.elapsed() >= FLUSH_EVERY
        });
        if due {
            self.store_part().await;
        }
    }

    /// Finishes the current frame and stores it as the next part.
    async fn store_part(&mut self) {
        let Some(part) = self.part.take() else { return };
        let bytes = match part.finish() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "Could not compress a terminal recording part.");
                return;
            }
        };
        match self
            .store
            .append_recording(&self.session_id, self.next_part, &bytes, self.recorded_upto)
            .await
        {
            Ok(()) => self.next_part += 1,
            Err(e) => {
                tracing::error!(session_id = %self.session_id, error = %e, "Could not store a terminal recording part; it is lost.")
            }
        }
    }
}

/// Turns stored parts (zstd frames, or gzip members from earlier versions)
/// back into asciicast text, at most `max` bytes.
pub fn decode_recording(parts: &[Vec<u8>], max: u64) -> std::io::Result<String> {
    let mut text = Vec::new();
    for part in parts {
        let left = max.saturating_sub(text.len() as u64);
        if left == 0 {
            break;
        }
        if part.starts_with(&ZSTD_MAGIC) {
            zstd::stream::read::Decoder::new(part.as_slice())?
                .take(left)
                .read_to_end(&mut text)?;
        } else if part.starts_with(&GZIP_MAGIC) {
            flate2::read::MultiGzDecoder::new(part.as_slice())
                .take(left)
                .read_to_end(&mut text)?;
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a recording part is neither zstd nor gzip",
            ));
        }
    }
    // Parts hold whole UTF-8 characters; only the `max` cut can split one.
    Ok(String::from_utf8(text)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("t.db").display()
        ))
        .await
        .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn records_asciicast_without_duplicates_across_reattach() {
        let (_dir, store) = store().await;
        let agent = crate::fleet::AgentId::new();
        store
            .open_terminal_session("s1", &agent, "admin", 1_800_000_000_000, 80, 24)
            .await
            .unwrap();
        let r = Recorder::open(store.clone(), "s1", 80, 24, "web-1", 1 << 20)
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
        let r = Recorder::open(store.clone(), "s1", 100, 30, "web-1", 1 << 20)
            .await
            .unwrap();
        assert_eq!(r.recorded_upto(), 8);
        r.output(0, Bytes::from_static(b"hello \xc3\xa9 world"))
            .await;
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
        let output: String = events
            .iter()
            .filter(|e| e[1] == "o")
            .map(|e| e[2].as_str().unwrap())
            .collect();
        assert_eq!(output, "hello é world");
        assert!(events.iter().any(|e| e[1] == "r" && e[2] == "100x30"));
        assert!(
            events
                .windows(2)
                .all(|w| w[0][0].as_f64() <= w[1][0].as_f64())
        );
    }

    #[tokio::test]
    async fn recording_stops_at_its_cap_and_bulk_output_is_split_into_parts() {
        let (_dir, store) = store().await;
        store
            .open_terminal_session("s2", &crate::fleet::AgentId::new(), "admin", 0, 80, 24)
            .await
            .unwrap();
        let r = Recorder::open(store.clone(), "s2", 80, 24, "x", 100)
            .await
            .unwrap();
        r.output(0, Bytes::from(vec![b'a'; 80])).await;
        r.output(80, Bytes::from(vec![b'b'; 80])).await;
        r.output(160, Bytes::from(vec![b'c'; 80])).await;
        r.flush().await;
        let text = decode_recording(&store.recording_parts("s2").await.unwrap(), 1 << 20).unwrap();
        assert!(text.contains("aaaa") && text.contains("bbbb") && !text.contains("cccc"));

        store
            .open_terminal_session("s3", &crate::fleet::AgentId::new(), "admin", 0, 80, 24)
            .await
            .unwrap();
        let r = Recorder::open(store.clone(), "s3", 80, 24, "x", 64 << 20)
            .await
            .unwrap();
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

    #[test]
    fn parts_from_earlier_versions_decode_and_garbage_is_refused() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"version\":2}\n").unwrap();
        let old = gz.finish().unwrap();
        let mut z = encoder().unwrap();
        z.write_all(b"[0.5,\"o\",\"hi\"]\n").unwrap();
        let new = z.finish().unwrap();
        let text = decode_recording(&[old, new.clone()], 1 << 20).unwrap();
        assert_eq!(text, "{\"version\":2}\n[0.5,\"o\",\"hi\"]\n");
        // The limit holds across parts.
        assert_eq!(decode_recording(&[new.clone(), new], 20).unwrap().len(), 20);
        assert!(decode_recording(&[b"not a part".to_vec()], 1 << 20).is_err());
    }
}
