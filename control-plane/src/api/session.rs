//! `/api/v1/auth`: sign in, sign out, and who am I (with the CSRF token the
//! dashboard must echo on every change).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::{self, Principal, SESSION_COOKIE};
use super::{ApiError, ApiJson, SharedState, now_ms};
use crate::identity::{self, IdentityError, Password, Session};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize)]
pub struct UserDto {
    id: String,
    username: String,
    role: &'static str,
}

#[derive(Serialize)]
pub struct Me {
    user: UserDto,
    csrf_token: String,
    expires_at: i64,
}

fn me(s: &Session) -> Me {
    Me {
        user: UserDto {
            id: s.user.id.to_string(),
            username: s.user.username.clone(),
            role: s.user.role.as_str(),
        },
        csrf_token: s.csrf_token.clone(),
        expires_at: s.expires_at_ms,
    }
}

fn cookie(s: &SharedState, value: &str, max_age_s: u64) -> HeaderValue {
    let secure = if s.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("sov_session=; Max-Age=0"))
}

pub async fn login(
    State(s): State<SharedState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    if headers.contains_key(header::ORIGIN) && !auth::origin_allowed(&s, &headers) {
        return Err(ApiError::Forbidden("sign-in from a foreign origin".into()));
    }
    if let Err(wait) = s.login_limiter.check(addr.ip()) {
        return Err(ApiError::RateLimited(format!(
            "too many sign-in attempts from your address: try again in {} s",
            wait.as_secs().max(1)
        )));
    }
    if body.username.len() > 256 || body.password.len() > identity::MAX_PASSWORD * 4 {
        return Err(ApiError::InvalidCredentials);
    }
    let now = now_ms();
    let password = Password::new(body.password);
    let user = match identity::sign_in(&s.store, &body.username, &password, now).await {
        Ok(u) => u,
        Err(IdentityError::Locked(wait)) => {
            return Err(ApiError::Locked(IdentityError::Locked(wait).to_string()));
        }
        Err(IdentityError::Store(e)) => return Err(e.into()),
        Err(_) => {
            tracing::info!(remote = %addr, "Sign-in failed.");
            return Err(ApiError::InvalidCredentials);
        }
    };
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (secret, session) = identity::open_session(
        &s.store,
        &user,
        s.session_policy,
        &addr.to_string(),
        ua,
        now,
    )
    .await
    .map_err(|e| match e {
        IdentityError::Store(e) => ApiError::from(e),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    tracing::info!(user = %user.username, remote = %addr, "Signed in.");
    let mut resp = Json(me(&session)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&s, secret.expose(), s.session_policy.max.as_secs()),
    );
    Ok(resp)
}

pub async fn logout(
    State(s): State<SharedState>,
    principal: axum::Extension<Principal>,
) -> Result<Response, ApiError> {
    if let Principal::User(session) = &principal.0 {
        s.store.delete_session(&session.id_hash).await?;
        tracing::info!(user = %session.user.username, "Signed out.");
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&s, "", 0));
    Ok(resp)
}

pub async fn whoami(principal: axum::Extension<Principal>) -> Result<Json<Me>, ApiError> {
    match &principal.0 {
        Principal::User(session) => Ok(Json(me(session))),
        Principal::Token { .. } => Err(ApiError::BadRequest(
            "API tokens have no session; this endpoint is for the dashboard".into(),
        )),
    }
}
