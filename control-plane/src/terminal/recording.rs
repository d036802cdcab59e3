//! Terminal recordings in asciicast v2: a JSON header line, then one
//! `[seconds, "o", text]` line per output chunk and `[seconds, "r", "COLSxROWS"]`
//! per resize. Input is never recorded (it would hold passwords).
//!
//! A recorder is a task of its own, fed through a bounded channel, so a busy
//! terminal never waits for compression or the database. Lines stream into a
//! gzip encoder; every ~32 KiB of compressed output, or 2 s, the gzip member
//! is finished and stored, so memory stays small, a crash loses at most the
//! last seconds, and the stored parts concatenate into one valid gzip stream.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError};

const PART_BYTES: usize = 32 * 1024;
const FLUSH_EVERY: Duration = Duration::from_secs(2);

enum Event {
    Output(u64, Vec<u8>),
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

    /// Records output at `offset`; waits only if the recorder is far behind.
    pub async fn output(&self, offset: u64, data: &[u8]) {
        let _ = self.tx.send(Event::Output(offset, data.to_vec())).await;
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

/// The recorder task's state.
struct Writer {
    store: Store,
    session_id: String,
    started_at_ms: i64,
    gz: Option<GzEncoder<Vec<u8>>>,
    recorded_upto: u64,
    /// Bytes of an incomplete UTF-8 sequence carried to the next chunk.
    carry: Vec<u8>,
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
            gz: None,
            recorded_upto: state.recorded_upto,
            carry: Vec::new(),
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
            w.line(&header.to_string());
        }
        Ok(w)
    }

    fn line(&mut self, line: &str) {
        let gz = self.gz.get_or_insert_with(|| {
            self.part_started = Instant::now();
            GzEncoder::new(Vec::with_capacity(PART_BYTES), Compression::fast())
        });
        let _ = gz
            .write_all(line.as_bytes())
            .and_then(|()| gz.write_all(b"\n"));
    }

    fn event(&mut self, kind: &str, data: &str) {
        let now = crate::pki::millis(std::time::SystemTime::now());
        let t = (((now - self.started_at_ms).max(0) as f64) / 1000.0 * 1_000_000.0).round()
            / 1_000_000.0;
        if let Ok(line) = serde_json::to_string(&(t, kind, data)) {
            self.line(&line);
        }
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
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(&data[skip..]);
        self.recorded_upto = end;
        // Keep an incomplete UTF-8 sequence at the end for the next chunk.
        let valid = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => bytes.len(),
        };
        self.carry = bytes.split_off(valid);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !text.is_empty() {
            self.event("o", &text);
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
        let due = self.gz.as_ref().is_some_and(|gz| {
            gz.get_ref().len() >= PART_BYTES || self.part_started.elapsed() >= FLUSH_EVERY
        });
        if due {
            self.store_part().await;
        }
    }

    /// Finishes the current gzip member and stores it as the next part.
    async fn store_part(&mut self) {
        let Some(gz) = self.gz.take() else { return };
        let bytes = match gz.finish() {
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

/// Turns stored parts back into asciicast text, at most `max` bytes.
pub fn decode_recording(parts: &[Vec<u8>], max: u64) -> std::io::Result<String> {
    let joined: Vec<u8> = parts.concat();
    let mut text = String::new();
    MultiGzDecoder::new(joined.as_slice())
        .take(max)
        .read_to_string(&mut text)?;
    Ok(text)
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
        r.output(0, b"hello ").await;
        // A UTF-8 character split across chunks is kept whole.
        r.output(6, &"é".as_bytes()[..1]).await;
        r.output(7, &"é".as_bytes()[1..]).await;
        r.resize(100, 30).await;
        r.flush().await;
        // Re-attach: the agent replays from 0; only new bytes are recorded.
        let r = Recorder::open(store.clone(), "s1", 100, 30, "web-1", 1 << 20)
            .await
            .unwrap();
        assert_eq!(r.recorded_upto(), 8);
        r.output(0, b"hello \xc3\xa9 world").await;
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
        r.output(0, &[b'a'; 80]).await;
        r.output(80, &[b'b'; 80]).await;
        r.output(160, &[b'c'; 80]).await;
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
        // Random hex text: barely compressible, like a big `cat`.
        let chunk: Vec<u8> = (0..32 * 1024)
            .map(|_| b"0123456789abcdef"[usize::from(rand::random::<u8>() % 16)])
            .collect();
        for i in 0..64u64 {
            r.output(i * chunk.len() as u64, &chunk).await;
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
}
