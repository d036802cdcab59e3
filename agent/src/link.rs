//! The link to the control plane: one long-lived mutual-TLS `Connect` stream,
//! re-dialled with jittered exponential backoff. The link owns the outbox:
//! every summary goes to disk first and is streamed from there, so a
//! disconnect, a control-plane restart or an agent restart loses nothing;
//! after reconnecting, everything not yet acked is back-filled in order.
//!
//! The link also carries remote work: exec requests go to the exec runner
//! and its output comes back on Connect through a channel of its own (so a
//! flood of output never crowds out acks, heartbeats or metrics); each
//! terminal gets its own `Terminal` stream on the same TLS channel
//! (`link/terminal.rs`).

mod convert;
mod terminal;
mod work;

pub use work::Work;

use std::time::{Duration, Instant};

use prost::Message;
use sovereign_proto::v1 as pb;
use sovereign_proto::v1::agent_link_client::AgentLinkClient;
use sovereign_proto::v1::agent_message::Body;
use sovereign_proto::v1::control_message::Body as Control;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::enroll::{self, describe, now_ms};
use crate::metrics::{HostFacts, ProcessSnapshot, SummaryPoint};
use crate::outbox::Outbox;
use crate::state::{Credentials, StateDir};
use crate::tls;

/// Batches sent but not yet acked, at most.
const WINDOW: u64 = 64;
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Renew the certificate once this share of its lifetime has passed.
const RENEW_AT: f64 = 0.6;
/// A session that lasted this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// Exec output messages waiting for the network, at most.
const EXEC_WINDOW: usize = 32;

/// What the collector hands the link.
pub struct Feeds {
    pub summaries: mpsc::Receiver<SummaryPoint>,
    pub live: mpsc::Receiver<Vec<SummaryPoint>>,
    pub processes: mpsc::Receiver<ProcessSnapshot>,
}

pub struct Link {
    pub state: StateDir,
    pub creds: Credentials,
    pub server: String,
    pub facts: HostFacts,
    pub outbox: Outbox,
    pub feeds: Feeds,
    pub full_rate: watch::Sender<bool>,
    pub backoff_initial: Duration,
    pub backoff_cap: Duration,
    pub work: Work,
}

enum End {
    Shutdown,
    Lost { reason: String, stable: bool },
}

impl Link {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let end = self.session(&shutdown).await;
            let _ = self.full_rate.send(false);
            match end {
                End::Shutdown => break,
                End::Lost { reason, stable } => {
                    failures = if stable {
                        0
                    } else {
                        failures.saturating_add(1)
                    };
                    let delay = backoff(self.backoff_initial, self.backoff_cap, failures);
                    tracing::warn!(reason = %reason, retry_in_ms = delay.as_millis() as u64, pending = self.outbox.pending(), "Not connected to the control plane; retrying.");
                    if self.wait(delay, &shutdown).await {
                        break;
                    }
                }
            }
        }
        self.finish().await;
        self.work.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.work.tracker.wait()).await;
    }

    /// Spools summaries while waiting; true if shutdown came first.
    async fn wait(&mut self, delay: Duration, shutdown: &CancellationToken) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return false,
                () = shutdown.cancelled() => return true,
                Some(s) = self.feeds.summaries.recv() => self.spool(&s),
                Some(_) = self.feeds.live.recv() => {}
                Some(_) = self.feeds.processes.recv() => {}
            }
        }
    }

    /// On shutdown: take the collector's last summaries, then make the outbox durable.
    async fn finish(&mut self) {
        let drain = async {
            while let Some(s) = self.feeds.summaries.recv().await {
                self.spool(&s);
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        if let Err(e) = self.outbox.flush() {
            tracing::error!(error = %e, "Could not flush the outbox.");
        }
        tracing::info!(
            pending = self.outbox.pending(),
            "Link stopped; unsent summaries stay in the outbox."
        );
    }

    fn spool(&mut self, s: &SummaryPoint) {
        let bytes = convert::point(s).encode_to_vec();
        if let Err(e) = self.outbox.append(&bytes) {
            tracing::error!(error = %e, "Could not write a summary to the outbox; it is lost.");
        }
    }

    async fn session(&mut self, shutdown: &CancellationToken) -> End {
        let started = Instant::now();
        let lost = |reason: String| End::Lost {
            reason,
            stable: false,
        };
        let config = match tls::mutual_config(
            &self.creds.ca_der,
            &self.creds.cert_der,
            self.creds.key_der.clone(),
        ) {
            Ok(c) => c,
            Err(e) => return lost(e.to_string()),
        };
        let channel = match tls::channel(&self.server, config) {
            Ok(c) => c,
            Err(e) => return lost(e.to_string()),
        };
        let mut client =
            AgentLinkClient::new(channel.clone()).max_decoding_message_size(4 * 1024 * 1024);
        let (tx, rx) = mpsc::channel::<pb::AgentMessage>(WINDOW as usize + 16);
        let (exec_tx, exec_rx) = mpsc::channel::<pb::AgentMessage>(EXEC_WINDOW);
        let hello = pb::AgentMessage {
            id: 0,
            body: Some(Body::Hello(pb::Hello {
                agent_version: env!("CARGO_PKG_VERSION").to_owned(),
                facts: Some(convert::facts(&self.facts)),
                outbox_pending: self.outbox.pending(),
            })),
        };
        if tx.send(hello).await.is_err() {
            return lost("internal channel closed".into());
        }
        let outbound = ReceiverStream::new(rx).merge(ReceiverStream::new(exec_rx));
        let call = client.connect(outbound);
        tokio::pin!(call);
        let mut inbound = loop {
            tokio::select! {
                r = &mut call => match r {
                    Ok(resp) => break resp.into_inner(),
                    Err(status) => return lost(refusal(&status)),
                },
                () = shutdown.cancelled() => return End::Shutdown,
                Some(s) = self.feeds.summaries.recv() => self.spool(&s),
            }
        };

        let mut sent_up_to = self.outbox.acked_seq();
        let mut welcomed = false;
        let mut pending_key: Option<(u64, rcgen::KeyPair)> = None;
        let mut next_id: u64 = 1;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut renew_check = tokio::time::interval(Duration::from_secs(2));
        let end = loop {
            if welcomed && let Err(reason) = self.send_backlog(&tx, &mut sent_up_to).await {
                break lost(reason);
            }
            tokio::select! {
                () = shutdown.cancelled() => break End::Shutdown,
                msg = inbound.message() => match msg {
                    Ok(Some(msg)) => {
                        let Some(body) = msg.body else { continue };
                        match body {
                            Control::Welcome(w) => {
                                welcomed = true;
                                if let Err(e) = self.outbox.ack(w.acked_seq) {
                                    tracing::error!(error = %e, "Could not record acks in the outbox.");
                                }
                                sent_up_to = self.outbox.acked_seq();
                                tracing::info!(agent_id = %w.agent_id, backlog = self.outbox.pending(), "Connected to the control plane.");
                            }
                            Control::MetricAck(a) => {
                                if let Err(e) = self.outbox.ack(a.up_to_seq) {
                                    tracing::error!(error = %e, "Could not record acks in the outbox.");
                                }
                            }
                            Control::Sampling(s) => {
                                tracing::debug!(full_rate = s.full_rate, "Sampling rate changed by the control plane.");
                                let _ = self.full_rate.send(s.full_rate);
                            }
                            Control::Renewed(r) => self.renewed(msg.id, r, &mut pending_key),
                            Control::Exec(req) => {
                                let _ = tx.try_send(convert::ack(msg.id, self.work.exec(req)));
                            }
                            Control::Cancel(c) => {
                                let _ = tx.try_send(convert::ack(msg.id, self.work.cancel(&c)));
                            }
                            Control::OpenSession(open) if open.kind == "terminal" => {
                                self.work.tracker.spawn(terminal::serve(
                                    channel.clone(),
                                    self.work.terminals.clone(),
                                    open,
                                    msg.id,
                                    tx.clone(),
                                    shutdown.child_token(),
                                ));
                            }
                            Control::OpenSession(open) => {
                                let error = format!("unknown session kind {:?}", open.kind);
                                let _ = tx.try_send(convert::ack(msg.id, Some(error)));
                            }
                            Control::Update(_) => {
                                let error = "not supported by this agent version".to_owned();
                                let _ = tx.try_send(convert::ack(msg.id, Some(error)));
                            }
                        }
                    }
                    Ok(None) => break lost("the control plane closed the stream".into()),
                    Err(status) => break lost(refusal(&status)),
                },
                Some(s) = self.feeds.summaries.recv() => self.spool(&s),
                permit = exec_tx.reserve(), if welcomed && self.work.pending.is_some() => {
                    if let Ok(permit) = permit && let Some(m) = self.work.pending.take() {
                        permit.send(m);
                    }
                }
                Some(ev) = self.work.exec_events.recv(), if welcomed && self.work.pending.is_none() => {
                    self.work.pending = Some(convert::exec_event(ev));
                }
                Some(points) = self.feeds.live.recv() => {
                    if *self.full_rate.borrow() {
                        let msg = pb::AgentMessage { id: 0, body: Some(Body::Live(pb::LiveSamples { points: points.iter().map(convert::point).collect() })) };
                        let _ = tx.try_send(msg);
                    }
                }
                Some(p) = self.feeds.processes.recv() => {
                    let _ = tx.try_send(pb::AgentMessage { id: 0, body: Some(Body::Processes(convert::processes(&p))) });
                }
                _ = heartbeat.tick() => {
                    let hb = pb::AgentMessage { id: 0, body: Some(Body::Heartbeat(pb::Heartbeat { sent_at_ms: now_ms(), outbox_pending: self.outbox.pending() })) };
                    let _ = tx.try_send(hb);
                }
                _ = renew_check.tick() => {
                    if pending_key.is_none() && self.renewal_due() {
                        match enroll::key_and_csr() {
                            Ok((key, csr_der)) => {
                                let id = next_id;
                                next_id += 1;
                                tracing::info!("Asking the control plane for a fresh certificate.");
                                let _ = tx.try_send(pb::AgentMessage { id, body: Some(Body::Renew(pb::RenewRequest { csr_der })) });
                                pending_key = Some((id, key));
                            }
                            Err(e) => tracing::error!(error = %e, "Could not make a key for renewal."),
                        }
                    }
                }
            }
        };
        match end {
            End::Lost { reason, .. } => End::Lost {
                reason,
                stable: welcomed && started.elapsed() >= STABLE_AFTER,
            },
            other => other,
        }
    }

    /// Sends unacked batches from the outbox, keeping at most `WINDOW` in flight.
    async fn send_backlog(
        &mut self,
        tx: &mpsc::Sender<pb::AgentMessage>,
        sent_up_to: &mut u64,
    ) -> Result<(), String> {
        *sent_up_to = (*sent_up_to).max(self.outbox.acked_seq());
        let in_flight = sent_up_to.saturating_sub(self.outbox.acked_seq());
        if in_flight >= WINDOW || self.outbox.last_seq() <= *sent_up_to {
            return Ok(());
        }
        let want = usize::try_from(WINDOW - in_flight).unwrap_or(1);
        let records = self
            .outbox
            .read_after(*sent_up_to, want)
            .map_err(|e| format!("cannot read the outbox: {e}"))?;
        for (seq, payload) in records {
            *sent_up_to = seq;
            let point = match pb::MetricPoint::decode(payload.as_slice()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(seq, error = %e, "Skipping an unreadable outbox record.");
                    continue;
                }
            };
            let msg = pb::AgentMessage {
                id: 0,
                body: Some(Body::Metrics(pb::MetricBatch {
                    seq,
                    points: vec![point],
                })),
            };
            tx.send(msg)
                .await
                .map_err(|_| "the stream closed".to_owned())?;
        }
        Ok(())
    }

    fn renewal_due(&self) -> bool {
        let id = &self.creds.identity;
        let life = (id.cert_not_after_ms - id.cert_received_ms).max(0) as f64;
        now_ms() as f64 >= id.cert_received_ms as f64 + life * RENEW_AT
    }

    fn renewed(
        &mut self,
        id: u64,
        r: pb::RenewResponse,
        pending: &mut Option<(u64, rcgen::KeyPair)>,
    ) {
        let Some((want, key)) = pending.take() else {
            return;
        };
        if want != id {
            *pending = Some((want, key));
            return;
        }
        if !r.error.is_empty() || r.certificate_der.is_empty() {
            tracing::error!(error = %r.error, "The control plane refused to renew the certificate; will retry.");
            return;
        }
        let mut creds = self.creds.clone();
        creds.cert_der = r.certificate_der;
        creds.key_der = key.serialize_der();
        creds.identity.cert_received_ms = now_ms();
        creds.identity.cert_not_after_ms = r.not_after_ms;
        match self.state.save(&creds) {
            Ok(()) => {
                tracing::info!(not_after_ms = r.not_after_ms, "Certificate renewed.");
                self.creds = creds;
            }
            Err(e) => {
                tracing::error!(error = %e, "Could not save the renewed certificate; keeping the old one.")
            }
        }
    }
}

/// Facts in wire form, for enrollment.
pub fn facts_to_wire(f: &HostFacts) -> pb::HostFacts {
    convert::facts(f)
}

/// Explains why the control plane refused or dropped us.
fn refusal(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::PermissionDenied => format!(
            "refused: {} (ask an admin to re-enroll this machine)",
            status.message()
        ),
        tonic::Code::Unauthenticated => format!("not accepted: {}", status.message()),
        _ => describe(status),
    }
}

/// Exponential backoff with full jitter in the upper half: after `failures`
/// failures, a delay in [d/2, d] with d = min(cap, initial * 2^failures).
pub fn backoff(initial: Duration, cap: Duration, failures: u32) -> Duration {
    let exp = initial.saturating_mul(1u32 << failures.min(20));
    let d = exp.min(cap);
    let jitter: f64 = rand::random::<f64>();
    d.mul_f64(0.5 + jitter * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let i = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        for f in 0..30 {
            let d = backoff(i, cap, f);
            let ceiling = i.saturating_mul(1u32 << f.min(20)).min(cap);
            assert!(d >= ceiling / 2 && d <= ceiling, "{f}: {d:?}");
        }
        let spread: std::collections::HashSet<u128> =
            (0..50).map(|_| backoff(i, cap, 10).as_millis()).collect();
        assert!(spread.len() > 10, "jitter spreads reconnects");
    }
}
