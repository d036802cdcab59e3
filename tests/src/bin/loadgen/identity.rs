//! Simulated agents' credentials: enrollment (a real key pair and CSR per
//! agent, redeemed with the shared multi-use join token over a pinned-CA TLS
//! connection of its own) and the optional state file that lets a rerun
//! skip it.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use sovereign_agent::enroll::{describe, key_and_csr, now_ms};
use sovereign_agent::{link, tls};
use sovereign_proto::v1 as pb;
use sovereign_proto::v1::enrollment_client::EnrollmentClient;
use tokio_util::sync::CancellationToken;

use crate::stats::{ErrorKind, Stats};
use crate::synth;

const ENROLL_ATTEMPTS: u32 = 10;
const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest state file read back (10k agents take about 12 MB).
const MAX_STATE_FILE: u64 = 512 * 1024 * 1024;
/// A certificate with less life left than this is enrolled again.
const MIN_CERT_LIFE_MS: i64 = 2 * 3600 * 1000;

/// What one simulated agent needs to open its mutual-TLS stream.
#[derive(Clone)]
pub struct AgentCreds {
    pub index: usize,
    pub agent_id: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub not_after_ms: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateFile {
    version: u32,
    server: String,
    ca_sha256: String,
    prefix: String,
    ca_der: String,
    agents: Vec<SavedAgent>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedAgent {
    index: usize,
    agent_id: String,
    cert_der: String,
    key_der: String,
    not_after_ms: i64,
}

/// Credentials found in a state file for this server, CA and prefix.
pub struct Loaded {
    pub ca_der: Option<Vec<u8>>,
    pub agents: HashMap<usize, AgentCreds>,
}

/// Reads `path` if it exists and was written for the same CA and prefix;
/// anything unusable is ignored with a note on stderr.
pub fn load(path: &Path, pin: &[u8; 32], prefix: &str) -> Loaded {
    let empty = Loaded {
        ca_der: None,
        agents: HashMap::new(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return empty,
        Err(e) => {
            eprintln!("loadgen: ignoring state file {}: {e}", path.display());
            return empty;
        }
    };
    if meta.len() > MAX_STATE_FILE {
        eprintln!(
            "loadgen: ignoring state file {}: larger than {MAX_STATE_FILE} bytes",
            path.display()
        );
        return empty;
    }
    let parsed: StateFile = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: ignoring state file {}: {e}", path.display());
            return empty;
        }
    };
    if parsed.version != 1 || parsed.ca_sha256 != hex::encode(pin) || parsed.prefix != prefix {
        eprintln!(
            "loadgen: ignoring state file {}: written for another control plane CA or prefix (CA {}, prefix {:?})",
            path.display(),
            parsed.ca_sha256,
            parsed.prefix
        );
        return empty;
    }
    let ca_der = match B64.decode(&parsed.ca_der) {
        Ok(c) if Sha256::digest(&c)[..] == pin[..] => c,
        _ => {
            eprintln!(
                "loadgen: ignoring state file {}: its CA certificate does not match --ca-sha256",
                path.display()
            );
            return empty;
        }
    };
    let now = now_ms();
    let mut agents = HashMap::new();
    for a in parsed.agents {
        if a.not_after_ms < now + MIN_CERT_LIFE_MS {
            continue;
        }
        if let (Ok(cert_der), Ok(key_der)) = (B64.decode(&a.cert_der), B64.decode(&a.key_der)) {
            agents.insert(
                a.index,
                AgentCreds {
                    index: a.index,
                    agent_id: a.agent_id,
                    cert_der,
                    key_der,
                    not_after_ms: a.not_after_ms,
                },
            );
        }
    }
    Loaded {
        ca_der: Some(ca_der),
        agents,
    }
}

/// Writes every agent's credentials (private keys included: mode 0600),
/// atomically.
pub fn save(
    path: &Path,
    server: &str,
    pin: &[u8; 32],
    prefix: &str,
    ca_der: &[u8],
    agents: &[AgentCreds],
) -> anyhow::Result<()> {
    let file = StateFile {
        version: 1,
        server: server.to_owned(),
        ca_sha256: hex::encode(pin),
        prefix: prefix.to_owned(),
        ca_der: B64.encode(ca_der),
        agents: agents
            .iter()
            .map(|a| SavedAgent {
                index: a.index,
                agent_id: a.agent_id.clone(),
                cert_der: B64.encode(&a.cert_der),
                key_der: B64.encode(&a.key_der),
                not_after_ms: a.not_after_ms,
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&file)?;
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub struct EnrollPlan {
    pub server: String,
    pub token: String,
    pub pin: [u8; 32],
    pub prefix: String,
    pub agents: usize,
    pub concurrency: usize,
}

/// Result of the enrollment phase.
pub struct Enrolled {
    pub ca_der: Option<Vec<u8>>,
    /// Index `i` holds agent `i`'s credentials, if it has any.
    pub agents: Vec<Option<AgentCreds>>,
}

/// Enrolls every agent in `0..plan.agents` not already in `have`, with at
/// most `plan.concurrency` enrollments in flight. Stops early on `stop`, or
/// for good when the control plane refuses the token itself.
pub async fn enroll_missing(
    plan: Arc<EnrollPlan>,
    have: Loaded,
    stats: Arc<Stats>,
    stop: &CancellationToken,
) -> Enrolled {
    let mut slots: Vec<Option<AgentCreds>> = vec![None; plan.agents];
    for (i, c) in have.agents {
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(c);
            stats.reused.fetch_add(1, Relaxed);
            stats.enrolled.fetch_add(1, Relaxed);
        }
    }
    let missing: Vec<usize> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| i)
        .collect();
    let ca_der = Arc::new(Mutex::new(have.ca_der));
    if missing.is_empty() {
        let ca = ca_der.lock().ok().and_then(|mut c| c.take());
        return Enrolled {
            ca_der: ca,
            agents: slots,
        };
    }
    if plan.token.trim().is_empty() {
        eprintln!(
            "loadgen: {} agent(s) need enrolling but no --token was given",
            missing.len()
        );
        let ca = ca_der.lock().ok().and_then(|mut c| c.take());
        return Enrolled {
            ca_der: ca,
            agents: slots,
        };
    }
    let results = Arc::new(Mutex::new(slots));
    let missing = Arc::new(missing);
    let next = Arc::new(AtomicUsize::new(0));
    // Cancelled by `stop` or by a refusal that every other attempt would also get.
    let halt = stop.child_token();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency.min(missing.len()).max(1) {
        let (plan, stats, results, missing, next, halt, ca_der) = (
            plan.clone(),
            stats.clone(),
            results.clone(),
            missing.clone(),
            next.clone(),
            halt.clone(),
            ca_der.clone(),
        );
        workers.spawn(async move {
            loop {
                let k = next.fetch_add(1, Relaxed);
                let Some(&index) = missing.get(k) else { break };
                if halt.is_cancelled() {
                    break;
                }
                match enroll_one(&plan, index, &stats, &halt).await {
                    Ok((creds, ca)) => {
                        if let Ok(mut c) = ca_der.lock()
                            && c.is_none()
                        {
                            *c = Some(ca);
                        }
                        if let Ok(mut r) = results.lock()
                            && let Some(slot) = r.get_mut(index)
                        {
                            *slot = Some(creds);
                        }
                        stats.enrolled.fetch_add(1, Relaxed);
                        stats.enrolled_now.fetch_add(1, Relaxed);
                    }
                    Err(Stop::Halted) => break,
                    Err(Stop::Fatal) => {
                        halt.cancel();
                        break;
                    }
                    Err(Stop::GaveUp) => {}
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let agents = results
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    let ca = ca_der.lock().ok().and_then(|mut c| c.take());
    Enrolled { ca_der: ca, agents }
}

enum Stop {
    /// Shutdown asked.
    Halted,
    /// Every attempt would fail the same way (token refused): stop enrolling.
    Fatal,
    /// This agent failed every retry; others may still succeed.
    GaveUp,
}

enum Failure {
    Retry(ErrorKind, String),
    Fatal(ErrorKind, String),
}

async fn enroll_one(
    plan: &EnrollPlan,
    index: usize,
    stats: &Stats,
    halt: &CancellationToken,
) -> Result<(AgentCreds, Vec<u8>), Stop> {
    for attempt in 0..ENROLL_ATTEMPTS {
        let outcome = tokio::select! {
            r = attempt_enroll(plan, index) => r,
            () = halt.cancelled() => return Err(Stop::Halted),
        };
        match outcome {
            Ok(ok) => return Ok(ok),
            Err(Failure::Fatal(kind, msg)) => {
                stats.error(kind, || msg.clone());
                if kind == ErrorKind::EnrollRefused || kind == ErrorKind::EnrollBadCa {
                    eprintln!(
                        "loadgen: enrollment refused for {}: {msg}; stopping enrollment",
                        synth::machine_id(&plan.prefix, index)
                    );
                    return Err(Stop::Fatal);
                }
                break;
            }
            Err(Failure::Retry(kind, msg)) => {
                stats.error(kind, || msg);
                let delay =
                    link::backoff(Duration::from_millis(500), Duration::from_secs(30), attempt);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = halt.cancelled() => return Err(Stop::Halted),
                }
            }
        }
    }
    stats.error(ErrorKind::EnrollGaveUp, || {
        format!(
            "{} has no certificate after {ENROLL_ATTEMPTS} attempts",
            synth::machine_id(&plan.prefix, index)
        )
    });
    Err(Stop::GaveUp)
}

async fn attempt_enroll(plan: &EnrollPlan, index: usize) -> Result<(AgentCreds, Vec<u8>), Failure> {
    let (key, csr_der) =
        key_and_csr().map_err(|e| Failure::Fatal(ErrorKind::Key, e.to_string()))?;
    let config = tls::pinned_config(plan.pin)
        .map_err(|e| Failure::Fatal(ErrorKind::TlsSetup, e.to_string()))?;
    let channel = tls::channel(&plan.server, config)
        .map_err(|e| Failure::Fatal(ErrorKind::TlsSetup, e.to_string()))?;
    let mut client = EnrollmentClient::new(channel);
    let mut request = tonic::Request::new(pb::EnrollRequest {
        token: plan.token.trim().to_owned(),
        csr_der,
        machine_id: synth::machine_id(&plan.prefix, index),
        facts: Some(synth::facts(&plan.prefix, index, now_ms() - 86_400_000)),
        agent_version: concat!(env!("CARGO_PKG_VERSION"), "-loadgen").to_owned(),
    });
    request.set_timeout(ENROLL_TIMEOUT);
    let resp = client.enroll(request).await.map_err(|status| {
        let msg = describe(&status);
        match status.code() {
            tonic::Code::ResourceExhausted => Failure::Retry(ErrorKind::EnrollRateLimited, msg),
            _ if msg.contains("does not match --ca-sha256") => {
                Failure::Fatal(ErrorKind::EnrollBadCa, msg)
            }
            tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Internal => Failure::Retry(ErrorKind::EnrollUnreachable, msg),
            _ => Failure::Fatal(ErrorKind::EnrollRefused, msg),
        }
    })?;
    let resp = resp.into_inner();
    if Sha256::digest(&resp.ca_der)[..] != plan.pin[..] {
        return Err(Failure::Fatal(
            ErrorKind::EnrollBadCa,
            "the control plane answered with a CA certificate that does not match --ca-sha256"
                .into(),
        ));
    }
    let creds = AgentCreds {
        index,
        agent_id: resp.agent_id,
        cert_der: resp.certificate_der,
        key_der: key.serialize_der(),
        not_after_ms: resp.not_after_ms,
    };
    Ok((creds, resp.ca_der))
}
