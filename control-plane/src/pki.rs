//! The control plane's own certificate authority: creates it on first start,
//! signs agent certificates from their CSRs, and identifies agents by their
//! certificates. Only this module touches private key material of the CA.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{
    CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use sha2::{Digest, Sha256};

use crate::fleet::AgentId;
use crate::fsutil;

/// The name every agent verifies the control plane's server certificate
/// against, whatever address it dials. The CA is private to this control
/// plane, so a fixed name is as strong as a public one and survives DNS and
/// IP changes.
pub const SERVER_NAME: &str = "control-plane.sovereign";

/// Largest CSR accepted, in bytes; real ones are well under 1 KiB.
pub const MAX_CSR_BYTES: usize = 8 * 1024;

const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const SERVER_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
const SERVER_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Tolerated clock skew between control plane and agents.
const BACKDATE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid {what}: {reason}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("the certificate signing request is larger than {MAX_CSR_BYTES} bytes")]
    CsrTooLarge,
    #[error("the certificate signing request is invalid: {0}")]
    BadCsr(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate this CA issued to an agent.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub der: Vec<u8>,
    pub serial: String,
    pub not_after: SystemTime,
}

/// Who a verified client certificate belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub agent_id: AgentId,
    pub serial: String,
    pub not_after_ms: i64,
}

pub struct Authority {
    ca_der: Vec<u8>,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    server_cert_der: Vec<u8>,
    /// PKCS#8.
    server_key_der: Vec<u8>,
    fingerprint: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads the CA from `dir`, creating it (and the server certificate) on
    /// first start. The server certificate is re-issued when it is close to
    /// expiry or when `server_names` changed.
    pub fn load_or_create(dir: &Path, server_names: &[String]) -> Result<Self, PkiError> {
        fsutil::create_private_dir(dir).map_err(|source| PkiError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let ca_key_path = dir.join("ca.key");
        let ca_cert_path = dir.join("ca.crt");
        let (ca_key, ca_pem) = if ca_key_path.exists() {
            let key_pem = read(&ca_key_path)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| corrupt(&ca_key_path, "key", e))?;
            (key, read(&ca_cert_path)?)
        } else {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            params.distinguished_name = name("Sovereign control plane CA");
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.serial_number = Some(random_serial());
            let now = SystemTime::now();
            params.not_before = (now - BACKDATE).into();
            params.not_after = (now + CA_LIFETIME).into();
            let cert = params.self_signed(&key)?;
            write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
            write_public(&ca_cert_path, cert.pem().as_bytes())?;
            tracing::info!(path = %dir.display(), "Created a new certificate authority.");
            (key, cert.pem())
        };
        let ca_der = pem_to_der(&ca_pem)
            .ok_or_else(|| corrupt(&ca_cert_path, "certificate", "no PEM block"))?;
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(ca_der.clone()), ca_key)
            .map_err(|e| corrupt(&ca_cert_path, "certificate", e))?;
        let fingerprint = hex::encode(Sha256::digest(&ca_der));

        let (server_cert_der, server_key_der) = load_or_issue_server(dir, &issuer, server_names)?;
        Ok(Self {
            ca_der,
            ca_pem,
            issuer,
            server_cert_der,
            server_key_der,
            fingerprint,
        })
    }

    /// SHA-256 of the CA certificate (DER), lowercase hex: what agents pin.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server certificate chain (leaf then CA) and its key.
    pub fn server_identity_der(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![
                CertificateDer::from(self.server_cert_der.clone()),
                CertificateDer::from(self.ca_der.clone()),
            ],
            PrivatePkcs8KeyDer::from(self.server_key_der.clone()).into(),
        )
    }

    /// Checks a CSR (size, structure, signature) without issuing anything.
    pub fn check_csr(csr_der: &[u8]) -> Result<(), PkiError> {
        parse_csr(csr_der).map(|_| ())
    }

    /// Signs a client certificate for `agent` over the public key in `csr_der`.
    /// Everything the CSR asks for (names, extensions) is ignored: the
    /// certificate says exactly who the control plane decided the agent is.
    pub fn sign_agent(
        &self,
        agent: &AgentId,
        csr_der: &[u8],
        lifetime: Duration,
    ) -> Result<IssuedCert, PkiError> {
        let csr = parse_csr(csr_der)?;
        let serial = random_serial();
        let serial_hex = hex::encode(serial.to_bytes());
        let now = SystemTime::now();
        let not_after = now + lifetime;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(agent.as_str());
        params.serial_number = Some(serial);
        params.not_before = (now - BACKDATE).into();
        params.not_after = not_after.into();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(IssuedCert {
            der: cert.der().to_vec(),
            serial: serial_hex,
            not_after,
        })
    }
}

fn parse_csr(csr_der: &[u8]) -> Result<CertificateSigningRequestParams, PkiError> {
    if csr_der.len() > MAX_CSR_BYTES {
        return Err(PkiError::CsrTooLarge);
    }
    CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
        .map_err(|e| PkiError::BadCsr(e.to_string()))
}

/// Reads the agent id, serial and expiry from a client certificate that
/// rustls already verified against this CA.
pub fn peer_identity(cert_der: &[u8]) -> Option<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    let agent_id = AgentId::parse(cn)?;
    Some(PeerIdentity {
        agent_id,
        serial: hex::encode(cert.raw_serial()),
        not_after_ms: cert.validity().not_after.timestamp().saturating_mul(1000),
    })
}

pub fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    millis(SystemTime::now())
}

/// The server certificate (DER) and its key (PKCS#8 DER): the stored pair
/// while it is still good for `server_names`, else a newly issued one.
fn load_or_issue_server(
    dir: &Path,
    issuer: &Issuer<'static, KeyPair>,
    server_names: &[String],
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    let mut names: Vec<String> = vec![SERVER_NAME.to_owned()];
    names.extend(server_names.iter().cloned());
    names.sort();
    names.dedup();
    if cert_path.exists() && key_path.exists() {
        let cert_pem = read(&cert_path)?;
        if let Some(der) = pem_to_der(&cert_pem)
            && still_good(&der, &names)
        {
            let key =
                KeyPair::from_pem(&read(&key_path)?).map_err(|e| corrupt(&key_path, "key", e))?;
            return Ok((der, key.serialize_der()));
        }
        tracing::info!("Re-issuing the server certificate (expiring or names changed).");
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = name("Sovereign control plane");
    params.serial_number = Some(random_serial());
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + SERVER_LIFETIME).into();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_public(&cert_path, cert.pem().as_bytes())?;
    Ok((cert.der().to_vec(), key.serialize_der()))
}

fn still_good(der: &[u8], names: &[String]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let not_after = cert.validity().not_after.timestamp();
    let renew_at = millis(SystemTime::now() + SERVER_RENEW_BEFORE) / 1000;
    if not_after < renew_at {
        return false;
    }
    let mut present: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            match general {
                x509_parser::extensions::GeneralName::DNSName(n) => present.push((*n).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        present.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    names.iter().all(|n| present.contains(n))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive, and never a leading zero byte that DER would strip.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    fsutil::write_atomic(path, data, 0o600).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_public(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    fsutil::write_atomic(path, data, 0o644).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn corrupt(path: &Path, what: &'static str, reason: impl std::fmt::Display) -> PkiError {
    PkiError::Corrupt {
        path: path.to_owned(),
        what,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr() -> (KeyPair, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["evil.example.com".into()]).unwrap();
        params.distinguished_name = name("<script>alert(1)</script>");
        let der = params.serialize_request(&key).unwrap().der().to_vec();
        (key, der)
    }

    #[test]
    fn ca_is_created_once_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::load_or_create(dir.path(), &["localhost".into()]).unwrap();
        let b = Authority::load_or_create(dir.path(), &["localhost".into()]).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
        assert_eq!(
            a.server_identity_der(),
            b.server_identity_der(),
            "a still-good server certificate and its key are loaded, not issued again"
        );
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "server.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }

    #[test]
    fn server_cert_reissued_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::load_or_create(dir.path(), &["localhost".into()]).unwrap();
        let b = Authority::load_or_create(dir.path(), &["fleet.example.com".into()]).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint(), "the CA stays");
        assert_ne!(a.server_identity_der().0, b.server_identity_der().0);
    }

    #[test]
    fn agent_cert_names_the_agent_not_what_the_csr_asked() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::load_or_create(dir.path(), &[]).unwrap();
        let (_key, der) = csr();
        let agent = AgentId::new();
        let issued = ca
            .sign_agent(&agent, &der, Duration::from_secs(3600))
            .unwrap();
        let peer = peer_identity(&issued.der).unwrap();
        assert_eq!(peer.agent_id, agent);
        assert_eq!(peer.serial, issued.serial);
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
        assert!(cert.subject_alternative_name().unwrap().is_none());
    }

    #[test]
    fn bad_csrs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::load_or_create(dir.path(), &[]).unwrap();
        let agent = AgentId::new();
        let day = Duration::from_secs(86400);
        assert!(matches!(
            ca.sign_agent(&agent, b"garbage", day),
            Err(PkiError::BadCsr(_))
        ));
        assert!(matches!(
            ca.sign_agent(&agent, &vec![0u8; MAX_CSR_BYTES + 1], day),
            Err(PkiError::CsrTooLarge)
        ));
        let (_key, mut der) = csr();
        let last = der.len() - 1;
        der[last] ^= 0xff;
        assert!(matches!(
            ca.sign_agent(&agent, &der, day),
            Err(PkiError::BadCsr(_))
        ));
    }
}
