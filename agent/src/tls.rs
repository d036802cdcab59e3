//! TLS for the agent's one outbound connection: a verifier that pins the
//! control plane's CA by its SHA-256 (first contact), the normal verifier
//! against the stored CA with the agent's client certificate, and the
//! connector that runs tonic over either.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

/// The name in the control plane's server certificate that agents verify,
/// whatever address they dial.
pub const SERVER_NAME: &str = "control-plane.sovereign";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid server URL {0:?}: expected https://HOST:PORT")]
    BadUrl(String),
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Accepts the server only if its chain contains a CA certificate whose
/// SHA-256 is `want`, and the leaf verifies against that CA for `SERVER_NAME`.
#[derive(Debug)]
pub struct PinnedCa {
    want: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedCa {
    pub fn new(want: [u8; 32]) -> Self {
        Self {
            want,
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| Sha256::digest(c.as_ref())[..] == self.want[..])
        else {
            let seen: Vec<String> = intermediates
                .iter()
                .map(|c| hex::encode(Sha256::digest(c.as_ref())))
                .collect();
            return Err(rustls::Error::General(format!(
                "the server's CA does not match --ca-sha256 {} (it presented {}): check the hash, or you may be talking to the wrong server",
                hex::encode(self.want),
                if seen.is_empty() {
                    "no CA certificate".to_owned()
                } else {
                    seen.join(", ")
                }
            )));
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("the pinned CA is unusable: {e}")))?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Config for enrollment: no client certificate, CA pinned by hash.
pub fn pinned_config(want: [u8; 32]) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa::new(want)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Config for the agent stream: the stored CA as the only root, and the
/// agent's client certificate.
pub fn mutual_config(
    ca_der: &[u8],
    cert_der: &[u8],
    key_der: Vec<u8>,
) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| TlsError::Setup(format!("stored CA certificate is unusable: {e}")))?;
    let key = PrivateKeyDer::try_from(key_der)
        .map_err(|e| TlsError::Setup(format!("stored key is unusable: {e}")))?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![CertificateDer::from(cert_der.to_vec())], key)
        .map_err(|e| TlsError::Setup(format!("client certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Splits `https://host:port` into what to dial.
pub fn host_port(url: &str) -> Result<(String, u16), TlsError> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| TlsError::BadUrl(url.to_owned()))?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            p.parse::<u16>()
                .map_err(|_| TlsError::BadUrl(url.to_owned()))?,
        ),
        _ => (authority.to_owned(), 443),
    };
    if host.is_empty() {
        return Err(TlsError::BadUrl(url.to_owned()));
    }
    Ok((host, port))
}

/// A gRPC channel to `url` over TLS with `config`. Connecting is lazy: the
/// first RPC dials, and errors surface there.
pub fn channel(url: &str, config: ClientConfig) -> Result<Channel, TlsError> {
    let (host, port) = host_port(url)?;
    let connector = TlsConnector::from(Arc::new(config));
    let endpoint = Endpoint::from_static("http://control-plane.sovereign")
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_uri| {
            let connector = connector.clone();
            let host = host.clone();
            async move {
                let tcp = tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio::net::TcpStream::connect((host.as_str(), port)),
                )
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connecting to {host}:{port} timed out"),
                    )
                })??;
                let _ = tcp.set_nodelay(true);
                let name = ServerName::try_from(SERVER_NAME)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let tls =
                    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
                        .await
                        .map_err(|_| {
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "TLS handshake timed out",
                            )
                        })??;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        })),
    )
}

/// Parses a `--ca-sha256` value (64 hex digits, `:` separators allowed).
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let clean: String = s
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let bytes = hex::decode(&clean).map_err(|_| "the CA hash must be 64 hex digits".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| "the CA hash must be 64 hex digits (SHA-256)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_fingerprints() {
        assert_eq!(
            host_port("https://cp.example.com:7443").unwrap(),
            ("cp.example.com".into(), 7443)
        );
        assert_eq!(
            host_port("https://127.0.0.1:9/").unwrap(),
            ("127.0.0.1".into(), 9)
        );
        assert_eq!(
            host_port("https://[::1]:7443").unwrap(),
            ("::1".into(), 7443)
        );
        assert_eq!(host_port("https://cp").unwrap(), ("cp".into(), 443));
        assert!(host_port("http://cp:1").is_err());
        assert!(host_port("https://:1").is_err());
        let hex64 = "ab".repeat(32);
        assert_eq!(parse_fingerprint(&hex64).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }
}
