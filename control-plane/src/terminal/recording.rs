//! Terminal recordings in asciicast v2: a JSON header line, then one
//! `[seconds, "o", text]` line per output chunk and `[seconds, "r", "COLSxROWS"]`
//! per resize. Input is never recorded (it would hold passwords). Lines are
//! buffered and stored as gzip members, appended in order, so a control
//! plane restart loses at most the last unflushed seconds and the stored
//! parts concatenate into one valid gzip stream.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::store::{Store, StoreError};

const FLUSH_BYTES: usize = 32 * 1024;
const FLUSH_EVERY: Duration = Duration::from_secs(2);

pub struct Recorder {
    store: Store,
    session_id: String,
    started_at_ms: i64,
    buf: String,
    /// Output offset up to which the recording is complete.
    recorded_upto: u64,
    /// Bytes of an incomplete UTF-8 sequence carried to the next chunk.
    carry: Vec<u8>,
    next_part: i64,
    cap: u64,
    stopped: bool,
    last_flush: Instant,
}

impl Recorder {
    /// Opens the recording of a session: a new one starts with the header,
    /// a resumed one continues after what is stored.
    pub async fn open(
        store: Store,
        session_id: &str,
        cols: u32,
        rows: u32,
        title: &str,
        cap: u64,
    ) -> Result<Self, StoreError> {
        let state = store.recording_state(session_id).await?;
        let mut r = Self {
            store,
            session_id: session_id.to_owned(),
            started_at_ms: state.started_at_ms,
            buf: String::new(),
            recorded_upto: state.recorded_upto,
            carry: Vec::new(),
            next_part: state.next_part,
            cap,
            stopped: state.recorded_upto >= cap,
            last_flush: Instant::now(),
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
            r.buf.push_str(&header.to_string());
            r.buf.push('\n');
        }
        Ok(r)
    }

    /// Output offset up to which the recording is complete.
    pub fn recorded_upto(&self) -> u64 {
        self.recorded_upto
    }

    fn elapsed(&self) -> f64 {
        let now = crate::pki::millis(std::time::SystemTime::now());
        ((now - self.started_at_ms).max(0) as f64) / 1000.0
    }

    fn event(&mut self, kind: &str, data: &str) {
        let t = (self.elapsed() * 1_000_000.0).round() / 1_000_000.0;
        if let Ok(line) = serde_json::to_string(&(t, kind, data)) {
            self.buf.push_str(&line);
            self.buf.push('\n');
        }
    }

    /// Records output at `offset`, skipping bytes already recorded (a replay
    /// after re-attaching).
    pub fn output(&mut self, offset: u64, data: &[u8]) {
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

    pub fn resize(&mut self, cols: u32, rows: u32) {
        if !self.stopped {
            self.event("r", &format!("{cols}x{rows}"));
        }
    }

    /// Stores what is buffered when enough has gathered or enough time passed.
    pub async fn flush_if_due(&mut self) {
        if self.buf.len() >= FLUSH_BYTES
            || (!self.buf.is_empty() && self.last_flush.elapsed() >= FLUSH_EVERY)
        {
            self.flush().await;
        }
    }

    pub async fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.buf.is_empty() {
            return;
        }
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        let compressed = gz.write_all(self.buf.as_bytes()).and_then(|()| gz.finish());
        match compressed {
            Ok(bytes) => match self
                .store
                .append_recording(&self.session_id, self.next_part, &bytes, self.recorded_upto)
                .await
            {
                Ok(()) => {
                    self.next_part += 1;
                    self.buf.clear();
                }
                Err(e) => {
                    tracing::error!(session_id = %self.session_id, error = %e, "Could not store a terminal recording part; will retry.")
                }
            },
            Err(e) => tracing::error!(error = %e, "Could not compress a terminal recording part."),
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

    #[tokio::test]
    async fn records_asciicast_without_duplicates_across_reattach() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("t.db").display()
        ))
        .await
        .unwrap();
        let agent = crate::fleet::AgentId::new();
        store
            .open_terminal_session("s1", &agent, "admin", 1_800_000_000_000, 80, 24)
            .await
            .unwrap();
        let mut r = Recorder::open(store.clone(), "s1", 80, 24, "web-1", 1 << 20)
            .await
            .unwrap();
        r.output(0, b"hello ");
        // A UTF-8 character split across chunks is kept whole.
        r.output(6, &"é".as_bytes()[..1]);
        r.output(7, &"é".as_bytes()[1..]);
        r.resize(100, 30);
        r.flush().await;
        // Re-attach: the agent replays from 0; only new bytes are recorded.
        let mut r = Recorder::open(store.clone(), "s1", 100, 30, "web-1", 1 << 20)
            .await
            .unwrap();
        r.output(0, b"hello \xc3\xa9 world");
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
    async fn recording_stops_at_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("t.db").display()
        ))
        .await
        .unwrap();
        store
            .open_terminal_session("s2", &crate::fleet::AgentId::new(), "admin", 0, 80, 24)
            .await
            .unwrap();
        let mut r = Recorder::open(store.clone(), "s2", 80, 24, "x", 100)
            .await
            .unwrap();
        r.output(0, &[b'a'; 80]);
        r.output(80, &[b'b'; 80]);
        r.output(160, &[b'c'; 80]);
        r.flush().await;
        let text = decode_recording(&store.recording_parts("s2").await.unwrap(), 1 << 20).unwrap();
        assert!(text.contains("aaaa") && text.contains("bbbb") && !text.contains("cccc"));
    }
}
