//! The audit log: who did what to which thing, append-only and hash-chained
//! (each entry's hash covers the previous entry's hash), so a deleted or
//! edited row breaks the chain and `verify` finds it.

use std::fmt::Write;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// One entry as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// JSON text, exactly as hashed.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of an entry given its predecessor's hash.
pub fn chain_hash(
    prev_hash: &str,
    id: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        &id.to_string(),
        &at_ms.to_string(),
        actor,
        action,
        target,
        detail,
    ] {
        // Length-prefixed, so field boundaries cannot be shifted.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let mut out = String::with_capacity(64);
    for b in h.finalize() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Records an action. Failures are logged, never fatal to the action
/// itself — but they are loud, because a gap in the audit log matters.
pub async fn record(store: &Store, actor: &str, action: &str, target: &str, detail: Value) {
    let now = crate::pki::now_ms();
    if let Err(e) = store
        .append_audit(now, actor, action, target, &detail.to_string())
        .await
    {
        tracing::error!(error = %e, action, target, "Could not write the audit log.");
    }
}

/// Checks the whole chain, oldest first: ids without gaps, each entry's
/// `prev_hash` equal to its predecessor's hash, each hash recomputable.
/// Returns the id of the first entry that does not fit, if any.
pub async fn verify(store: &Store) -> Result<Option<i64>, StoreError> {
    let mut last: Option<Entry> = None;
    loop {
        let after = last.as_ref().map_or(0, |e| e.id);
        let page = store.audit_after(after, 500).await?;
        if page.is_empty() {
            return Ok(None);
        }
        for e in page {
            let (want_prev, want_id) = last
                .as_ref()
                .map_or((String::new(), 1), |l| (l.hash.clone(), l.id + 1));
            let expect = chain_hash(
                &e.prev_hash,
                e.id,
                e.at_ms,
                &e.actor,
                &e.action,
                &e.target,
                &e.detail,
            );
            if e.id != want_id || e.prev_hash != want_prev || e.hash != expect {
                return Ok(Some(e.id));
            }
            last = Some(e);
        }
    }
}
