//! `/api/v1/audit`: the append-only audit log, newest first, and a check of its hash chain.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, SharedState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<i64>,
    before: Option<i64>,
}

pub async fn list(
    State(s): State<SharedState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = s
        .store
        .audit_page(limit, q.before.unwrap_or(i64::MAX))
        .await?;
    let next_before = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let items: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id, "at": e.at_ms, "actor": e.actor, "action": e.action, "target": e.target,
                "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null), "hash": e.hash,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items, "next_before": next_before })))
}

pub async fn verify(State(s): State<SharedState>) -> Result<Json<Value>, ApiError> {
    let broken = crate::audit::verify(&s.store).await?;
    Ok(Json(
        json!({ "intact": broken.is_none(), "first_bad_id": broken }),
    ))
}
