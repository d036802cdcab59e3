//! Browser terminals: a single-use ticket (POST, cookie + CSRF), then a
//! same-origin WebSocket whose first message carries the ticket (never the
//! URL). The socket is relayed to the agent's PTY; output is recorded.
//! Also the session list and recordings.

use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{self, Principal};
use super::exec::operator;
use super::{ApiError, ApiJson, SharedState, now_ms};
use crate::fleet::{AgentId, Push};
use crate::terminal::{FromAgent, MAX_INPUT_FRAME, Recorder, Ticket, ToAgent, clamp_size};

const AGENT_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a re-attaching viewer's recorder waits for the last viewer's
/// to store what it has.
const RECORDING_TURN_WAIT: Duration = Duration::from_secs(5);
/// A detached session is listed for resuming this long (the agent reaps it after its idle time).
const RESUMABLE_MS: i64 = 6 * 60 * 1000;

fn parse_agent(id: &str) -> Result<AgentId, ApiError> {
    AgentId::parse(id).ok_or(ApiError::NotFound("agent"))
}

fn valid_session_id(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TicketBody {
    #[serde(default)]
    session_id: Option<String>,
}

pub async fn ticket(
    State(s): State<SharedState>,
    principal: axum::Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TicketBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = operator(&principal.0)?;
    let agent = parse_agent(&id)?;
    let record = s
        .store
        .get_agent(&agent)
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    if record.revoked_at_ms.is_some() {
        return Err(ApiError::Conflict("the agent is revoked".into()));
    }
    if s.fleet.get(&agent).await.is_none() {
        return Err(ApiError::Conflict("the agent is offline".into()));
    }
    let (session_id, new_session) = match body.session_id {
        Some(sid) => {
            let row = s
                .store
                .terminal_session(&sid)
                .await?
                .filter(|r| r.agent_id == agent.as_str())
                .ok_or(ApiError::NotFound("terminal session"))?;
            if row.ended_at_ms.is_some() {
                return Err(ApiError::Conflict("that terminal session has ended".into()));
            }
            (sid, false)
        }
        None => (uuid::Uuid::now_v7().to_string(), true),
    };
    let secret = s
        .terminals
        .issue(Ticket {
            user,
            agent,
            session_id: session_id.clone(),
            new_session,
        })
        .await;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "ticket": secret, "session_id": session_id, "expires_in_s": crate::terminal::TICKET_TTL.as_secs() }),
        ),
    ))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientText {
    Auth {
        ticket: String,
        session_id: String,
        cols: u32,
        rows: u32,
        #[serde(default)]
        offset: u64,
    },
    Resize {
        cols: u32,
        rows: u32,
    },
}

pub async fn socket(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let principal = auth::websocket_principal(&s, &headers).await?;
    let agent = parse_agent(&id)?;
    Ok(super::ws::limited(ws, MAX_INPUT_FRAME + 1024)
        .on_upgrade(move |socket| relay(s, principal, agent, socket)))
}

async fn send_json(socket: &mut WebSocket, v: Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn fail(mut socket: WebSocket, message: &str) {
    let _ = send_json(&mut socket, json!({ "type": "error", "message": message })).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn relay(s: SharedState, principal: Principal, agent: AgentId, mut socket: WebSocket) {
    // The first message must carry a ticket issued to this user for this agent.
    let first = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    let Ok(Some(Ok(Message::Text(text)))) = first else {
        return fail(socket, "send the auth message first").await;
    };
    let Ok(ClientText::Auth {
        ticket,
        session_id,
        cols,
        rows,
        mut offset,
    }) = serde_json::from_str::<ClientText>(text.as_str())
    else {
        return fail(socket, "the first message must be {\"type\":\"auth\",...}").await;
    };
    let Some(t) = s.terminals.redeem(&ticket).await else {
        return fail(
            socket,
            "the ticket is unknown, used or expired: open the terminal again",
        )
        .await;
    };
    let user = match &principal {
        Principal::User(sess) => sess.user.username.clone(),
        Principal::Token { name } => format!("token:{name}"),
    };
    if t.agent != agent
        || t.session_id != session_id
        || t.user != user
        || !valid_session_id(&session_id)
    {
        return fail(socket, "this ticket is for another session").await;
    }
    let (cols, rows) = clamp_size(cols, rows);
    let now = now_ms();
    let created = match s
        .store
        .open_terminal_session(&session_id, &agent, &user, now, cols, rows)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "Could not record a terminal session.");
            return fail(socket, "the control plane cannot reach its database").await;
        }
    };
    let _ = s.store.touch_terminal_session(&session_id, now).await;
    let Some(handle) = s.fleet.get(&agent).await else {
        return fail(socket, "the agent is offline").await;
    };
    let waiting = s
        .terminals
        .wait_for_agent(&agent, &session_id, AGENT_OPEN_TIMEOUT);
    let _ = handle
        .push
        .send(Push::OpenTerminal {
            session_id: session_id.clone(),
            cols,
            rows,
        })
        .await;
    let Some(mut link) = waiting.await else {
        return fail(socket, "the agent did not open the terminal in time").await;
    };
    let FromAgent::Attached {
        output_offset,
        replay_from,
        resumed,
    } = link.attached.clone()
    else {
        return fail(socket, "the agent's terminal stream did not start properly").await;
    };
    crate::audit::record(
        &s.store,
        &user,
        if created {
            "terminal.open"
        } else {
            "terminal.attach"
        },
        &format!("agent:{agent}"),
        json!({ "session_id": session_id, "resumed": resumed }),
    )
    .await;
    tracing::info!(agent_id = %agent, session_id = %session_id, user = %user, resumed, "Terminal attached.");
    let hostname = s
        .store
        .get_agent(&agent)
        .await
        .ok()
        .flatten()
        .map(|a| a.facts.hostname)
        .unwrap_or_default();
    // A viewer re-attaching while its predecessor's recorder still stores
    // the last output would otherwise record that output twice. (A relay
    // whose stream the agent already handed to a newer viewer waits here
    // in vain, up to the limit, and then ends as that stream has.)
    let turn = s
        .terminals
        .recording_turn(&agent, &session_id, RECORDING_TURN_WAIT)
        .await;
    if !turn.is_held() {
        tracing::warn!(agent_id = %agent, session_id = %session_id, "The last viewer's recorder of this terminal did not finish in time; the recording may repeat some output.");
    }
    let recorder = match Recorder::open(
        s.store.clone(),
        &session_id,
        cols,
        rows,
        &hostname,
        s.terminal_max_recording,
        Some(turn),
    )
    .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "Could not open the terminal recording; the session is not recorded.");
            None
        }
    };
    // Replay from what the viewer has, or from earlier when the recording
    // missed output (e.g. the control plane died before flushing it): the
    // recorder catches up, and the viewer only gets what it lacks.
    let from = recorder
        .as_ref()
        .map_or(offset, |r| r.recorded_upto().min(offset));
    let _ = link.to_agent.send(ToAgent::ReplayFrom(from)).await;
    if !send_json(&mut socket, json!({ "type": "attached", "session_id": session_id, "resumed": resumed, "output_offset": output_offset, "replay_from": replay_from })).await {
        return;
    }
    s.terminals.set_attached(&agent, &session_id, true).await;
    let started = std::time::Instant::now();
    let mut ended: Option<(Option<i32>, String)> = None;
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    if data.len() > MAX_INPUT_FRAME {
                        let _ = send_json(&mut socket, json!({ "type": "error", "message": "input frame too large" })).await;
                        break;
                    }
                    if link.to_agent.send(ToAgent::Input(data.to_vec())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ClientText>(text.as_str()) {
                    Ok(ClientText::Resize { cols, rows }) => {
                        let (cols, rows) = clamp_size(cols, rows);
                        if let Some(r) = recorder.as_ref() {
                            r.resize(cols, rows).await;
                        }
                        if link.to_agent.send(ToAgent::Resize { cols, rows }).await.is_err() {
                            break;
                        }
                    }
                    _ => {
                        let _ = send_json(&mut socket, json!({ "type": "error", "message": "unknown message" })).await;
                    }
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            },
            out = link.from_agent.next() => match out {
                Some(FromAgent::Output { offset: at, data }) => {
                    // The viewer first: recording is not in a keystroke's path.
                    let end = at + data.len() as u64;
                    let mut sent = true;
                    if end > offset {
                        let skip = usize::try_from(offset.saturating_sub(at)).unwrap_or(0).min(data.len());
                        let start = at.max(offset);
                        offset = end;
                        let mut frame = Vec::with_capacity(8 + data.len() - skip);
                        frame.extend_from_slice(&start.to_be_bytes());
                        frame.extend_from_slice(&data[skip..]);
                        sent = socket.send(Message::Binary(frame.into())).await.is_ok();
                    }
                    if let Some(r) = recorder.as_ref() {
                        r.output(at, axum::body::Bytes::from(data)).await;
                    }
                    if !sent {
                        break;
                    }
                }
                Some(FromAgent::Closed { exit_code, reason }) => {
                    ended = Some((exit_code, reason));
                    break;
                }
                Some(FromAgent::Attached { .. }) => {}
                None => {
                    let _ = send_json(&mut socket, json!({ "type": "error", "message": "the agent's terminal stream ended; reconnecting" })).await;
                    break;
                }
            },
        }
    }
    if let Some(r) = recorder.as_ref() {
        r.flush().await;
    }
    s.terminals.set_attached(&agent, &session_id, false).await;
    let now = now_ms();
    let _ = s.store.touch_terminal_session(&session_id, now).await;
    if let Some((exit_code, reason)) = &ended {
        let exit_code = *exit_code;
        let _ = s
            .store
            .end_terminal_session(&session_id, exit_code, now)
            .await;
        // The viewer hears of the end once the session and its recording are stored.
        let _ = send_json(
            &mut socket,
            json!({ "type": "closed", "exit_code": exit_code, "reason": reason }),
        )
        .await;
        crate::audit::record(
            &s.store,
            &user,
            "terminal.close",
            &format!("agent:{agent}"),
            json!({ "session_id": session_id, "exit_code": exit_code }),
        )
        .await;
    }
    tracing::info!(agent_id = %agent, session_id = %session_id, seconds = started.elapsed().as_secs(), ended = ended.is_some(), "Terminal detached.");
    let _ = socket.send(Message::Close(None)).await;
}

pub async fn sessions(
    State(s): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let agent = parse_agent(&id)?;
    let now = now_ms();
    let mut out = Vec::new();
    for r in s.store.terminal_sessions(&agent, 200).await? {
        if r.ended_at_ms.is_some() {
            continue;
        }
        let attached = s.terminals.is_attached(&agent, &r.id).await;
        if attached || now - r.last_attached_ms < RESUMABLE_MS {
            out.push(json!({ "session_id": r.id, "user": r.user, "started_at": r.started_at_ms, "last_attached_at": r.last_attached_ms, "attached": attached }));
        }
    }
    Ok(Json(out))
}

pub async fn recordings(
    State(s): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let agent = parse_agent(&id)?;
    let rows = s.store.terminal_sessions(&agent, 500).await?;
    Ok(Json(
        rows.into_iter()
            .filter(|r| r.recorded_bytes > 0)
            .map(|r| {
                let end = r.ended_at_ms.unwrap_or(r.last_attached_ms);
                json!({ "session_id": r.id, "user": r.user, "started_at": r.started_at_ms, "ended_at": r.ended_at_ms, "duration_ms": (end - r.started_at_ms).max(0), "bytes": r.recorded_bytes })
            })
            .collect(),
    ))
}

pub async fn recording(
    State(s): State<SharedState>,
    principal: axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !valid_session_id(&id) || s.store.terminal_session(&id).await?.is_none() {
        return Err(ApiError::NotFound("recording"));
    }
    let parts = s.store.recording_parts(&id).await?;
    let text =
        crate::terminal::decode_recording(&parts, s.terminal_max_recording.saturating_mul(2))
            .map_err(|e| ApiError::BadRequest(format!("the recording is damaged: {e}")))?;
    let actor = match &principal.0 {
        Principal::User(sess) => sess.user.username.clone(),
        Principal::Token { name } => format!("token:{name}"),
    };
    crate::audit::record(
        &s.store,
        &actor,
        "recording.view",
        &format!("terminal:{id}"),
        json!({}),
    )
    .await;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/x-asciicast; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
