//! One simulated agent: its own key, certificate and mutual-TLS connection
//! (one tonic `Channel`, so one TCP + TLS connection), driven as a small
//! state machine.
//!
//! Lifecycle: `Connecting` (TLS + `Connect` call, Hello queued) →
//! `AwaitWelcome` → `Streaming` → (stream lost) → backoff → `Connecting`.
//! Every control message goes through [`SimAgent::on_control`], which
//! dispatches to one handler per message kind; a new capability (remote exec,
//! terminals) is a new arm there plus, if it needs time, a new branch in
//! the session's `select!`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use sovereign_agent::enroll::{describe, now_ms};
use sovereign_agent::{link, tls};
use sovereign_proto::v1 as pb;
use sovereign_proto::v1::agent_link_client::AgentLinkClient;
use sovereign_proto::v1::agent_message::Body;
use sovereign_proto::v1::control_message::Body as Control;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::identity::AgentCreds;
use crate::stats::{ErrorKind, Stats};
use crate::synth;

/// Batches sent but not yet acked, at most (as the real agent).
const WINDOW: u64 = 64;
const HEARTBEAT: Duration = Duration::from_secs(15);
const LIVE_EVERY: Duration = Duration::from_secs(1);
/// Messages queued for the stream, at most; beyond it a message is dropped
/// and counted (`send_queue_full`).
const OUTBOUND_QUEUE: usize = 32;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_MESSAGE: usize = 4 * 1024 * 1024;
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A session that lasted this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// What every simulated agent shares.
pub struct Shared {
    pub server: String,
    pub prefix: String,
    pub ca_der: Vec<u8>,
    pub interval: Duration,
    pub agents: usize,
    pub series: Vec<String>,
    pub stats: Arc<Stats>,
    /// Bounds concurrent connection attempts (TCP + TLS + Connect + Welcome).
    pub connect_gate: Semaphore,
    /// Batch schedules are offset from here, spread evenly over one interval.
    pub epoch: Instant,
    pub boot_time_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Hello sent; waiting for the control plane's Welcome.
    AwaitWelcome,
    /// Welcomed: metrics, heartbeats and live samples flow.
    Streaming,
}

/// What a handled message means for the session.
enum Flow {
    Continue,
    Welcomed,
    Lost(ErrorKind, String),
}

enum End {
    Shutdown,
    Lost { welcomed: bool },
}

/// The stream's sending half: never blocks, counts what it had to drop.
struct Outbound<'a> {
    tx: mpsc::Sender<pb::AgentMessage>,
    stats: &'a Stats,
}

impl Outbound<'_> {
    fn send(&self, id: u64, body: Body) -> bool {
        match self.tx.try_send(pb::AgentMessage {
            id,
            body: Some(body),
        }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.error(ErrorKind::SendQueueFull, || {
                    format!("{OUTBOUND_QUEUE} messages waiting for the stream")
                });
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

pub struct SimAgent {
    creds: AgentCreds,
    phase: Phase,
    /// The next batch's seq: strictly increasing for the agent's life (and
    /// past what the control plane already stored, learnt from Welcome).
    next_seq: u64,
    acked_seq: u64,
    /// Send times of unacked batches, oldest first (at most `WINDOW`).
    in_flight: VecDeque<(u64, Instant)>,
    full_rate: bool,
}

impl SimAgent {
    pub fn new(creds: AgentCreds) -> Self {
        Self {
            creds,
            phase: Phase::AwaitWelcome,
            next_seq: 1,
            acked_seq: 0,
            in_flight: VecDeque::new(),
            full_rate: false,
        }
    }

    /// Connects, streams, and reconnects with jittered backoff until `stop`.
    pub async fn run(mut self, shared: Arc<Shared>, stop: CancellationToken) {
        let n = shared.agents.max(1) as f64;
        let offset = shared.interval.mul_f64(self.creds.index as f64 / n);
        let mut metrics = tokio::time::interval_at(shared.epoch + offset, shared.interval);
        metrics.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut failures: u32 = 0;
        loop {
            let started = Instant::now();
            match self.session(&shared, &mut metrics, &stop).await {
                End::Shutdown => break,
                End::Lost { welcomed } => {
                    failures = if welcomed && started.elapsed() >= STABLE_AFTER {
                        0
                    } else {
                        failures.saturating_add(1)
                    };
                    let delay = link::backoff(BACKOFF_INITIAL, BACKOFF_CAP, failures);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
        }
    }

    async fn session(
        &mut self,
        shared: &Shared,
        metrics: &mut Interval,
        stop: &CancellationToken,
    ) -> End {
        let stats = &shared.stats;
        let lost = |kind: ErrorKind, msg: String| {
            stats.error(kind, || msg);
            End::Lost { welcomed: false }
        };
        let mut permit = tokio::select! {
            p = shared.connect_gate.acquire() => match p {
                Ok(p) => Some(p),
                Err(_) => return End::Shutdown,
            },
            () = stop.cancelled() => return End::Shutdown,
        };

        // Connecting.
        let config = match tls::mutual_config(
            &shared.ca_der,
            &self.creds.cert_der,
            self.creds.key_der.clone(),
        ) {
            Ok(c) => c,
            Err(e) => return lost(ErrorKind::TlsSetup, e.to_string()),
        };
        let channel = match tls::channel(&shared.server, config) {
            Ok(c) => c,
            Err(e) => return lost(ErrorKind::TlsSetup, e.to_string()),
        };
        let mut client = AgentLinkClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let out = Outbound { tx, stats };
        self.phase = Phase::AwaitWelcome;
        self.full_rate = false;
        let hello = pb::Hello {
            agent_version: concat!(env!("CARGO_PKG_VERSION"), "-loadgen").to_owned(),
            facts: Some(synth::facts(
                &shared.prefix,
                self.creds.index,
                shared.boot_time_ms,
            )),
            outbox_pending: 0,
        };
        out.send(0, Body::Hello(hello));
        let call = tokio::time::timeout(CONNECT_TIMEOUT, client.connect(ReceiverStream::new(rx)));
        let mut inbound = tokio::select! {
            r = call => match r {
                Ok(Ok(resp)) => resp.into_inner(),
                Ok(Err(status)) => {
                    let kind = match status.code() {
                        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated | tonic::Code::InvalidArgument => ErrorKind::StreamRefused,
                        _ => ErrorKind::ConnectFailed,
                    };
                    return lost(kind, describe(&status));
                }
                Err(_) => return lost(ErrorKind::ConnectTimeout, format!("no answer to Connect within {CONNECT_TIMEOUT:?}")),
            },
            () = stop.cancelled() => return End::Shutdown,
        };

        // AwaitWelcome, then Streaming.
        let welcome_deadline = tokio::time::sleep(WELCOME_TIMEOUT);
        tokio::pin!(welcome_deadline);
        let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut live = tokio::time::interval(LIVE_EVERY);
        live.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut online = None;
        let end = loop {
            tokio::select! {
                () = stop.cancelled() => break End::Shutdown,
                msg = inbound.message() => match msg {
                    Ok(Some(msg)) => match self.on_control(msg, &out, stats) {
                        Flow::Continue => {}
                        Flow::Welcomed => {
                            online = Some(stats.online());
                            permit = None;
                        }
                        Flow::Lost(kind, msg) => {
                            stats.error(kind, || msg);
                            break End::Lost { welcomed: online.is_some() };
                        }
                    },
                    Ok(None) => {
                        stats.error(ErrorKind::StreamClosed, || "the control plane closed the stream".into());
                        break End::Lost { welcomed: online.is_some() };
                    }
                    Err(status) => {
                        stats.error(ErrorKind::StreamError, || describe(&status));
                        break End::Lost { welcomed: online.is_some() };
                    }
                },
                () = &mut welcome_deadline, if self.phase == Phase::AwaitWelcome => {
                    stats.error(ErrorKind::WelcomeTimeout, || format!("no Welcome within {WELCOME_TIMEOUT:?} of Connect"));
                    break End::Lost { welcomed: false };
                }
                _ = metrics.tick(), if self.phase == Phase::Streaming => self.send_batch(shared, &out),
                _ = heartbeat.tick(), if self.phase == Phase::Streaming => self.send_heartbeat(&out),
                _ = live.tick(), if self.phase == Phase::Streaming && self.full_rate => self.send_live(shared, &out),
            }
        };
        drop(permit);
        drop(online);
        // Whatever this stream did not get acked is not re-sent (the data is
        // synthetic); count it.
        let unacked = self
            .next_seq
            .saturating_sub(1)
            .saturating_sub(self.acked_seq);
        stats.batches_abandoned.fetch_add(unacked, Relaxed);
        self.acked_seq = self.next_seq.saturating_sub(1);
        self.in_flight.clear();
        end
    }

    /// One control message, one handler per kind.
    fn on_control(&mut self, msg: pb::ControlMessage, out: &Outbound<'_>, stats: &Stats) -> Flow {
        let Some(body) = msg.body else {
            return Flow::Continue;
        };
        match body {
            Control::Welcome(w) => self.on_welcome(&w),
            Control::MetricAck(a) => {
                self.on_metric_ack(&a, stats);
                Flow::Continue
            }
            Control::Sampling(s) => {
                self.on_sampling(&s, stats);
                Flow::Continue
            }
            // Simulated certificates outlive any run: renewal is never asked for.
            Control::Renewed(_) => Flow::Continue,
            Control::Exec(e) => {
                self.on_exec(msg.id, &e, out, stats);
                Flow::Continue
            }
            Control::OpenSession(_) | Control::Cancel(_) | Control::Update(_) => {
                stats.error(ErrorKind::UnsupportedRequest, || {
                    format!("control message id {} is not simulated", msg.id)
                });
                let ack = pb::Ack {
                    id: msg.id,
                    ok: false,
                    error: "not supported by the load generator".into(),
                };
                out.send(0, Body::Ack(ack));
                Flow::Continue
            }
        }
    }

    /// Answers a command the way a fast host would: one line of output (an
    /// `uptime`-like line whatever was asked) and exit 0, so exec fan-out can
    /// be measured against thousands of simulated agents.
    fn on_exec(&mut self, id: u64, e: &pb::ExecRequest, out: &Outbound<'_>, stats: &Stats) {
        let _ = (id, stats);
        let line = format!(
            " {} up 1 day,  1 user,  load average: 0.00, 0.01, 0.05\n",
            self.creds.agent_id
        );
        let output = pb::ExecOutput {
            exec_id: e.exec_id.clone(),
            seq: 1,
            stream: pb::ExecStream::Stdout as i32,
            data: line.into_bytes(),
        };
        out.send(0, Body::ExecOutput(output));
        let result = pb::ExecResult {
            exec_id: e.exec_id.clone(),
            exit_code: Some(0),
            duration_ms: 1,
            last_seq: 1,
            output_bytes: 60,
            ..Default::default()
        };
        out.send(0, Body::ExecResult(result));
    }

    fn on_welcome(&mut self, w: &pb::Welcome) -> Flow {
        if self.phase == Phase::Streaming {
            return Flow::Continue;
        }
        if w.agent_id != self.creds.agent_id {
            return Flow::Lost(
                ErrorKind::StreamRefused,
                format!(
                    "welcomed as {} but enrolled as {}",
                    w.agent_id, self.creds.agent_id
                ),
            );
        }
        self.acked_seq = self.acked_seq.max(w.acked_seq);
        self.next_seq = self.next_seq.max(w.acked_seq.saturating_add(1));
        self.phase = Phase::Streaming;
        Flow::Welcomed
    }

    fn on_metric_ack(&mut self, a: &pb::MetricAck, stats: &Stats) {
        let up_to = a.up_to_seq.min(self.next_seq.saturating_sub(1));
        if up_to <= self.acked_seq {
            return;
        }
        stats
            .batches_acked
            .fetch_add(up_to - self.acked_seq, Relaxed);
        self.acked_seq = up_to;
        let now = Instant::now();
        while let Some(&(seq, sent)) = self.in_flight.front() {
            if seq > up_to {
                break;
            }
            self.in_flight.pop_front();
            stats
                .ack_latency
                .record(u64::try_from(now.duration_since(sent).as_millis()).unwrap_or(u64::MAX));
        }
    }

    fn on_sampling(&mut self, s: &pb::SetSampling, stats: &Stats) {
        if s.full_rate && !self.full_rate {
            stats.full_rate_requests.fetch_add(1, Relaxed);
        }
        self.full_rate = s.full_rate;
    }

    fn send_batch(&mut self, shared: &Shared, out: &Outbound<'_>) {
        let stats = &shared.stats;
        if self
            .next_seq
            .saturating_sub(1)
            .saturating_sub(self.acked_seq)
            >= WINDOW
        {
            stats.error(ErrorKind::WindowFull, || {
                format!("{WINDOW} batches unacked; skipping one")
            });
            return;
        }
        let seq = self.next_seq;
        let interval_ms = u32::try_from(shared.interval.as_millis()).unwrap_or(u32::MAX);
        let point = synth::point(&shared.series, now_ms(), interval_ms);
        if out.send(
            0,
            Body::Metrics(pb::MetricBatch {
                seq,
                points: vec![point],
            }),
        ) {
            self.next_seq += 1;
            self.in_flight.push_back((seq, Instant::now()));
            stats.batches_sent.fetch_add(1, Relaxed);
        }
    }

    fn send_heartbeat(&self, out: &Outbound<'_>) {
        let pending = self.in_flight.len() as u64;
        if out.send(
            0,
            Body::Heartbeat(pb::Heartbeat {
                sent_at_ms: now_ms(),
                outbox_pending: pending,
            }),
        ) {
            out.stats.heartbeats_sent.fetch_add(1, Relaxed);
        }
    }

    fn send_live(&self, shared: &Shared, out: &Outbound<'_>) {
        let point = synth::point(&shared.series, now_ms(), 1000);
        if out.send(
            0,
            Body::Live(pb::LiveSamples {
                points: vec![point],
            }),
        ) {
            out.stats.live_sent.fetch_add(1, Relaxed);
        }
    }
}
