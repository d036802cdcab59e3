//! Browser terminals relayed to agents: browser ⇄ WebSocket ⇄ this relay ⇄
//! the agent's per-session `Terminal` gRPC stream ⇄ the agent's PTY. The PTY
//! belongs to the agent and outlives any relay, so a browser (or this
//! control plane) can go away and come back to the same session; output
//! carries byte offsets so a returning viewer gets exactly what it missed.
//!
//! The relay owns the single-use tickets that authorise a WebSocket, the
//! rendezvous between a viewer waiting for an agent and the agent's stream,
//! and each session's recording turn (one recorder at a time).

mod recording;

pub use recording::{Recorder, decode_recording};

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fleet::AgentId;

/// Largest keystroke/paste frame accepted from a browser.
pub const MAX_INPUT_FRAME: usize = 64 * 1024;
pub const TICKET_TTL: Duration = Duration::from_secs(30);
const MAX_TICKETS: usize = 10_000;
const MAX_PENDING: usize = 10_000;

/// What the agent's stream says, in domain form.
#[derive(Debug, Clone, PartialEq)]
pub enum FromAgent {
    Attached {
        output_offset: u64,
        replay_from: u64,
        resumed: bool,
    },
    Output {
        offset: u64,
        data: Vec<u8>,
    },
    Closed {
        exit_code: Option<i32>,
        reason: String,
    },
}

/// What the relay tells the agent's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ToAgent {
    /// Send output from this offset on (first frame).
    ReplayFrom(u64),
    Input(Vec<u8>),
    Resize {
        cols: u32,
        rows: u32,
    },
}

/// Both directions of one agent terminal stream.
pub struct AgentLink {
    /// Ends after `Closed`, or when the agent's stream breaks.
    pub from_agent: BoxStream<'static, FromAgent>,
    pub to_agent: mpsc::Sender<ToAgent>,
    pub attached: FromAgent,
}

/// A ticket's promise: this user may open this session on this agent, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub user: String,
    pub agent: AgentId,
    pub session_id: String,
    pub new_session: bool,
}

enum Cmd {
    Issue {
        hash: String,
        ticket: Ticket,
        expires: Instant,
    },
    Redeem {
        hash: String,
        reply: oneshot::Sender<Option<Ticket>>,
    },
    Wait {
        key: (AgentId, String),
        reply: oneshot::Sender<AgentLink>,
    },
    Arrive {
        key: (AgentId, String),
        link: AgentLink,
        reply: oneshot::Sender<Result<(), AgentLink>>,
    },
    Attached {
        key: (AgentId, String),
        on: bool,
    },
    IsAttached {
        key: (AgentId, String),
        reply: oneshot::Sender<bool>,
    },
}

#[derive(Clone)]
pub struct Relay {
    tx: mpsc::Sender<Cmd>,
    turns: Turns,
}

/// One lock per session some relay in this process records.
type Turns = Arc<std::sync::Mutex<HashMap<(AgentId, String), Arc<tokio::sync::Mutex<()>>>>>;

/// A relay's turn to record a session: taken before its recorder opens,
/// given up once everything it recorded is stored, so the next viewer's
/// recorder reads where the stored recording ends (a recorder opened while
/// the last one still held parts would record their output again).
pub struct RecordingTurn {
    turns: Turns,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl RecordingTurn {
    /// False when the wait for the previous recorder ran out.
    pub fn is_held(&self) -> bool {
        self.guard.is_some()
    }
}

impl Drop for RecordingTurn {
    fn drop(&mut self) {
        drop(self.guard.take());
        // Locks only the map holds (this one, or one whose waiter was
        // cancelled after its holder left) are forgotten.
        self.turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, lock| Arc::strong_count(lock) > 1);
    }
}

pub fn spawn_relay(tracker: &TaskTracker, stop: CancellationToken) -> Relay {
    let (tx, rx) = mpsc::channel(1024);
    tracker.spawn(run(rx, stop));
    Relay {
        tx,
        turns: Turns::default(),
    }
}

async fn run(mut rx: mpsc::Receiver<Cmd>, stop: CancellationToken) {
    let mut tickets: HashMap<String, (Ticket, Instant)> = HashMap::new();
    let mut waiting: HashMap<(AgentId, String), oneshot::Sender<AgentLink>> = HashMap::new();
    let mut attached: HashMap<(AgentId, String), usize> = HashMap::new();
    loop {
        let cmd = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => break },
            () = stop.cancelled() => break,
        };
        match cmd {
            Cmd::Issue {
                hash,
                ticket,
                expires,
            } => {
                let now = Instant::now();
                tickets.retain(|_, (_, exp)| *exp > now);
                if tickets.len() < MAX_TICKETS {
                    tickets.insert(hash, (ticket, expires));
                }
            }
            Cmd::Redeem { hash, reply } => {
                let t = tickets
                    .remove(&hash)
                    .filter(|(_, exp)| *exp > Instant::now())
                    .map(|(t, _)| t);
                let _ = reply.send(t);
            }
            Cmd::Wait { key, reply } => {
                waiting.retain(|_, tx| !tx.is_closed());
                if waiting.len() < MAX_PENDING {
                    waiting.insert(key, reply);
                }
            }
            Cmd::Arrive { key, link, reply } => {
                let result = match waiting.remove(&key) {
                    Some(tx) => tx.send(link),
                    None => Err(link),
                };
                let _ = reply.send(result);
            }
            Cmd::Attached { key, on } => {
                let n = attached.entry(key.clone()).or_default();
                if on {
                    *n += 1;
                } else {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        attached.remove(&key);
                    }
                }
            }
            Cmd::IsAttached { key, reply } => {
                let _ = reply.send(attached.contains_key(&key));
            }
        }
    }
}

fn ticket_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Relay {
    /// Issues a single-use ticket valid for `TICKET_TTL`; returns its secret.
    pub async fn issue(&self, ticket: Ticket) -> String {
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let _ = self
            .tx
            .send(Cmd::Issue {
                hash: ticket_hash(&secret),
                ticket,
                expires: Instant::now() + TICKET_TTL,
            })
            .await;
        secret
    }

    /// Takes a ticket; it cannot be used again.
    pub async fn redeem(&self, secret: &str) -> Option<Ticket> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Redeem {
                hash: ticket_hash(secret),
                reply,
            })
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Waits (up to `timeout`) for the agent to open this session's stream.
    pub async fn wait_for_agent(
        &self,
        agent: &AgentId,
        session_id: &str,
        timeout: Duration,
    ) -> Option<AgentLink> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Wait {
                key: (agent.clone(), session_id.to_owned()),
                reply,
            })
            .await
            .ok()?;
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }

    /// Hands an agent's stream to the viewer waiting for it; gives it back
    /// if nobody waits (the agent is then told so).
    pub async fn arrive(
        &self,
        agent: &AgentId,
        session_id: &str,
        link: AgentLink,
    ) -> Result<(), AgentLink> {
        let (reply, rx) = oneshot::channel();
        let key = (agent.clone(), session_id.to_owned());
        if let Err(e) = self.tx.send(Cmd::Arrive { key, link, reply }).await {
            let Cmd::Arrive { link, .. } = e.0 else {
                unreachable!("sent an Arrive")
            };
            return Err(link);
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }

    /// Waits (up to `timeout`) until no other relay here records the
    /// session, then takes the turn; after `timeout` it goes ahead without
    /// it (see [`RecordingTurn::is_held`]).
    pub async fn recording_turn(
        &self,
        agent: &AgentId,
        session_id: &str,
        timeout: Duration,
    ) -> RecordingTurn {
        let lock = self
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((agent.clone(), session_id.to_owned()))
            .or_default()
            .clone();
        let guard = tokio::time::timeout(timeout, lock.lock_owned()).await.ok();
        RecordingTurn {
            turns: self.turns.clone(),
            guard,
        }
    }

    pub async fn set_attached(&self, agent: &AgentId, session_id: &str, on: bool) {
        let _ = self
            .tx
            .send(Cmd::Attached {
                key: (agent.clone(), session_id.to_owned()),
                on,
            })
            .await;
    }

    pub async fn is_attached(&self, agent: &AgentId, session_id: &str) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Cmd::IsAttached {
                key: (agent.clone(), session_id.to_owned()),
                reply,
            })
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

/// Clamps a requested terminal size to something a PTY accepts.
pub fn clamp_size(cols: u32, rows: u32) -> (u32, u32) {
    (cols.clamp(1, 1000), rows.clamp(1, 1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn ticket() -> Ticket {
        Ticket {
            user: "admin".into(),
            agent: AgentId::new(),
            session_id: "s".into(),
            new_session: true,
        }
    }

    #[tokio::test]
    async fn tickets_are_single_use() {
        let relay = spawn_relay(&TaskTracker::new(), CancellationToken::new());
        let t = ticket();
        let secret = relay.issue(t.clone()).await;
        assert_eq!(relay.redeem("not-it").await, None);
        assert_eq!(relay.redeem(&secret).await, Some(t));
        assert_eq!(relay.redeem(&secret).await, None);
    }

    #[tokio::test]
    async fn an_arriving_agent_meets_its_viewer() {
        let relay = spawn_relay(&TaskTracker::new(), CancellationToken::new());
        let agent = AgentId::new();
        let (to_agent, _rx) = mpsc::channel(1);
        let link = AgentLink {
            from_agent: futures::stream::pending().boxed(),
            to_agent,
            attached: FromAgent::Attached {
                output_offset: 5,
                replay_from: 0,
                resumed: true,
            },
        };
        // Nobody waits: the link comes back, to be offered again.
        let Err(link) = relay.arrive(&agent, "s1", link).await else {
            panic!("nobody was waiting, yet the link was taken");
        };
        let waiter = {
            let relay = relay.clone();
            let agent = agent.clone();
            tokio::spawn(async move {
                relay
                    .wait_for_agent(&agent, "s1", Duration::from_secs(5))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(relay.arrive(&agent, "s1", link).await.is_ok());
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(
            got.attached,
            FromAgent::Attached {
                output_offset: 5,
                replay_from: 0,
                resumed: true
            }
        );
        assert_eq!(clamp_size(0, 100_000), (1, 1000));
    }

    #[tokio::test]
    async fn one_relay_at_a_time_records_a_session() {
        let relay = spawn_relay(&TaskTracker::new(), CancellationToken::new());
        let agent = AgentId::new();
        let wait = Duration::from_millis(500);
        let first = relay.recording_turn(&agent, "s1", wait).await;
        assert!(first.is_held());
        // Another session does not wait.
        let other = relay.recording_turn(&agent, "s2", wait).await;
        assert!(other.is_held());

        let second = {
            let relay = relay.clone();
            let agent = agent.clone();
            tokio::spawn(async move { relay.recording_turn(&agent, "s1", wait).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!second.is_finished(), "the second recorder did not wait");
        drop(first);
        let second = second.await.unwrap();
        assert!(second.is_held());

        // A recorder that never finishes holds the next one up only so long.
        let started = std::time::Instant::now();
        let third = relay.recording_turn(&agent, "s1", wait).await;
        assert!(!third.is_held());
        assert!(
            started.elapsed() >= wait,
            "gave up before the wait was over"
        );

        drop((second, third, other));
        assert!(
            relay.turns.lock().unwrap().is_empty(),
            "a finished turn was kept"
        );
    }
}
