//! `/api/v1/tokens`, `/api/v1/projects` and `/api/v1/ca`: what an admin needs
//! to enroll machines.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, SharedState, now_ms};
use crate::enroll::{JoinToken, NewToken, TokenId, TokenSecret};
use crate::labels::Labels;
use crate::projects::ProjectId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[serde(default)]
    project: Option<String>,
    /// `1h`, `30m`, `7d`...; default 1h.
    #[serde(default)]
    ttl: Option<String>,
    /// Default 1.
    #[serde(default)]
    uses: Option<u32>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Serialize)]
pub struct TokenDto {
    id: String,
    project: String,
    state: &'static str,
    labels: BTreeMap<String, String>,
    description: String,
    uses_total: u32,
    uses_left: u32,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

#[derive(Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    token: TokenDto,
    /// The secret, shown this once.
    secret: String,
    ca_sha256: String,
    server: String,
    /// The command to run on the machine to enroll it.
    command: String,
}

fn dto(t: JoinToken) -> TokenDto {
    TokenDto {
        state: t.state(now_ms()),
        id: t.id.to_string(),
        project: t.project.to_string(),
        labels: t
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        description: t.description,
        uses_total: t.uses_total,
        uses_left: t.uses_left,
        created_at: t.created_at_ms,
        expires_at: t.expires_at_ms,
        revoked_at: t.revoked_at_ms,
    }
}

pub async fn create(
    State(s): State<SharedState>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let bad = |e: String| ApiError::BadRequest(e);
    let project = match body.project.as_deref() {
        None | Some("") => ProjectId::default_project(),
        Some(p) => ProjectId::parse(p).map_err(|e| bad(e.to_string()))?,
    };
    let ttl = sovereign_settings::parse_duration(body.ttl.as_deref().unwrap_or("1h"))
        .map_err(|e| bad(format!("ttl: {e}")))?;
    let mut labels = Labels::new();
    for (k, v) in &body.labels {
        labels.insert(k, v).map_err(|e| bad(e.to_string()))?;
    }
    let new = NewToken {
        project,
        ttl,
        uses: body.uses.unwrap_or(1),
        labels,
        description: body.description.unwrap_or_default(),
    };
    new.validate().map_err(bad)?;
    let secret = TokenSecret::generate();
    let token = match s.store.create_token(&new, &secret.hash(), now_ms()).await {
        Err(crate::store::StoreError::NotFound("project")) => {
            return Err(bad(format!(
                "unknown project {:?}: create it first (POST /api/v1/projects)",
                new.project.as_str()
            )));
        }
        other => other?,
    };
    tracing::info!(token_id = %token.id, project = %token.project, uses = token.uses_total, "Join token created.");
    let fingerprint = s.ca.fingerprint().to_owned();
    let command = format!(
        "sovereign-agent enroll --server {} --token {} --ca-sha256 {fingerprint} && sovereign-agent run",
        s.public_url,
        secret.expose()
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: dto(token),
            secret: secret.expose().to_owned(),
            ca_sha256: fingerprint,
            server: s.public_url.clone(),
            command,
        }),
    ))
}

pub async fn list(State(s): State<SharedState>) -> Result<Json<Vec<TokenDto>>, ApiError> {
    Ok(Json(
        s.store.list_tokens().await?.into_iter().map(dto).collect(),
    ))
}

pub async fn revoke(
    State(s): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<TokenDto>, ApiError> {
    let id = TokenId::parse(&id).ok_or(ApiError::NotFound("token"))?;
    if !s.store.revoke_token(&id, now_ms()).await? {
        return Err(ApiError::NotFound("token"));
    }
    tracing::info!(token_id = %id, "Join token revoked.");
    let token = s
        .store
        .get_token(&id)
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    Ok(Json(dto(token)))
}

#[derive(Serialize)]
pub struct ProjectDto {
    id: String,
    created_at: i64,
}

pub async fn list_projects(
    State(s): State<SharedState>,
) -> Result<Json<Vec<ProjectDto>>, ApiError> {
    Ok(Json(
        s.store
            .list_projects()
            .await?
            .into_iter()
            .map(|p| ProjectDto {
                id: p.id.to_string(),
                created_at: p.created_at_ms,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    id: String,
}

pub async fn create_project(
    State(s): State<SharedState>,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<ProjectDto>), ApiError> {
    let id = ProjectId::parse(&body.id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let now = now_ms();
    s.store.create_project(&id, now).await?;
    tracing::info!(project = %id, "Project created.");
    Ok((
        StatusCode::CREATED,
        Json(ProjectDto {
            id: id.to_string(),
            created_at: now,
        }),
    ))
}

#[derive(Serialize)]
pub struct CaDto {
    sha256: String,
    pem: String,
    server: String,
}

pub async fn ca(State(s): State<SharedState>) -> Json<CaDto> {
    Json(CaDto {
        sha256: s.ca.fingerprint().to_owned(),
        pem: s.ca.ca_pem().to_owned(),
        server: s.public_url.clone(),
    })
}
