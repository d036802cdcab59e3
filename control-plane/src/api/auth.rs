//! API authentication: bearer tokens, stored hashed. The bootstrap admin
//! token is created on first start; people and sessions come later.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{ApiError, SharedState};

pub const API_TOKEN_PREFIX: &str = "sova_";

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{API_TOKEN_PREFIX}{}", hex::encode(bytes))
}

pub async fn require_token(
    State(s): State<SharedState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or(ApiError::Unauthorized)?;
    match s.store.api_token_name(&hash_token(presented)).await? {
        Some(_) => Ok(next.run(req).await),
        None => Err(ApiError::Unauthorized),
    }
}
