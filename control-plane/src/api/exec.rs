//! `/api/v1/exec`: run a command on a selection of agents, follow it live
//! (server-sent events), cancel it, and read the history.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;

use super::auth::Principal;
use super::{ApiError, ApiJson, SharedState};
use crate::exec::{ExecError, JobEvent, JobId, Outcome, Spec, Target};
use crate::fleet::AgentId;
use crate::labels::Labels;
use crate::projects::ProjectId;

/// Who may run commands: API tokens, and people with the operator role or
/// above who signed in recently.
pub const RECENT_AUTH_MS: i64 = 12 * 3600 * 1000;

pub fn operator(p: &Principal) -> Result<String, ApiError> {
    match p {
        Principal::Token { name } => Ok(format!("token:{name}")),
        Principal::User(s) => {
            if s.user.role > crate::identity::Role::Operator {
                return Err(ApiError::Forbidden("this needs the operator role".into()));
            }
            if super::now_ms() - s.authenticated_at_ms > RECENT_AUTH_MS {
                return Err(ApiError::Forbidden(
                    "sign in again to run commands or open terminals".into(),
                ));
            }
            Ok(s.user.username.clone())
        }
    }
}

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Store(e) => e.into(),
            ExecError::NotFound => ApiError::NotFound("exec job"),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    target: TargetBody,
    #[serde(default)]
    argv: Vec<String>,
    #[serde(default)]
    script: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: String,
    /// `30s`, `5m`...; default from the control plane's config.
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    run_as: String,
    #[serde(default)]
    concurrency: Option<u32>,
}

pub async fn start(
    State(s): State<SharedState>,
    principal: axum::Extension<Principal>,
    ApiJson(body): ApiJson<ExecBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let actor = operator(&principal.0)?;
    let bad = ApiError::BadRequest;
    let mut ids = Vec::with_capacity(body.target.ids.len());
    for id in &body.target.ids {
        ids.push(AgentId::parse(id).ok_or_else(|| bad(format!("{id:?} is not an agent id")))?);
    }
    let project = match body.target.project.as_deref() {
        None | Some("") => None,
        Some(p) => Some(ProjectId::parse(p).map_err(|e| bad(e.to_string()))?),
    };
    let mut labels = Labels::new();
    for (k, v) in &body.target.labels {
        labels.insert(k, v).map_err(|e| bad(e.to_string()))?;
    }
    let timeout = match body.timeout.as_deref() {
        None | Some("") => s.exec_default_timeout,
        Some(t) => {
            sovereign_settings::parse_duration(t).map_err(|e| bad(format!("timeout: {e}")))?
        }
    };
    let spec = Spec {
        argv: body.argv,
        script: body.script,
        env: body.env,
        cwd: body.cwd,
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        run_as: body.run_as,
        max_output_bytes: s.exec_max_output,
    };
    let target = Target {
        ids,
        project,
        labels,
    };
    let (job, agents) = s
        .executor
        .start(&actor, spec, target, body.concurrency.unwrap_or(50))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": job.as_str(), "agents": agents })),
    ))
}

fn outcome_json(o: &Outcome) -> Value {
    json!({
        "exit_code": o.exit_code, "signal": o.signal, "duration_ms": o.duration_ms, "timed_out": o.timed_out,
        "cancelled": o.cancelled, "truncated": o.truncated, "error": o.error, "output_bytes": o.output_bytes,
    })
}

fn parse_job(id: &str) -> Result<JobId, ApiError> {
    JobId::parse(id).ok_or(ApiError::NotFound("exec job"))
}

fn summary(spec_json: &str) -> String {
    serde_json::from_str::<Spec>(spec_json)
        .map(|s| s.summary())
        .unwrap_or_default()
}

pub async fn get(
    State(s): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = parse_job(&id)?;
    let row = s
        .store
        .get_job(&job)
        .await?
        .ok_or(ApiError::NotFound("exec job"))?;
    let mut output: HashMap<String, Vec<Value>> = HashMap::new();
    for (agent, seq, stderr, data) in s.store.job_output(&job).await? {
        output.entry(agent).or_default().push(json!({ "seq": seq, "stream": if stderr { "stderr" } else { "stdout" }, "data": String::from_utf8_lossy(&data) }));
    }
    let runs: Vec<Value> = row
        .runs
        .iter()
        .map(|r| {
            let mut v = outcome_json(&r.outcome);
            v["agent_id"] = json!(r.agent_id);
            v["hostname"] = json!(r.hostname);
            v["state"] = json!(r.state);
            v["output"] = json!(output.remove(&r.agent_id).unwrap_or_default());
            v
        })
        .collect();
    let spec: Value = serde_json::from_str(&row.spec_json).unwrap_or(Value::Null);
    let target: Value = serde_json::from_str(&row.target_json).unwrap_or(Value::Null);
    Ok(Json(json!({
        "id": row.id, "created_at": row.created_at_ms, "created_by": row.created_by, "command": summary(&row.spec_json),
        "spec": spec, "target": target, "finished_at": row.finished_at_ms, "runs": runs,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
}

#[derive(Serialize)]
pub struct JobDto {
    id: String,
    created_at: i64,
    created_by: String,
    command: String,
    agents: i64,
    ok: i64,
    failed: i64,
    running: i64,
}

pub async fn list(
    State(s): State<SharedState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<JobDto>>, ApiError> {
    let jobs = s
        .store
        .list_jobs(q.limit.unwrap_or(50).clamp(1, 500))
        .await?;
    Ok(Json(
        jobs.into_iter()
            .map(|j| JobDto {
                command: summary(&j.spec_json),
                id: j.id,
                created_at: j.created_at_ms,
                created_by: j.created_by,
                agents: j.agents,
                ok: j.ok,
                failed: j.failed,
                running: j.running,
            })
            .collect(),
    ))
}

pub async fn cancel(
    State(s): State<SharedState>,
    principal: axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let actor = operator(&principal.0)?;
    let job = parse_job(&id)?;
    if s.executor.cancel(&job, &actor).await {
        Ok(Json(json!({ "cancelled": true })))
    } else if s.store.get_job(&job).await?.is_some() {
        Err(ApiError::Conflict("this job has already finished".into()))
    } else {
        Err(ApiError::NotFound("exec job"))
    }
}

fn event(name: &str, data: Value) -> Result<Event, Infallible> {
    Ok(Event::default().event(name).data(data.to_string()))
}

/// Stored progress first, then live events, without repeating output: a
/// chunk already replayed (by agent and seq) is skipped when it comes live.
pub async fn events(
    State(s): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = parse_job(&id)?;
    let live = s.executor.subscribe(&job).await;
    let row = s
        .store
        .get_job(&job)
        .await?
        .ok_or(ApiError::NotFound("exec job"))?;
    let output = s.store.job_output(&job).await?;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut replay: Vec<Result<Event, Infallible>> = Vec::new();
    for r in &row.runs {
        replay.push(event(
            "run",
            json!({ "agent_id": r.agent_id, "hostname": r.hostname, "state": r.state }),
        ));
    }
    for (agent, seq, stderr, data) in output {
        seen.insert(agent.clone(), seq);
        replay.push(event("output", json!({ "agent_id": agent, "seq": seq, "stream": if stderr { "stderr" } else { "stdout" }, "data": String::from_utf8_lossy(&data) })));
    }
    let mut finished = 0;
    // A result stored before this read may also still be in the live feed:
    // each host's result is sent once.
    let mut replayed: std::collections::HashSet<String> = std::collections::HashSet::new();
    for r in &row.runs {
        if !matches!(r.state.as_str(), "pending" | "running") {
            finished += 1;
            replayed.insert(r.agent_id.clone());
            let mut v = outcome_json(&r.outcome);
            v["agent_id"] = json!(r.agent_id);
            replay.push(event("result", v));
        }
    }
    let done_already = live.is_none() || finished == row.runs.len();
    if done_already {
        replay.push(event("done", json!({})));
    }
    let live_stream = match (live, done_already) {
        (Some(rx), false) => BroadcastStream::new(rx)
            .take_while(|e| futures::future::ready(!matches!(e, Ok(JobEvent::Done))))
            .filter_map(move |e| {
                let out = match e {
                    Ok(JobEvent::Run { agent, hostname, state }) => Some(event("run", json!({ "agent_id": agent.as_str(), "hostname": hostname, "state": state.as_str() }))),
                    Ok(JobEvent::Output { agent, seq, stderr, data }) => {
                        if seen.get(agent.as_str()).is_some_and(|s| *s >= seq) {
                            None
                        } else {
                            Some(event("output", json!({ "agent_id": agent.as_str(), "seq": seq, "stream": if stderr { "stderr" } else { "stdout" }, "data": String::from_utf8_lossy(&data) })))
                        }
                    }
                    Ok(JobEvent::Result { agent, outcome }) => {
                        if replayed.contains(agent.as_str()) {
                            None
                        } else {
                            let mut v = outcome_json(&outcome);
                            v["agent_id"] = json!(agent.as_str());
                            Some(event("result", v))
                        }
                    }
                    Ok(JobEvent::Done) => None,
                    Err(_) => Some(event("error", json!({ "message": "this viewer fell behind; reload to see everything" }))),
                };
                futures::future::ready(out)
            })
            .chain(futures::stream::once(futures::future::ready(event("done", json!({})))))
            .boxed(),
        _ => futures::stream::empty().boxed(),
    };
    let stream = futures::stream::iter(replay).chain(live_stream);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
