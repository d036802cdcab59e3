//! First contact: make a key pair and CSR here (the private key never leaves
//! the machine), pin the control plane's CA by hash, redeem the join token,
//! and save the certificate.

use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};
use sha2::{Digest, Sha256};
use sovereign_proto::v1 as pb;
use sovereign_proto::v1::enrollment_client::EnrollmentClient;

use crate::state::{Credentials, Identity, StateDir, StateError};
use crate::tls;

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot make a key pair: {0}")]
    Key(String),
    #[error("enrollment failed: {0}")]
    Refused(String),
    #[error("cannot connect to the control plane: {0}")]
    Unreachable(String),
    #[error("the control plane answered with an unexpected CA certificate; refusing it")]
    CaMismatch,
    #[error(transparent)]
    State(#[from] StateError),
}

/// A fresh key pair and a CSR for it. The CSR's subject is a placeholder:
/// the control plane names the certificate itself.
pub fn key_and_csr() -> Result<(KeyPair, Vec<u8>), EnrollError> {
    let key = KeyPair::generate().map_err(|e| EnrollError::Key(e.to_string()))?;
    let params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| EnrollError::Key(e.to_string()))?;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| EnrollError::Key(e.to_string()))?;
    Ok((key, csr.der().to_vec()))
}

pub struct EnrollParams<'a> {
    pub server: &'a str,
    pub token: &'a str,
    pub ca_sha256: [u8; 32],
    pub machine_id: String,
    pub facts: pb::HostFacts,
    /// A hostname override to keep for later runs.
    pub hostname: Option<String>,
}

pub async fn enroll(state: &StateDir, p: EnrollParams<'_>) -> Result<Identity, EnrollError> {
    let (key, csr_der) = key_and_csr()?;
    let channel = tls::channel(p.server, tls::pinned_config(p.ca_sha256)?)?;
    let mut client = EnrollmentClient::new(channel);
    let request = pb::EnrollRequest {
        token: p.token.trim().to_owned(),
        csr_der,
        machine_id: p.machine_id,
        facts: Some(p.facts),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let mut req = tonic::Request::new(request);
    req.set_timeout(Duration::from_secs(30));
    let resp = client
        .enroll(req)
        .await
        .map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::DeadlineExceeded => {
                EnrollError::Unreachable(describe(&status))
            }
            _ => EnrollError::Refused(status.message().to_owned()),
        })?;
    let resp = resp.into_inner();
    if Sha256::digest(&resp.ca_der)[..] != p.ca_sha256[..] {
        return Err(EnrollError::CaMismatch);
    }
    let identity = Identity {
        agent_id: resp.agent_id,
        project: resp.project,
        server: p.server.to_owned(),
        cert_received_ms: now_ms(),
        cert_not_after_ms: resp.not_after_ms,
        hostname: p.hostname,
    };
    state.save(&Credentials {
        identity: identity.clone(),
        ca_der: resp.ca_der,
        cert_der: resp.certificate_der,
        key_der: key.serialize_der(),
    })?;
    Ok(identity)
}

/// A transport error's whole chain, which is where TLS failures (such as a
/// CA hash mismatch) are explained.
pub fn describe(status: &tonic::Status) -> String {
    let mut msg = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let s = e.to_string();
        if !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
        source = e.source();
    }
    msg
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
