//! The agent gateway's listener: TCP, mutual TLS and HTTP/2, serving the
//! tonic services.
//!
//! tonic's own `Server` does the same with tokio's plain executor; this one
//! hands hyper the [`InlineWakeExecutor`], so the task that streams each
//! response (a terminal's keystrokes, the control messages) does not wake a
//! second worker thread on every chunk it sends (see `inline_wake`).
//! Everything else is what the tonic server did here: TLS 1.2/1.3 with an
//! optional client certificate that must chain to our CA (enrollment comes
//! before the certificate; every other RPC checks for one), ALPN `h2`, a 10 s
//! handshake limit, TCP_NODELAY, HTTP/2 keepalive pings, 64 streams per
//! connection, and on shutdown: stop accepting, then GOAWAY every connection
//! and wait for their streams to finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::Routes;
use tonic::transport::server::Connected;
use tower::ServiceExt;

use super::inline_wake::{InlineWakeExecutor, PollAgain};
use crate::pki::Authority;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_STREAMS_PER_CONNECTION: u32 = 64;

/// The gateway's TLS: our server certificate, and client certificates
/// verified against our CA when presented.
pub fn acceptor(ca: &Authority) -> Result<TlsAcceptor, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.ca_der().to_vec()))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let (chain, key) = ca.server_identity_der();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts agent connections on `listener` and serves `routes` on each until
/// `stop` fires; then stops accepting, asks every connection to finish
/// (HTTP/2 GOAWAY) and returns when they have.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    routes: Routes,
    stop: CancellationToken,
) {
    let routes = routes.prepare();
    let mut http = hyper::server::conn::http2::Builder::new(InlineWakeExecutor);
    http.timer(TokioTimer::new())
        .keep_alive_interval(Some(KEEPALIVE_INTERVAL))
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    let connections = TaskTracker::new();
    loop {
        let (tcp, remote) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, mostly: back off instead of spinning.
                    tracing::warn!(error = %e, "Could not accept an agent connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        connections.spawn(PollAgain::new(connection(
            tcp,
            remote,
            tls.clone(),
            http.clone(),
            routes.clone(),
            stop.clone(),
        )));
    }
    // Closes the listening socket now: no new connections while the rest drain.
    drop(listener);
    connections.close();
    connections.wait().await;
}

async fn connection(
    tcp: TcpStream,
    remote: SocketAddr,
    tls: TlsAcceptor,
    http: hyper::server::conn::http2::Builder<InlineWakeExecutor>,
    routes: Routes,
    stop: CancellationToken,
) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%remote, error = %e, "Could not set TCP_NODELAY.");
    }
    let stream = tokio::select! {
        () = stop.cancelled() => return,
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)) => match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "Agent TLS handshake failed.");
                return;
            }
            Err(_) => {
                tracing::debug!(%remote, "Agent TLS handshake timed out.");
                return;
            }
        },
    };
    // What tonic's `Request::remote_addr()` and `peer_certs()` read.
    let info = stream.connect_info();
    let service = routes.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(info.clone());
        req
    });
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    let finished = tokio::select! {
        finished = conn.as_mut() => finished,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = finished {
        tracing::debug!(%remote, error = %e, "Agent connection ended with an error.");
    }
}
