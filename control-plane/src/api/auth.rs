//! Who is calling: a bearer API token (CLI, automation) or a browser session
//! cookie. Cookie-authenticated requests that change something must carry
//! the session's CSRF token and come from the dashboard's own origin.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{ApiError, SharedState, now_ms};
use crate::identity::{self, Session, SessionSecret};

pub const API_TOKEN_PREFIX: &str = "sova_";
pub const SESSION_COOKIE: &str = "sov_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated caller, available to handlers as an extension.
#[derive(Debug, Clone)]
pub enum Principal {
    Token { name: String },
    User(Box<Session>),
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{API_TOKEN_PREFIX}{}", hex::encode(bytes))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
}

pub fn session_cookie(headers: &HeaderMap) -> Option<SessionSecret> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == SESSION_COOKIE && !v.is_empty() && v.len() <= 128)
        .map(|(_, v)| SessionSecret::from_cookie(v))
}

/// Whether the request's `Origin` is the dashboard's own: the configured
/// public origin, or the origin the browser actually connected to.
pub fn origin_allowed(s: &SharedState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == s.public_origin {
        return true;
    }
    let scheme = if s.secure_cookies { "https" } else { "http" };
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|host| origin == format!("{scheme}://{host}"))
}

/// Resolves the caller from a bearer token or a session cookie.
pub async fn principal(s: &SharedState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(token) = bearer(headers) {
        return match s.store.api_token_name(&hash_token(token)).await? {
            Some(name) => Ok(Principal::Token { name }),
            None => Err(ApiError::Unauthorized),
        };
    }
    let secret = session_cookie(headers).ok_or(ApiError::Unauthorized)?;
    match identity::resume_session(&s.store, &secret, s.session_policy, now_ms()).await {
        Ok(Some(session)) => Ok(Principal::User(Box::new(session))),
        Ok(None) => Err(ApiError::SessionExpired),
        Err(identity::IdentityError::Store(e)) => Err(e.into()),
        Err(_) => Err(ApiError::Unauthorized),
    }
}

/// The caller of a WebSocket upgrade. Browsers send `Origin` on every
/// WebSocket handshake and the cookie rides along cross-site, so a missing
/// or foreign origin is refused before anything else (CSWSH).
pub async fn websocket_principal(
    s: &SharedState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    if !origin_allowed(s, headers) {
        return Err(ApiError::Forbidden(
            "WebSocket from a foreign origin".into(),
        ));
    }
    principal(s, headers).await
}

pub async fn require_auth(
    State(s): State<SharedState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = principal(&s, req.headers()).await?;
    if let Principal::User(session) = &principal {
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let presented = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !identity::constant_time_eq(presented, &session.csrf_token) {
                return Err(ApiError::Csrf);
            }
            if req.headers().contains_key(header::ORIGIN) && !origin_allowed(&s, req.headers()) {
                return Err(ApiError::Forbidden("request from a foreign origin".into()));
            }
        }
    }
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}
