//! Counters shared by every simulated agent: lock-free except for the first
//! example message of each error kind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Everything that can go wrong, by kind. The summary reports a count per
/// kind and the first message seen for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The control plane's per-address enrollment limit answered.
    EnrollRateLimited,
    EnrollUnreachable,
    /// A definitive refusal (bad or used-up token, ...): enrollment stops.
    EnrollRefused,
    EnrollBadCa,
    /// An agent that still had no certificate after every retry.
    EnrollGaveUp,
    Key,
    TlsSetup,
    /// TCP, TLS or HTTP/2 failed, or the control plane was unavailable.
    ConnectFailed,
    /// `Connect` answered with a definitive status (revoked, unknown cert...).
    StreamRefused,
    ConnectTimeout,
    WelcomeTimeout,
    /// The stream broke after it was established.
    StreamError,
    /// The control plane ended the stream cleanly.
    StreamClosed,
    /// The stream's send queue was full (HTTP/2 flow control pushing back).
    SendQueueFull,
    /// A batch was due while 64 were still unacked; it was skipped.
    WindowFull,
    /// A control message the load generator cannot serve yet (answered with
    /// a negative Ack, like an agent without the feature).
    UnsupportedRequest,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::EnrollRateLimited,
        ErrorKind::EnrollUnreachable,
        ErrorKind::EnrollRefused,
        ErrorKind::EnrollBadCa,
        ErrorKind::EnrollGaveUp,
        ErrorKind::Key,
        ErrorKind::TlsSetup,
        ErrorKind::ConnectFailed,
        ErrorKind::StreamRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::WelcomeTimeout,
        ErrorKind::StreamError,
        ErrorKind::StreamClosed,
        ErrorKind::SendQueueFull,
        ErrorKind::WindowFull,
        ErrorKind::UnsupportedRequest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::EnrollRateLimited => "enroll_rate_limited",
            ErrorKind::EnrollUnreachable => "enroll_unreachable",
            ErrorKind::EnrollRefused => "enroll_refused",
            ErrorKind::EnrollBadCa => "enroll_bad_ca",
            ErrorKind::EnrollGaveUp => "enroll_gave_up",
            ErrorKind::Key => "key",
            ErrorKind::TlsSetup => "tls_setup",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::StreamRefused => "stream_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::WelcomeTimeout => "welcome_timeout",
            ErrorKind::StreamError => "stream_error",
            ErrorKind::StreamClosed => "stream_closed",
            ErrorKind::SendQueueFull => "send_queue_full",
            ErrorKind::WindowFull => "window_full",
            ErrorKind::UnsupportedRequest => "unsupported_request",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// Ack latency buckets (upper bounds, ms).
const BOUNDS_MS: [u64; 16] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000,
];

/// A fixed-bucket latency histogram; quantiles are bucket upper bounds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_MS.len() + 1],
    count: AtomicU64,
    max: AtomicU64,
}

impl Histogram {
    pub fn record(&self, ms: u64) {
        let i = BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BOUNDS_MS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.max.fetch_max(ms, Relaxed);
    }

    /// The smallest bucket bound below which a share `q` of samples fall.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let count = self.count.load(Relaxed);
        if count == 0 {
            return None;
        }
        let want = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= want {
                let max = self.max.load(Relaxed);
                return Some(BOUNDS_MS.get(i).copied().unwrap_or(max).min(max));
            }
        }
        Some(self.max.load(Relaxed))
    }

    pub fn max(&self) -> Option<u64> {
        (self.count.load(Relaxed) > 0).then(|| self.max.load(Relaxed))
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Agents holding a certificate (from the state file or enrolled now).
    pub enrolled: AtomicU64,
    pub enrolled_now: AtomicU64,
    pub reused: AtomicU64,
    /// Agents whose stream is up right now (welcomed, not yet lost).
    pub connected: AtomicU64,
    pub connected_peak: AtomicU64,
    pub sessions_welcomed: AtomicU64,
    pub batches_sent: AtomicU64,
    pub batches_acked: AtomicU64,
    /// Batches sent on a stream that broke before they were acked.
    pub batches_abandoned: AtomicU64,
    pub heartbeats_sent: AtomicU64,
    pub live_sent: AtomicU64,
    /// SetSampling{full_rate: true} received.
    pub full_rate_requests: AtomicU64,
    pub ack_latency: Histogram,
    /// How many agents the run has; when `connected` first reaches it,
    /// `all_connected_at` is set.
    pub target: AtomicU64,
    pub all_connected_at: std::sync::OnceLock<std::time::Instant>,
    errors: [AtomicU64; ErrorKind::ALL.len()],
    examples: Mutex<BTreeMap<&'static str, String>>,
}

/// Counts an agent as connected for as long as it lives.
pub struct Online(Arc<Stats>);

impl Drop for Online {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Relaxed);
    }
}

impl Stats {
    pub fn online(self: &Arc<Self>) -> Online {
        let now = self.connected.fetch_add(1, Relaxed) + 1;
        self.connected_peak.fetch_max(now, Relaxed);
        let target = self.target.load(Relaxed);
        if target > 0 && now >= target {
            let _ = self.all_connected_at.set(std::time::Instant::now());
        }
        self.sessions_welcomed.fetch_add(1, Relaxed);
        Online(self.clone())
    }

    pub fn error(&self, kind: ErrorKind, message: impl FnOnce() -> String) {
        let before = self.errors[kind.index()].fetch_add(1, Relaxed);
        if before == 0
            && let Ok(mut ex) = self.examples.lock()
        {
            let mut msg = message();
            if let Some((cut, _)) = msg.char_indices().nth(400) {
                msg.truncate(cut);
            }
            ex.entry(kind.name()).or_insert(msg);
        }
    }

    pub fn errors(&self) -> BTreeMap<&'static str, u64> {
        ErrorKind::ALL
            .iter()
            .filter_map(|k| {
                let n = self.errors[k.index()].load(Relaxed);
                (n > 0).then_some((k.name(), n))
            })
            .collect()
    }

    pub fn error_total(&self) -> u64 {
        self.errors.iter().map(|e| e.load(Relaxed)).sum()
    }

    pub fn examples(&self) -> BTreeMap<&'static str, String> {
        self.examples.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_bucket_bounds() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for ms in [1, 3, 3, 7, 7, 7, 7, 40, 40, 900] {
            h.record(ms);
        }
        assert_eq!(h.quantile(0.5), Some(10));
        assert_eq!(h.quantile(0.99), Some(900));
        assert_eq!(h.max(), Some(900));
    }

    #[test]
    fn errors_keep_the_first_example() {
        let s = Stats::default();
        s.error(ErrorKind::StreamError, || "first".into());
        s.error(ErrorKind::StreamError, || "second".into());
        assert_eq!(s.errors().get("stream_error"), Some(&2));
        assert_eq!(
            s.examples().get("stream_error").map(String::as_str),
            Some("first")
        );
        assert_eq!(s.error_total(), 2);
        s.error(ErrorKind::Key, || "é".repeat(1000));
        assert_eq!(
            s.examples().get("key").map(|m| m.chars().count()),
            Some(400)
        );
    }
}
