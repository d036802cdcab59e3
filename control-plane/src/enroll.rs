//! Enrollment: join tokens (creation, hashing, atomic redemption) and the
//! exchange of a token plus a CSR for a client certificate.
//!
//! A machine's identity is its `machine_id` (e.g. `/etc/machine-id`): the
//! first enrollment creates an agent; enrolling the same machine again keeps
//! that agent id, re-issues its certificate and revokes the older ones.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::fleet::{AgentId, HostFacts};
use crate::labels::Labels;
use crate::pki::{Authority, PkiError};
use crate::projects::ProjectId;
use crate::store::{Store, StoreError};

const TOKEN_PREFIX: &str = "sovj_";
const MAX_MACHINE_ID: usize = 128;
pub const MAX_TOKEN_USES: u32 = 100_000;
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

uuid_id!(
    /// A join token's id (not its secret).
    TokenId
);

/// A join token's secret. Shown once at creation; only its hash is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
    }

    pub fn from_presented(s: &str) -> Self {
        Self(s.trim().to_owned())
    }

    /// SHA-256 of the secret: the token has 256 bits of entropy, so a fast
    /// hash is enough and lookups stay O(1).
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone)]
pub struct JoinToken {
    pub id: TokenId,
    pub project: ProjectId,
    pub labels: Labels,
    pub description: String,
    pub uses_total: u32,
    pub uses_left: u32,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl JoinToken {
    pub fn state(&self, now_ms: i64) -> &'static str {
        if self.revoked_at_ms.is_some() {
            "revoked"
        } else if self.expires_at_ms <= now_ms {
            "expired"
        } else if self.uses_left == 0 {
            "used"
        } else {
            "active"
        }
    }
}

/// What an admin asks for when creating a token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub project: ProjectId,
    pub ttl: Duration,
    pub uses: u32,
    pub labels: Labels,
    pub description: String,
}

/// Why a redemption failed. Each says what to do next.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RedeemError {
    #[error("unknown join token: check that it was copied whole, or create a new one")]
    Unknown,
    #[error("this join token expired: create a new one with `sovereign token create`")]
    Expired,
    #[error("this join token has no uses left: create a new one with `sovereign token create`")]
    UsedUp,
    #[error("this join token was revoked: create a new one with `sovereign token create`")]
    Revoked,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Token(#[from] RedeemError),
    #[error(
        "this machine is already enrolled in project {enrolled:?}, but the token is for project {token:?}: use a token for {enrolled:?}, or revoke the agent there first"
    )]
    WrongProject { enrolled: String, token: String },
    #[error("machine id is empty or longer than {MAX_MACHINE_ID} characters")]
    BadMachineId,
    #[error(transparent)]
    Csr(#[from] PkiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NewToken {
    pub fn validate(&self) -> Result<(), String> {
        if self.uses == 0 || self.uses > MAX_TOKEN_USES {
            return Err(format!("uses must be between 1 and {MAX_TOKEN_USES}"));
        }
        if self.ttl < Duration::from_secs(1) || self.ttl > MAX_TOKEN_TTL {
            return Err("ttl must be between 1 second and 365 days".into());
        }
        if self.description.chars().count() > 200 {
            return Err("description must be at most 200 characters".into());
        }
        Ok(())
    }
}

/// What a successful enrollment hands back to the agent.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub agent_id: AgentId,
    pub project: ProjectId,
    pub labels: Labels,
    pub certificate_der: Vec<u8>,
    pub not_after_ms: i64,
    pub reenrolled: bool,
}

pub struct EnrollRequest<'a> {
    pub token: TokenSecret,
    pub csr_der: &'a [u8],
    pub machine_id: String,
    pub facts: HostFacts,
    pub agent_version: String,
}

/// Redeems the token and issues the certificate in one transaction: a failure
/// at any step leaves the token's uses and the agent rows as they were.
pub async fn enroll(
    store: &Store,
    ca: &Authority,
    cert_lifetime: Duration,
    req: EnrollRequest<'_>,
) -> Result<Enrolled, EnrollError> {
    let machine_id: String = req.machine_id.trim().to_owned();
    if machine_id.is_empty()
        || machine_id.chars().count() > MAX_MACHINE_ID
        || machine_id.chars().any(char::is_control)
    {
        return Err(EnrollError::BadMachineId);
    }
    // Parse the CSR before touching the token, so bad input costs no use.
    Authority::check_csr(req.csr_der)?;

    let facts = req.facts.sanitized();
    let version: String = req
        .agent_version
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    store
        .enroll(
            &req.token.hash(),
            &machine_id,
            &facts,
            &version,
            |agent_id| ca.sign_agent(agent_id, req.csr_der, cert_lifetime),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = TokenSecret::generate();
        assert!(s.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.hash().len(), 64);
        assert_eq!(
            TokenSecret::from_presented(&format!(" {} \n", s.expose())).hash(),
            s.hash()
        );
    }

    #[test]
    fn token_limits() {
        let base = NewToken {
            project: ProjectId::default_project(),
            ttl: Duration::from_secs(3600),
            uses: 1,
            labels: Labels::new(),
            description: String::new(),
        };
        assert!(base.validate().is_ok());
        assert!(
            NewToken {
                uses: 0,
                ..base.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            NewToken {
                ttl: Duration::from_millis(500),
                ..base.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            NewToken {
                description: "x".repeat(201),
                ..base
            }
            .validate()
            .is_err()
        );
    }
}
