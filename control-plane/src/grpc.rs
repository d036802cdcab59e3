//! The agent gateway: tonic services for enrollment and the long-lived agent
//! stream. Only this module (and `grpc/convert.rs`) knows proto types.

mod convert;
mod inline_wake;
mod session;
mod transport;

pub use transport::acceptor;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use sovereign_proto::v1 as pb;
use sovereign_proto::v1::agent_link_server::{AgentLink, AgentLinkServer};
use sovereign_proto::v1::enrollment_server::{Enrollment, EnrollmentServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::enroll::{self, EnrollError, RedeemError, TokenSecret};
use crate::fleet::Fleet;
use crate::metrics::Ingest;
use crate::pki::{self, Authority, PeerIdentity};
use crate::ratelimit::RateLimiter;
use crate::store::{CertCheck, Store};
use crate::telemetry::Telemetry;

/// Largest message an agent may send on its stream.
pub const MAX_AGENT_MESSAGE: usize = 4 * 1024 * 1024;
/// Largest enrollment request.
const MAX_ENROLL_MESSAGE: usize = 64 * 1024;

pub struct Gateway {
    pub store: Store,
    pub ca: Arc<Authority>,
    pub fleet: Fleet,
    pub ingest: Ingest,
    pub telemetry: Arc<Telemetry>,
    pub limiter: RateLimiter,
    pub cert_ttl: Duration,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
    pub exec_hub: crate::exec::Hub,
    pub terminals: crate::terminal::Relay,
    pub names: crate::metrics::Names,
    conn_seq: AtomicU64,
}

impl Gateway {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        ca: Arc<Authority>,
        fleet: Fleet,
        ingest: Ingest,
        telemetry: Arc<Telemetry>,
        limiter: RateLimiter,
        cert_ttl: Duration,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        exec_hub: crate::exec::Hub,
        terminals: crate::terminal::Relay,
    ) -> Self {
        Self {
            store,
            ca,
            fleet,
            ingest,
            telemetry,
            limiter,
            cert_ttl,
            tracker,
            shutdown,
            exec_hub,
            terminals,
            names: crate::metrics::Names::default(),
            conn_seq: AtomicU64::new(1),
        }
    }

    fn next_conn(&self) -> u64 {
        self.conn_seq.fetch_add(1, Ordering::Relaxed)
    }
}

/// Serves both services on `listener` until `shutdown` fires (see `transport`).
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
) {
    let shutdown = gateway.shutdown.clone();
    let routes = Routes::new(
        EnrollmentServer::new(EnrollmentSvc(gateway.clone()))
            .max_decoding_message_size(MAX_ENROLL_MESSAGE),
    )
    .add_service(
        AgentLinkServer::new(LinkSvc(gateway)).max_decoding_message_size(MAX_AGENT_MESSAGE),
    );
    transport::serve(listener, tls, routes, shutdown).await;
}

struct EnrollmentSvc(Arc<Gateway>);

#[tonic::async_trait]
impl Enrollment for EnrollmentSvc {
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let g = &self.0;
        let remote = request.remote_addr();
        if let Some(addr) = remote
            && let Err(wait) = g.limiter.check(addr.ip())
        {
            g.telemetry.enrollments_refused.add(1);
            tracing::warn!(remote = %addr, "Enrollment rate limit hit.");
            return Err(Status::resource_exhausted(format!(
                "too many enrollment attempts from {}; retry in {} s",
                addr.ip(),
                wait.as_secs().max(1)
            )));
        }
        let req = request.into_inner();
        let facts = req.facts.map(convert::facts).unwrap_or_default();
        let result = enroll::enroll(
            &g.store,
            &g.ca,
            g.cert_ttl,
            enroll::EnrollRequest {
                token: TokenSecret::from_presented(&req.token),
                csr_der: &req.csr_der,
                machine_id: req.machine_id,
                facts,
                agent_version: req.agent_version,
            },
        )
        .await;
        match result {
            Ok(done) => {
                g.telemetry.enrollments.add(1);
                g.fleet.publish(crate::fleet::FleetEvent::Status {
                    agent: done.agent_id.clone(),
                });
                tracing::info!(agent_id = %done.agent_id, project = %done.project, reenrolled = done.reenrolled, remote = ?remote, "Agent enrolled.");
                Ok(Response::new(pb::EnrollResponse {
                    agent_id: done.agent_id.to_string(),
                    project: done.project.to_string(),
                    certificate_der: done.certificate_der,
                    ca_der: g.ca.ca_der().to_vec(),
                    not_after_ms: done.not_after_ms,
                    labels: done
                        .labels
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                }))
            }
            Err(e) => {
                g.telemetry.enrollments_refused.add(1);
                tracing::warn!(error = %e, remote = ?remote, "Enrollment refused.");
                Err(enroll_status(e))
            }
        }
    }
}

fn enroll_status(e: EnrollError) -> Status {
    match e {
        EnrollError::Token(RedeemError::Unknown) => Status::unauthenticated(e.to_string()),
        EnrollError::Token(_) => Status::permission_denied(e.to_string()),
        EnrollError::WrongProject { .. } => Status::failed_precondition(e.to_string()),
        EnrollError::BadMachineId | EnrollError::Csr(_) => Status::invalid_argument(e.to_string()),
        EnrollError::Store(_) => {
            Status::unavailable("the control plane could not store the enrollment; retry shortly")
        }
    }
}

struct LinkSvc(Arc<Gateway>);

#[tonic::async_trait]
impl AgentLink for LinkSvc {
    type ConnectStream = BoxStream<'static, Result<pb::ControlMessage, Status>>;
    type TerminalStream = BoxStream<'static, Result<pb::TerminalFrame, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let g = self.0.clone();
        let (peer, acked_seq) = match authenticate(&g, &request).await {
            Ok(ok) => ok,
            Err(status) => {
                g.telemetry.sessions_refused.add(1);
                tracing::warn!(remote = ?request.remote_addr(), reason = %status.message(), "Agent stream refused.");
                return Err(status);
            }
        };
        let remote = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let inbound = request.into_inner();
        let (out, rx) = mpsc::channel::<session::OutItem>(64);
        let conn = g.next_conn();
        let tracker = g.tracker.clone();
        let span = tracing::info_span!("agent", agent_id = %peer.agent_id, conn);
        tracker
            .spawn(session::run(g, peer, acked_seq, conn, remote, inbound, out).instrument(span));
        Ok(Response::new(Box::pin(
            ReceiverStream::new(rx).map(|item| item.map(|m| *m).map_err(|e| *e)),
        )))
    }

    async fn terminal(
        &self,
        request: Request<Streaming<pb::TerminalFrame>>,
    ) -> Result<Response<Self::TerminalStream>, Status> {
        let g = self.0.clone();
        let (peer, _) = authenticate(&g, &request).await?;
        let mut inbound = request.into_inner();
        // The agent's first frame names the session and says where its output stands.
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded("the first terminal frame must arrive within 10 s")
            })??
            .ok_or_else(|| Status::invalid_argument("empty terminal stream"))?;
        let Some(pb::terminal_frame::Body::Attach(a)) = first.body else {
            return Err(Status::invalid_argument(
                "the first terminal frame must be Attach",
            ));
        };
        let session_id = first.session_id;
        if session_id.is_empty() || session_id.len() > 64 {
            return Err(Status::invalid_argument("bad terminal session id"));
        }
        let (to_agent_tx, to_agent_rx) = mpsc::channel::<crate::terminal::ToAgent>(64);
        // No forwarding tasks: the relay polls the agent's frames itself and
        // its keystrokes go straight into the response stream, so a key
        // press crosses one task hand-off here each way, not three.
        let link = crate::terminal::AgentLink {
            from_agent: frames_from_agent(inbound, g.shutdown.clone()),
            to_agent: to_agent_tx,
            attached: crate::terminal::FromAgent::Attached {
                output_offset: a.output_offset,
                replay_from: a.replay_from,
                resumed: a.resumed,
            },
        };
        if g.terminals
            .arrive(&peer.agent_id, &session_id, link)
            .await
            .is_err()
        {
            return Err(Status::not_found(
                "no viewer is waiting for this terminal session",
            ));
        }
        let to_agent = ReceiverStream::new(to_agent_rx)
            .map(move |msg| Ok(convert::to_agent(&session_id, msg)))
            .take_until(g.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(to_agent)))
    }
}

/// The agent's terminal frames in domain form; the stream ends after the
/// agent's `Closed`, on a stream error, or when the control plane stops.
fn frames_from_agent(
    inbound: Streaming<pb::TerminalFrame>,
    stop: CancellationToken,
) -> BoxStream<'static, crate::terminal::FromAgent> {
    futures::stream::unfold(Some(inbound), |state| async move {
        let mut inbound = state?;
        loop {
            let Ok(Some(frame)) = inbound.message().await else {
                return None;
            };
            if let Some(msg) = convert::from_agent(frame) {
                let closed = matches!(msg, crate::terminal::FromAgent::Closed { .. });
                return Some((msg, (!closed).then_some(inbound)));
            }
        }
    })
    .take_until(stop.cancelled_owned())
    .boxed()
}

/// Identifies the agent by its client certificate and checks it against the
/// store: unknown serials, revoked certificates and revoked agents are refused.
async fn authenticate<T>(g: &Gateway, request: &Request<T>) -> Result<(PeerIdentity, u64), Status> {
    let certs = request.peer_certs().ok_or_else(|| {
        Status::unauthenticated("a client certificate is required: enroll this agent first")
    })?;
    let leaf = certs.first().ok_or_else(|| {
        Status::unauthenticated("a client certificate is required: enroll this agent first")
    })?;
    let peer = pki::peer_identity(leaf)
        .ok_or_else(|| Status::unauthenticated("the client certificate does not name an agent"))?;
    match g.store.check_cert(&peer.agent_id, &peer.serial).await {
        Ok(CertCheck::Valid { acked_seq }) => Ok((peer, acked_seq)),
        Ok(CertCheck::AgentRevoked) => Err(Status::permission_denied(
            "this agent was revoked; re-enroll it with a new join token",
        )),
        Ok(CertCheck::CertRevoked) => Err(Status::permission_denied(
            "this certificate was replaced or revoked; re-enroll the agent",
        )),
        Ok(CertCheck::Unknown) => Err(Status::unauthenticated(
            "unknown certificate: re-enroll the agent",
        )),
        Err(e) => {
            tracing::error!(error = %e, "Could not check an agent certificate.");
            Err(Status::unavailable(
                "the control plane cannot reach its database; retry shortly",
            ))
        }
    }
}
