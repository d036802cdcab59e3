//! The HTTP API under `/api/v1`, plus `/healthz`, `/readyz` and `/metrics`.
//! Only this module knows JSON; handlers convert domain types to DTOs here.

mod agents;
mod audit;
mod auth;
mod error;
mod exec;
pub mod openapi;
mod prometheus;
mod session;
mod terminal;
mod tokens;
mod ws;

pub use auth::{Principal, generate_token as auth_token, hash_token as hash_api_token};
pub use error::ApiError;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::fleet::Fleet;
use crate::identity::SessionPolicy;
use crate::pki::Authority;
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use crate::telemetry::Telemetry;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

pub struct AppState {
    pub store: Store,
    pub fleet: Fleet,
    pub ca: Arc<Authority>,
    pub telemetry: Arc<Telemetry>,
    /// The `https://host:port` agents dial (for printed commands).
    pub public_url: String,
    pub points_retention: Duration,
    pub session_policy: SessionPolicy,
    pub login_limiter: RateLimiter,
    /// `scheme://host[:port]` of the dashboard, for Origin checks.
    pub public_origin: String,
    pub secure_cookies: bool,
    pub executor: crate::exec::Executor,
    pub terminals: crate::terminal::Relay,
    pub exec_max_output: u64,
    pub exec_default_timeout: Duration,
    pub terminal_max_recording: u64,
}

pub type SharedState = Arc<AppState>;

pub fn router(state: SharedState) -> Router {
    let api = Router::new()
        .route("/agents", get(agents::list))
        .route("/agents/{id}", get(agents::get))
        .route("/agents/{id}/revoke", post(agents::revoke))
        .route(
            "/agents/{id}/labels",
            axum::routing::put(agents::set_labels),
        )
        .route("/agents/{id}/metrics", get(agents::metrics))
        .route("/agents/{id}/live", get(agents::live))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route(
            "/projects",
            get(tokens::list_projects).post(tokens::create_project),
        )
        .route("/ca", get(tokens::ca))
        .route("/prometheus", get(prometheus::export))
        .route("/exec", get(exec::list).post(exec::start))
        .route("/exec/{id}", get(exec::get))
        .route("/exec/{id}/events", get(exec::events))
        .route("/exec/{id}/cancel", post(exec::cancel))
        .route("/agents/{id}/terminal/ticket", post(terminal::ticket))
        .route("/agents/{id}/terminals", get(terminal::sessions))
        .route("/agents/{id}/recordings", get(terminal::recordings))
        .route("/recordings/{id}", get(terminal::recording))
        .route("/audit", get(audit::list))
        .route("/audit/verify", get(audit::verify))
        .route("/auth/logout", post(session::logout))
        .route("/auth/me", get(session::whoami))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        .route("/auth/login", post(session::login))
        .route("/ws", get(ws::upgrade))
        .route("/agents/{id}/terminal", get(terminal::socket))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::NotFound("route") });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .fallback(crate::dashboard::serve)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(
            crate::dashboard::security_headers,
        ))
        .with_state(state)
}

async fn readyz(State(s): State<SharedState>) -> Response {
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "Readiness check failed.");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn prometheus(State(s): State<SharedState>) -> Response {
    let online = s.fleet.online().await.len();
    let known = s
        .store
        .agent_counts()
        .await
        .map(|(total, _)| usize::try_from(total).unwrap_or(0))
        .unwrap_or(0);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.telemetry.render(online, known),
    )
        .into_response()
}

/// JSON body extractor whose rejections become `ApiError`s (clean JSON, the
/// right status, never a stack trace).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Err(ApiError::TooLarge)
                } else {
                    Err(ApiError::BadRequest(rejection.body_text()))
                }
            }
        }
    }
}

/// `scheme://host[:port]` of a URL (what browsers send as `Origin`).
pub fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or("")),
        None => url.to_owned(),
    }
}

pub use crate::pki::now_ms;

#[cfg(test)]
mod tests;
