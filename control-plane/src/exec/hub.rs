//! Routes what agents report about their execs (output chunks, results) to
//! the task waiting for that (job, agent) run. One owner task holds the map;
//! a session looks a route up once per exec and then sends to it directly,
//! in order, waiting when that run is behind (backpressure on that agent only).

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{JobEvent, JobId, Outcome};
use crate::fleet::AgentId;

/// A job still running: its event feed and its cancel switch.
#[derive(Clone)]
pub struct LiveJob {
    pub events: tokio::sync::broadcast::Sender<JobEvent>,
    pub cancel: CancellationToken,
}

/// An exec event from an agent, already converted from the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentExecEvent {
    Output {
        seq: u64,
        stderr: bool,
        data: Vec<u8>,
    },
    Result {
        outcome: Outcome,
        duplicate: bool,
    },
}

type Key = (String, AgentId);

enum Command {
    Register {
        key: Key,
        tx: mpsc::Sender<AgentExecEvent>,
        done: oneshot::Sender<()>,
    },
    Unregister {
        key: Key,
    },
    Route {
        key: Key,
        reply: oneshot::Sender<Option<mpsc::Sender<AgentExecEvent>>>,
    },
    AddJob {
        job: JobId,
        live: LiveJob,
    },
    RemoveJob {
        job: JobId,
    },
    GetJob {
        job: JobId,
        reply: oneshot::Sender<Option<LiveJob>>,
    },
}

/// Cheap to clone; sessions deliver, run tasks register.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Command>,
}

pub fn spawn_hub(tracker: &TaskTracker, stop: CancellationToken) -> Hub {
    let (tx, rx) = mpsc::channel(4096);
    tracker.spawn(run(rx, stop));
    Hub { tx }
}

async fn run(mut rx: mpsc::Receiver<Command>, stop: CancellationToken) {
    let mut routes: HashMap<Key, mpsc::Sender<AgentExecEvent>> = HashMap::new();
    let mut jobs: HashMap<JobId, LiveJob> = HashMap::new();
    loop {
        let cmd = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => break },
            () = stop.cancelled() => break,
        };
        match cmd {
            Command::Register { key, tx, done } => {
                routes.insert(key, tx);
                let _ = done.send(());
            }
            Command::Unregister { key } => {
                routes.remove(&key);
            }
            Command::Route { key, reply } => {
                let _ = reply.send(routes.get(&key).cloned());
            }
            Command::AddJob { job, live } => {
                jobs.insert(job, live);
            }
            Command::RemoveJob { job } => {
                jobs.remove(&job);
            }
            Command::GetJob { job, reply } => {
                let _ = reply.send(jobs.get(&job).cloned());
            }
        }
    }
}

impl Hub {
    /// Starts routing (job, agent) events to the returned receiver.
    pub async fn register(&self, job: &JobId, agent: &AgentId) -> mpsc::Receiver<AgentExecEvent> {
        let (tx, rx) = mpsc::channel(256);
        let (done, wait) = oneshot::channel();
        let _ = self
            .tx
            .send(Command::Register {
                key: (job.as_str().to_owned(), agent.clone()),
                tx,
                done,
            })
            .await;
        let _ = wait.await;
        rx
    }

    pub async fn unregister(&self, job: &JobId, agent: &AgentId) {
        let _ = self
            .tx
            .send(Command::Unregister {
                key: (job.as_str().to_owned(), agent.clone()),
            })
            .await;
    }

    /// Where a session sends events for `exec_id` from `agent`, if a run waits for them.
    pub async fn route(
        &self,
        exec_id: &str,
        agent: &AgentId,
    ) -> Option<mpsc::Sender<AgentExecEvent>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Route {
                key: (exec_id.to_owned(), agent.clone()),
                reply,
            })
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    pub async fn add_job(&self, job: JobId, live: LiveJob) {
        let _ = self.tx.send(Command::AddJob { job, live }).await;
    }

    pub async fn remove_job(&self, job: JobId) {
        let _ = self.tx.send(Command::RemoveJob { job }).await;
    }

    /// A running job's feed and cancel switch; `None` once it finished.
    pub async fn job(&self, job: &JobId) -> Option<LiveJob> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::GetJob {
                job: job.clone(),
                reply,
            })
            .await
            .ok()?;
        rx.await.ok().flatten()
    }
}
