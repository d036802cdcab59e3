//! `/api/v1/ws`: the dashboard's live channel. The browser subscribes to the
//! agents it shows and may watch one agent (which switches that agent to
//! full-rate sampling while the page is open). Same-origin, session or token
//! authenticated, with bounded messages.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::agents::{agent_dto, point_dto, processes_dto};
use super::auth::{self, Principal};
use super::{ApiError, SharedState, now_ms};
use crate::fleet::{AgentId, FleetEvent, LiveEvent};

const MAX_MESSAGE: usize = 64 * 1024;
const MAX_SUBSCRIBED: usize = 2000;

/// How much a WebSocket asks its TCP socket for at a time. tungstenite
/// zero-fills that much of its read buffer before every read attempt, the
/// ones that find nothing included, and a relay makes a few of those per
/// keystroke: at tungstenite's default of 128 KiB that was about 430 KB
/// written per keystroke (callgrind: 3.3 reads of 128 KiB) to carry a few
/// bytes, each read's fill four times a typical L1 data cache. At 4 KiB it
/// is about 7 KB (BENCHMARKS.md, "Instructions per keystroke"). Browsers
/// send keystrokes, pastes and small JSON messages; a frame bigger than
/// this still arrives whole, over several reads.
const READ_BUFFER: usize = 4 * 1024;

/// A WebSocket upgrade with this server's limits: messages and frames of at
/// most `max_message` bytes, read [`READ_BUFFER`] at a time.
pub fn limited(ws: WebSocketUpgrade, max_message: usize) -> WebSocketUpgrade {
    ws.max_message_size(max_message)
        .max_frame_size(max_message)
        .read_buffer_size(READ_BUFFER)
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Subscribe { ids: Vec<String> },
    Watch { id: String },
    Unwatch,
}

pub async fn upgrade(
    State(s): State<SharedState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let principal = auth::websocket_principal(&s, &headers).await?;
    Ok(limited(ws, MAX_MESSAGE).on_upgrade(move |socket| run(s, principal, socket)))
}

struct Watch {
    id: AgentId,
    rx: Option<broadcast::Receiver<LiveEvent>>,
}

async fn run(s: SharedState, principal: Principal, mut socket: WebSocket) {
    let mut events = s.fleet.events();
    let mut subscribed: HashSet<AgentId> = HashSet::new();
    let mut watch: Option<Watch> = None;
    let mut counts_tick = tokio::time::interval(Duration::from_secs(5));
    let mut session_tick = tokio::time::interval(Duration::from_secs(60));
    session_tick.tick().await;
    loop {
        let outgoing: Option<Value> = tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => handle(&s, text.as_str(), &mut subscribed, &mut watch).await,
                Some(Ok(Message::Binary(_))) => Some(json!({ "type": "error", "message": "binary messages are not understood" })),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "Dashboard socket failed.");
                    break;
                }
            },
            ev = events.recv() => match ev {
                Ok(FleetEvent::Summary { agent, ts_ms, cpu, mem, disk }) if subscribed.contains(&agent) => {
                    Some(json!({ "type": "summary", "id": agent.as_str(), "ts": ts_ms, "cpu": cpu, "mem": mem, "disk": disk }))
                }
                Ok(FleetEvent::Status { agent }) => {
                    if let Some(w) = watch.as_mut().filter(|w| w.id == agent) {
                        w.rx = s.fleet.get(&agent).await.map(|h| h.watch());
                    }
                    if subscribed.contains(&agent) || watch.as_ref().is_some_and(|w| w.id == agent) {
                        agent_message(&s, &agent).await
                    } else {
                        None
                    }
                }
                Ok(_) => None,
                Err(RecvError::Lagged(n)) => Some(json!({ "type": "resync", "missed": n })),
                Err(RecvError::Closed) => break,
            },
            live = async {
                match watch.as_mut().and_then(|w| w.rx.as_mut()) {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match (live, watch.as_ref()) {
                (Ok(LiveEvent::Points(points)), Some(w)) => Some(json!({
                    "type": "live",
                    "id": w.id.as_str(),
                    "points": points.iter().map(|p| point_dto(p.ts_ms, &p.stats)).collect::<Vec<_>>(),
                })),
                (Ok(LiveEvent::Processes(p)), Some(w)) => Some(json!({ "type": "processes", "id": w.id.as_str(), "processes": processes_dto(&p) })),
                (Err(RecvError::Closed), Some(_)) => {
                    if let Some(w) = watch.as_mut() {
                        w.rx = None;
                    }
                    None
                }
                _ => None,
            },
            _ = counts_tick.tick() => counts(&s).await,
            _ = session_tick.tick() => {
                if let Principal::User(session) = &principal
                    && s.store.session(&session.id_hash, now_ms()).await.ok().flatten().is_none()
                {
                    let _ = socket.send(Message::Text(json!({ "type": "error", "message": "your session has ended: sign in again" }).to_string().into())).await;
                    break;
                }
                None
            }
        };
        if let Some(v) = outgoing
            && socket
                .send(Message::Text(v.to_string().into()))
                .await
                .is_err()
        {
            break;
        }
    }
}

async fn handle(
    s: &SharedState,
    text: &str,
    subscribed: &mut HashSet<AgentId>,
    watch: &mut Option<Watch>,
) -> Option<Value> {
    let msg: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return Some(json!({ "type": "error", "message": format!("unreadable message: {e}") }));
        }
    };
    match msg {
        ClientMessage::Subscribe { ids } => {
            if ids.len() > MAX_SUBSCRIBED {
                return Some(
                    json!({ "type": "error", "message": format!("subscribe to at most {MAX_SUBSCRIBED} agents") }),
                );
            }
            *subscribed = ids.iter().filter_map(|i| AgentId::parse(i)).collect();
            None
        }
        ClientMessage::Watch { id } => {
            let Some(id) = AgentId::parse(&id) else {
                return Some(json!({ "type": "error", "message": "no such agent" }));
            };
            let rx = s.fleet.get(&id).await.map(|h| h.watch());
            let offline = rx.is_none();
            *watch = Some(Watch { id, rx });
            offline.then(|| json!({ "type": "error", "message": "the agent is offline; live data resumes when it reconnects" }))
        }
        ClientMessage::Unwatch => {
            *watch = None;
            None
        }
    }
}

async fn agent_message(s: &SharedState, id: &AgentId) -> Option<Value> {
    let record = s.store.get_agent(id).await.ok().flatten()?;
    let live = s.fleet.get(id).await.map(|h| h.state.borrow().clone());
    serde_json::to_value(agent_dto(record, live.as_ref(), false))
        .ok()
        .map(|agent| json!({ "type": "agent", "agent": agent }))
}

async fn counts(s: &SharedState) -> Option<Value> {
    let (total, revoked) = s.store.agent_counts().await.ok()?;
    let online = s.fleet.online_count().await;
    let offline = (total - revoked).saturating_sub(online as i64).max(0);
    Some(json!({ "type": "counts", "online": online, "offline": offline, "revoked": revoked }))
}
