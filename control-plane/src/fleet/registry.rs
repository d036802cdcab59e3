//! The live registry: one owner task that knows which agents are connected,
//! how to push to them and how to cut them off. Sessions attach and detach;
//! the API asks it for handles and snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::AgentId;
use crate::metrics::Point;

/// What the control plane pushes to a connected agent (converted to the wire
/// format by the gRPC layer).
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    MetricAck {
        up_to_seq: u64,
    },
    Sampling {
        full_rate: bool,
    },
    Exec(Box<crate::exec::ExecCommand>),
    CancelExec {
        exec_id: String,
    },
    /// Open (or re-attach to) a terminal session's PTY.
    OpenTerminal {
        session_id: String,
        cols: u32,
        rows: u32,
    },
}

/// What watchers of one agent receive.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    Points(Arc<Vec<Point>>),
    Processes(Arc<ProcessSnapshot>),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSnapshot {
    pub ts_ms: i64,
    pub by_cpu: Vec<ProcessInfo>,
    pub by_memory: Vec<ProcessInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    pub cpu_percent: f32,
    pub memory_bytes: u64,
}

/// Changes in the fleet that dashboards follow.
#[derive(Debug, Clone, PartialEq)]
pub enum FleetEvent {
    /// The agent connected, disconnected, enrolled or was revoked: re-read it.
    Status { agent: AgentId },
    /// A new summary arrived: headline numbers, in percent.
    Summary {
        agent: AgentId,
        ts_ms: i64,
        cpu: f32,
        mem: f32,
        disk: f32,
    },
}

/// The last few summaries' headline numbers, for sparklines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spark {
    pub ts: Vec<i64>,
    pub cpu: Vec<f32>,
    pub mem: Vec<f32>,
    pub disk: Vec<f32>,
}

/// Summaries kept per agent for sparklines (5 minutes at 10 s).
pub const SPARK_LEN: usize = 30;

impl Spark {
    pub fn push(&mut self, ts_ms: i64, cpu: f32, mem: f32, disk: f32) {
        if self.ts.last().is_some_and(|&t| t >= ts_ms) {
            return;
        }
        if self.ts.len() == SPARK_LEN {
            self.ts.remove(0);
            self.cpu.remove(0);
            self.mem.remove(0);
            self.disk.remove(0);
        }
        self.ts.push(ts_ms);
        self.cpu.push(cpu);
        self.mem.push(mem);
        self.disk.push(disk);
    }
}

/// The latest things a session knows, readable without asking the session.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    pub connected_at_ms: i64,
    pub remote_addr: String,
    pub latest: Option<Arc<Point>>,
    pub processes: Option<Arc<ProcessSnapshot>>,
    pub outbox_pending: u64,
    pub spark: Arc<Spark>,
}

/// How to reach one live session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    pub conn: u64,
    pub push: mpsc::Sender<Push>,
    pub cancel: CancellationToken,
    pub live: broadcast::Sender<LiveEvent>,
    pub state: watch::Receiver<LiveState>,
}

impl SessionHandle {
    /// Subscribes to this agent's live events. While at least one receiver
    /// exists, the session asks the agent for full-rate samples.
    pub fn watch(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }
}

enum Command {
    Attach {
        agent: AgentId,
        handle: SessionHandle,
    },
    Detach {
        agent: AgentId,
        conn: u64,
    },
    Kick {
        agent: AgentId,
    },
    Get {
        agent: AgentId,
        reply: oneshot::Sender<Option<SessionHandle>>,
    },
    Online {
        reply: oneshot::Sender<Vec<(AgentId, LiveState)>>,
    },
    Count {
        reply: oneshot::Sender<usize>,
    },
}

/// Cheap, cloneable access to the registry task and the fleet's event feed.
#[derive(Clone)]
pub struct Fleet {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<FleetEvent>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fleet")
    }
}

pub fn spawn_registry(tracker: &TaskTracker, shutdown: CancellationToken) -> Fleet {
    let (tx, rx) = mpsc::channel(4096);
    let (events, _) = broadcast::channel(8192);
    tracker.spawn(run(rx, shutdown));
    Fleet { tx, events }
}

async fn run(mut rx: mpsc::Receiver<Command>, shutdown: CancellationToken) {
    let mut sessions: HashMap<AgentId, SessionHandle> = HashMap::new();
    loop {
        let cmd = tokio::select! {
            cmd = rx.recv() => match cmd { Some(c) => c, None => break },
            () = shutdown.cancelled() => break,
        };
        match cmd {
            Command::Attach { agent, handle } => {
                if let Some(old) = sessions.insert(agent.clone(), handle) {
                    tracing::info!(agent_id = %agent, "A newer connection replaced this agent's session.");
                    old.cancel.cancel();
                }
            }
            Command::Detach { agent, conn } => {
                if sessions.get(&agent).is_some_and(|h| h.conn == conn) {
                    sessions.remove(&agent);
                }
            }
            Command::Kick { agent } => {
                if let Some(h) = sessions.remove(&agent) {
                    h.cancel.cancel();
                }
            }
            Command::Get { agent, reply } => {
                let _ = reply.send(sessions.get(&agent).cloned());
            }
            Command::Count { reply } => {
                let _ = reply.send(sessions.len());
            }
            Command::Online { reply } => {
                let list = sessions
                    .iter()
                    .map(|(id, h)| (id.clone(), h.state.borrow().clone()))
                    .collect();
                let _ = reply.send(list);
            }
        }
    }
    for (_, h) in sessions.drain() {
        h.cancel.cancel();
    }
}

impl Fleet {
    /// Follows fleet changes; a slow follower misses events (and is told so
    /// by `RecvError::Lagged`) rather than slowing the fleet down.
    pub fn events(&self) -> broadcast::Receiver<FleetEvent> {
        self.events.subscribe()
    }

    pub fn publish(&self, event: FleetEvent) {
        let _ = self.events.send(event);
    }

    pub async fn attach(&self, agent: AgentId, handle: SessionHandle) {
        let _ = self.tx.send(Command::Attach { agent, handle }).await;
    }

    pub async fn detach(&self, agent: AgentId, conn: u64) {
        let _ = self.tx.send(Command::Detach { agent, conn }).await;
    }

    /// Cuts the agent's live session, if any.
    pub async fn kick(&self, agent: AgentId) {
        let _ = self.tx.send(Command::Kick { agent }).await;
    }

    pub async fn get(&self, agent: &AgentId) -> Option<SessionHandle> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Get {
                agent: agent.clone(),
                reply,
            })
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    pub async fn online_count(&self) -> usize {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Count { reply }).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Every connected agent with its latest state.
    pub async fn online(&self) -> Vec<(AgentId, LiveState)> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Online { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(conn: u64) -> (SessionHandle, mpsc::Receiver<Push>) {
        let (push, rx) = mpsc::channel(4);
        let (live, _) = broadcast::channel(4);
        let (_state_tx, state) = watch::channel(LiveState::default());
        (
            SessionHandle {
                conn,
                push,
                cancel: CancellationToken::new(),
                live,
                state,
            },
            rx,
        )
    }

    #[tokio::test]
    async fn newer_session_replaces_older_and_kick_cancels() {
        let tracker = TaskTracker::new();
        let fleet = spawn_registry(&tracker, CancellationToken::new());
        let agent = AgentId::new();
        let (a, _ra) = handle(1);
        let (b, _rb) = handle(2);
        fleet.attach(agent.clone(), a.clone()).await;
        fleet.attach(agent.clone(), b.clone()).await;
        assert_eq!(fleet.get(&agent).await.map(|h| h.conn), Some(2));
        assert!(a.cancel.is_cancelled());
        // A late detach of the old connection must not remove the new one.
        fleet.detach(agent.clone(), 1).await;
        assert_eq!(fleet.online().await.len(), 1);
        fleet.kick(agent.clone()).await;
        assert!(fleet.get(&agent).await.is_none());
        assert!(b.cancel.is_cancelled());
    }
}
