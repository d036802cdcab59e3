//! One agent's live session: reads the agent's stream, hands metric batches
//! to the ingest task, forwards live data to watchers, renews certificates,
//! and pushes acks and sampling changes back. Cancelled by revocation, by a
//! newer connection of the same agent, or by shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sovereign_proto::v1 as pb;
use sovereign_proto::v1::agent_message::Body;
use tokio::sync::{broadcast, mpsc, watch};
use tonic::{Status, Streaming};

use super::{Gateway, convert};
use crate::exec::AgentExecEvent;
use crate::fleet::{FleetEvent, LiveEvent, LiveState, Push, SessionHandle};
use crate::metrics::{IngestJob, MAX_POINTS_PER_BATCH};
use crate::pki::{PeerIdentity, millis};

/// How long the agent has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A session with no message for this long is considered dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What flows to the agent. Boxed, so the channel's preallocated slots stay
/// small: there is one such channel per connected agent.
pub type OutItem = Result<Box<pb::ControlMessage>, Box<Status>>;
type Out = mpsc::Sender<OutItem>;

fn ok(m: pb::ControlMessage) -> OutItem {
    Ok(Box::new(m))
}

fn err(s: Status) -> OutItem {
    Err(Box::new(s))
}

pub async fn run(
    g: Arc<Gateway>,
    peer: PeerIdentity,
    acked_seq: u64,
    conn: u64,
    remote: String,
    mut inbound: Streaming<pb::AgentMessage>,
    out: Out,
) {
    let agent = peer.agent_id.clone();

    let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
        Ok(Ok(Some(pb::AgentMessage {
            body: Some(Body::Hello(h)),
            ..
        }))) => h,
        Ok(Ok(_)) | Err(_) => {
            g.telemetry.sessions_refused.add(1);
            let _ = out
                .send(err(Status::invalid_argument(
                    "the first message on Connect must be Hello",
                )))
                .await;
            return;
        }
        Ok(Err(status)) => {
            g.telemetry.sessions_refused.add(1);
            tracing::warn!(error = %status, "Agent stream failed before hello.");
            let _ = out.try_send(err(malformed(&status)));
            return;
        }
    };
    let facts = hello.facts.map(convert::facts).unwrap_or_default();
    let version: String = hello
        .agent_version
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let now = crate::pki::now_ms();
    if let Err(e) = g.store.agent_connected(&agent, &facts, &version, now).await {
        tracing::error!(error = %e, "Could not record the agent's hello.");
        let _ = out
            .send(err(Status::unavailable(
                "the control plane cannot reach its database; retry shortly",
            )))
            .await;
        return;
    }

    let cancel = g.shutdown.child_token();
    let (push_tx, mut push_rx) = mpsc::channel::<Push>(256);
    let (live, _) = broadcast::channel::<LiveEvent>(16);
    let (state_tx, state_rx) = watch::channel(LiveState {
        connected_at_ms: now,
        remote_addr: remote.clone(),
        outbox_pending: hello.outbox_pending,
        ..LiveState::default()
    });
    let handle = SessionHandle {
        conn,
        push: push_tx.clone(),
        cancel: cancel.clone(),
        live: live.clone(),
        state: state_rx,
    };
    g.fleet.attach(agent.clone(), handle).await;
    g.fleet.publish(FleetEvent::Status {
        agent: agent.clone(),
    });
    g.telemetry.sessions_opened.add(1);
    tracing::info!(remote = %remote, hostname = %facts.hostname, version = %version, pending = hello.outbox_pending, "Agent connected.");

    let welcome = pb::ControlMessage {
        id: 0,
        body: Some(pb::control_message::Body::Welcome(pb::Welcome {
            agent_id: agent.to_string(),
            server_time_ms: now,
            acked_seq,
        })),
    };
    let mut ended: Option<Status> = None;
    if out.send(ok(welcome)).await.is_err() {
        ended = Some(Status::cancelled("agent went away"));
    }

    let mut full_rate = false;
    let mut next_id: u64 = 0;
    let mut exec_routes: ExecRoutes = HashMap::new();
    let mut last_heard = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while ended.is_none() {
        tokio::select! {
            () = cancel.cancelled() => {
                ended = Some(cancel_reason(&g, &peer).await);
            }
            Some(push) = push_rx.recv() => {
                next_id += 1;
                if out.send(ok(convert::push(push, next_id))).await.is_err() {
                    break;
                }
            }
            _ = tick.tick() => {
                let want = live.receiver_count() > 0;
                if want != full_rate {
                    full_rate = want;
                    tracing::debug!(full_rate, "Changing the agent's sampling rate.");
                    if out.send(ok(convert::push(Push::Sampling { full_rate }, 0))).await.is_err() {
                        break;
                    }
                }
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    ended = Some(Status::deadline_exceeded("no message from the agent for 90 s"));
                }
            }
            msg = inbound.message() => match msg {
                Ok(Some(msg)) => {
                    last_heard = Instant::now();
                    let io = Io { push_tx: &push_tx, live: &live, state: &state_tx, out: &out };
                    if let Err(status) = handle_message(&g, &peer, msg, &io, &mut exec_routes).await {
                        g.telemetry.bad_messages.add(1);
                        tracing::warn!(reason = %status.message(), "Closing the agent's stream after a bad message.");
                        ended = Some(status);
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(error = %status, "Agent stream ended with an error.");
                    if status.code() == tonic::Code::Internal || status.code() == tonic::Code::OutOfRange {
                        g.telemetry.bad_messages.add(1);
                        ended = Some(malformed(&status));
                    } else {
                        break;
                    }
                }
            }
        }
    }
    if let Some(status) = ended {
        let _ = out.try_send(err(status));
    }
    g.fleet.detach(agent.clone(), conn).await;
    g.fleet.publish(FleetEvent::Status {
        agent: agent.clone(),
    });
    if let Err(e) = g
        .store
        .touch_agents(std::slice::from_ref(&agent), crate::pki::now_ms())
        .await
    {
        tracing::warn!(error = %e, "Could not record when the agent was last seen.");
    }
    tracing::info!("Agent disconnected.");
}

/// Where this session sends each exec's events (looked up once per exec).
type ExecRoutes = HashMap<String, mpsc::Sender<AgentExecEvent>>;

/// Forwards an exec event to the run waiting for it, in order; waits when
/// that run is behind, which slows only this agent's stream.
async fn deliver_exec(
    g: &Gateway,
    peer: &PeerIdentity,
    routes: &mut ExecRoutes,
    exec_id: String,
    event: AgentExecEvent,
    last: bool,
) {
    if exec_id.len() > 128 {
        return;
    }
    if !routes.contains_key(&exec_id) {
        match g.exec_hub.route(&exec_id, &peer.agent_id).await {
            Some(tx) => {
                // Bounded: an agent cannot make this map grow without limit.
                if routes.len() >= 1024 {
                    routes.clear();
                }
                routes.insert(exec_id.clone(), tx);
            }
            None => {
                tracing::debug!(agent_id = %peer.agent_id, exec_id = %exec_id, "Exec report nobody waits for (finished or unknown); dropped.");
                return;
            }
        }
    }
    if let Some(tx) = routes.get(&exec_id)
        && tx.send(event).await.is_err()
    {
        routes.remove(&exec_id);
    }
    if last {
        routes.remove(&exec_id);
    }
}

/// What the agent is told when its bytes could not be decoded.
fn malformed(status: &Status) -> Status {
    Status::invalid_argument(format!(
        "malformed or oversized message: {}",
        status.message()
    ))
}

async fn cancel_reason(g: &Gateway, peer: &PeerIdentity) -> Status {
    if g.shutdown.is_cancelled() {
        return Status::unavailable("the control plane is shutting down; reconnect shortly");
    }
    match g.store.get_agent(&peer.agent_id).await {
        Ok(Some(a)) if a.revoked_at_ms.is_some() => {
            Status::permission_denied("this agent was revoked")
        }
        _ => Status::aborted("replaced by a newer connection of the same agent"),
    }
}

/// The session's channels, for the message handler.
struct Io<'a> {
    push_tx: &'a mpsc::Sender<Push>,
    live: &'a broadcast::Sender<LiveEvent>,
    state: &'a watch::Sender<LiveState>,
    out: &'a Out,
}

async fn handle_message(
    g: &Gateway,
    peer: &PeerIdentity,
    msg: pb::AgentMessage,
    io: &Io<'_>,
    exec_routes: &mut ExecRoutes,
) -> Result<(), Status> {
    let Io {
        push_tx,
        live,
        state,
        out,
    } = *io;
    let Some(body) = msg.body else {
        return Err(Status::invalid_argument("empty message"));
    };
    match body {
        Body::Hello(_) => {}
        Body::Heartbeat(h) => state.send_modify(|s| s.outbox_pending = h.outbox_pending),
        Body::Metrics(batch) => {
            if batch.points.len() > MAX_POINTS_PER_BATCH {
                return Err(Status::invalid_argument(format!(
                    "a metric batch holds at most {MAX_POINTS_PER_BATCH} points"
                )));
            }
            let mut points = Vec::with_capacity(batch.points.len());
            for p in batch.points {
                let p = convert::point(p, &g.names);
                match p.validate() {
                    Ok(()) => points.push(p),
                    Err(e) => {
                        tracing::warn!(agent_id = %peer.agent_id, seq = batch.seq, error = %e, "Dropping an invalid metric point.")
                    }
                }
            }
            if let Some(last) = points.iter().max_by_key(|p| p.ts_ms) {
                let last = Arc::new(last.clone());
                let (cpu, mem, disk) = crate::metrics::headline(&last.stats);
                let mut fresh = false;
                state.send_modify(|s| {
                    if s.latest.as_ref().is_none_or(|l| l.ts_ms <= last.ts_ms) {
                        Arc::make_mut(&mut s.spark).push(last.ts_ms, cpu, mem, disk);
                        s.latest = Some(last.clone());
                        fresh = true;
                    }
                });
                if fresh {
                    g.fleet.publish(FleetEvent::Summary {
                        agent: peer.agent_id.clone(),
                        ts_ms: last.ts_ms,
                        cpu,
                        mem,
                        disk,
                    });
                }
            }
            let job = IngestJob {
                agent: peer.agent_id.clone(),
                seq: batch.seq,
                points,
                ack: push_tx.clone(),
            };
            g.ingest
                .submit(job)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
        }
        Body::Live(samples) => {
            if samples.points.len() > MAX_POINTS_PER_BATCH {
                return Err(Status::invalid_argument(
                    "too many live samples in one message",
                ));
            }
            let points: Vec<_> = samples
                .points
                .into_iter()
                .map(|p| convert::point(p, &g.names))
                .filter(|p| p.validate().is_ok())
                .collect();
            if live.receiver_count() > 0 && !points.is_empty() {
                let _ = live.send(LiveEvent::Points(Arc::new(points)));
            }
        }
        Body::Processes(p) => {
            let snap = Arc::new(convert::processes(p));
            state.send_modify(|s| s.processes = Some(snap.clone()));
            if live.receiver_count() > 0 {
                let _ = live.send(LiveEvent::Processes(snap));
            }
        }
        Body::Ack(ack) => {
            if !ack.ok {
                tracing::warn!(agent_id = %peer.agent_id, id = ack.id, error = %ack.error, "The agent reported a failure.");
            }
        }
        Body::ExecOutput(o) => {
            let (exec_id, event) = convert::exec_output(o);
            deliver_exec(g, peer, exec_routes, exec_id, event, false).await;
        }
        Body::ExecResult(r) => {
            let (exec_id, event) = convert::exec_result(r);
            deliver_exec(g, peer, exec_routes, exec_id, event, true).await;
        }
        Body::Renew(req) => {
            let reply = renew(g, peer, &req.csr_der).await;
            let msg = pb::ControlMessage {
                id: msg.id,
                body: Some(pb::control_message::Body::Renewed(reply)),
            };
            out.send(ok(msg))
                .await
                .map_err(|_| Status::cancelled("agent went away"))?;
        }
    }
    Ok(())
}

async fn renew(g: &Gateway, peer: &PeerIdentity, csr_der: &[u8]) -> pb::RenewResponse {
    let refused = |error: String| pb::RenewResponse {
        certificate_der: Vec::new(),
        not_after_ms: 0,
        error,
    };
    let issued = match g.ca.sign_agent(&peer.agent_id, csr_der, g.cert_ttl) {
        Ok(c) => c,
        Err(e) => return refused(e.to_string()),
    };
    let not_after_ms = millis(issued.not_after);
    let now = crate::pki::now_ms();
    if let Err(e) = g
        .store
        .record_cert(&peer.agent_id, &issued.serial, now, not_after_ms)
        .await
    {
        tracing::error!(agent_id = %peer.agent_id, error = %e, "Could not record a renewed certificate.");
        return refused(
            "the control plane could not store the certificate; the agent will retry".into(),
        );
    }
    g.telemetry.certs_renewed.add(1);
    tracing::info!(agent_id = %peer.agent_id, serial = %issued.serial, "Renewed the agent's certificate.");
    pb::RenewResponse {
        certificate_der: issued.der,
        not_after_ms,
        error: String::new(),
    }
}
