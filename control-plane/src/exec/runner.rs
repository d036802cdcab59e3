//! Runs a job: resolves its agents, fans out under a concurrency limit,
//! follows each run to its result (re-sending to a reconnected agent, which
//! runs an id at most once), stores output up to the cap, and publishes
//! progress to whoever watches.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Semaphore, broadcast};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hub::{AgentExecEvent, Hub, LiveJob};
use super::{ExecError, JobId, Outcome, RunState, Spec, Target};
use crate::audit;
use crate::fleet::{AgentId, AgentRecord, Fleet, Push};
use crate::pki::now_ms;
use crate::store::Store;

/// Extra time after a command's own timeout before the control plane gives
/// up on hearing its result.
const RESULT_GRACE: Duration = Duration::from_secs(60);
/// How long a cancelled run may take to report.
const CANCEL_GRACE: Duration = Duration::from_secs(15);

/// Progress of a job, for live viewers.
#[derive(Debug, Clone)]
pub enum JobEvent {
    Run {
        agent: AgentId,
        hostname: String,
        state: RunState,
    },
    Output {
        agent: AgentId,
        seq: u64,
        stderr: bool,
        data: Arc<Vec<u8>>,
    },
    Result {
        agent: AgentId,
        outcome: Outcome,
    },
    Done,
}

/// What an agent is asked to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecCommand {
    pub exec_id: String,
    pub spec: Spec,
}

#[derive(Clone)]
pub struct Executor {
    store: Store,
    fleet: Fleet,
    hub: Hub,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Output stored per run, at most.
    stored_output_cap: u64,
}

impl Executor {
    pub fn new(
        store: Store,
        fleet: Fleet,
        hub: Hub,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        stored_output_cap: u64,
    ) -> Self {
        Self {
            store,
            fleet,
            hub,
            tracker,
            shutdown,
            stored_output_cap,
        }
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Validates, records and starts a job; returns its id and agent count.
    pub async fn start(
        &self,
        actor: &str,
        spec: Spec,
        target: Target,
        concurrency: u32,
    ) -> Result<(JobId, usize), ExecError> {
        spec.validate()?;
        if !(1..=super::MAX_CONCURRENCY).contains(&concurrency) {
            return Err(ExecError::Invalid(format!(
                "concurrency must be between 1 and {}",
                super::MAX_CONCURRENCY
            )));
        }
        let agents = target.resolve(self.store.list_agents().await?)?;
        let job = JobId::new();
        let target_json = json!({
            "ids": target.ids.iter().map(AgentId::as_str).collect::<Vec<_>>(),
            "project": target.project.as_ref().map(|p| p.as_str()),
            "labels": target.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        });
        let runs: Vec<(AgentId, String)> = agents
            .iter()
            .map(|a| (a.id.clone(), a.facts.hostname.clone()))
            .collect();
        let spec_json = serde_json::to_string(&spec).unwrap_or_default();
        self.store
            .create_job(&crate::store::NewJob {
                job: &job,
                now_ms: now_ms(),
                actor,
                spec_json: &spec_json,
                target_json: &target_json.to_string(),
                concurrency,
                runs: &runs,
            })
            .await?;
        audit::record(
            &self.store,
            actor,
            "exec.start",
            &format!("exec:{job}"),
            json!({ "command": spec.summary(), "agents": agents.len(), "target": target_json, "run_as": spec.run_as, "cwd": spec.cwd }),
        )
        .await;
        let (events, _) = broadcast::channel(4096);
        let cancel = self.shutdown.child_token();
        self.hub
            .add_job(
                job.clone(),
                LiveJob {
                    events: events.clone(),
                    cancel: cancel.clone(),
                },
            )
            .await;
        tracing::info!(exec_id = %job, agents = agents.len(), actor, command = %spec.summary(), "Exec started.");
        let n = agents.len();
        let this = self.clone();
        let id = job.clone();
        self.tracker.spawn(async move {
            this.run_job(id, spec, agents, concurrency, events, cancel)
                .await
        });
        Ok((job, n))
    }

    async fn run_job(
        self,
        job: JobId,
        spec: Spec,
        agents: Vec<AgentRecord>,
        concurrency: u32,
        events: broadcast::Sender<JobEvent>,
        cancel: CancellationToken,
    ) {
        let permits = Arc::new(Semaphore::new(usize::try_from(concurrency).unwrap_or(1)));
        let runs = TaskTracker::new();
        for agent in agents {
            let this = self.clone();
            let (job, spec, events, cancel, permits) = (
                job.clone(),
                spec.clone(),
                events.clone(),
                cancel.clone(),
                permits.clone(),
            );
            runs.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                this.run_one(&job, &spec, &agent, &events, &cancel).await;
            });
        }
        runs.close();
        runs.wait().await;
        if let Err(e) = self.store.finish_job(&job, now_ms()).await {
            tracing::error!(exec_id = %job, error = %e, "Could not mark the exec job finished.");
        }
        let _ = events.send(JobEvent::Done);
        self.hub.remove_job(job.clone()).await;
        tracing::info!(exec_id = %job, "Exec finished.");
    }

    async fn run_one(
        &self,
        job: &JobId,
        spec: &Spec,
        agent: &AgentRecord,
        events: &broadcast::Sender<JobEvent>,
        cancel: &CancellationToken,
    ) {
        let id = &agent.id;
        let publish = |e: JobEvent| {
            let _ = events.send(e);
        };
        if cancel.is_cancelled() {
            self.finish(
                job,
                agent,
                RunState::Failed,
                Outcome {
                    cancelled: true,
                    ..Outcome::failed("cancelled before it started")
                },
                events,
            )
            .await;
            return;
        }
        let mut rx = self.hub.register(job, id).await;
        let Some(mut session) = self.fleet.get(id).await else {
            self.hub.unregister(job, id).await;
            self.finish(
                job,
                agent,
                RunState::Offline,
                Outcome::failed("the agent is offline"),
                events,
            )
            .await;
            return;
        };
        let command = ExecCommand {
            exec_id: job.to_string(),
            spec: spec.clone(),
        };
        if session
            .push
            .send(Push::Exec(Box::new(command.clone())))
            .await
            .is_err()
        {
            self.hub.unregister(job, id).await;
            self.finish(
                job,
                agent,
                RunState::Offline,
                Outcome::failed("the agent went offline"),
                events,
            )
            .await;
            return;
        }
        if let Err(e) = self.store.run_started(job, id, now_ms()).await {
            tracing::warn!(exec_id = %job, agent_id = %id, error = %e, "Could not record an exec start.");
        }
        publish(JobEvent::Run {
            agent: id.clone(),
            hostname: agent.facts.hostname.clone(),
            state: RunState::Running,
        });

        let mut deadline = Instant::now() + Duration::from_millis(spec.timeout_ms) + RESULT_GRACE;
        let mut stored: u64 = 0;
        let mut clipped = false;
        let mut cancel_sent = false;
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        let outcome = loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(AgentExecEvent::Output { seq, stderr, data }) => {
                        let len = data.len() as u64;
                        if stored + len <= self.stored_output_cap {
                            stored += len;
                            if let Err(e) = self.store.append_output(job, id, seq, stderr, &data).await {
                                tracing::warn!(exec_id = %job, agent_id = %id, error = %e, "Could not store exec output.");
                            }
                        } else {
                            clipped = true;
                        }
                        publish(JobEvent::Output { agent: id.clone(), seq, stderr, data: Arc::new(data) });
                    }
                    Some(AgentExecEvent::Result { mut outcome, duplicate }) => {
                        if duplicate {
                            tracing::info!(exec_id = %job, agent_id = %id, "The agent had already run this exec; it answered with the stored result.");
                        }
                        outcome.truncated |= clipped;
                        break outcome;
                    }
                    None => break Outcome::failed("internal: the result route closed"),
                },
                () = cancel.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    let _ = session.push.send(Push::CancelExec { exec_id: job.to_string() }).await;
                    deadline = deadline.min(Instant::now() + CANCEL_GRACE);
                }
                _ = tick.tick() => {
                    // The agent reconnected: ask again on the new stream. It
                    // runs an exec id at most once, so this only recovers
                    // output and the result.
                    if let Some(now_session) = self.fleet.get(id).await
                        && now_session.conn != session.conn
                    {
                        session = now_session;
                        let _ = session.push.send(Push::Exec(Box::new(command.clone()))).await;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    break if cancel_sent {
                        Outcome { cancelled: true, ..Outcome::failed("cancelled; the agent did not confirm in time") }
                    } else {
                        Outcome::failed("no result from the agent in time (it may have lost its connection)")
                    };
                }
            }
        };
        self.hub.unregister(job, id).await;
        let state = if outcome.error.is_empty() || outcome.exit_code.is_some() {
            RunState::Done
        } else {
            RunState::Failed
        };
        self.finish(job, agent, state, outcome, events).await;
    }

    async fn finish(
        &self,
        job: &JobId,
        agent: &AgentRecord,
        state: RunState,
        outcome: Outcome,
        events: &broadcast::Sender<JobEvent>,
    ) {
        // The audit entry first: whoever sees the run finished (a live feed,
        // or the stored run a late subscriber reads) finds its entry too.
        audit::record(
            &self.store,
            "agent",
            "exec.finish",
            &format!("agent:{}", agent.id),
            json!({
                "exec_id": job.as_str(), "hostname": agent.facts.hostname, "state": state.as_str(),
                "exit_code": outcome.exit_code, "signal": outcome.signal, "duration_ms": outcome.duration_ms,
                "timed_out": outcome.timed_out, "cancelled": outcome.cancelled, "error": outcome.error,
            }),
        )
        .await;
        if let Err(e) = self
            .store
            .finish_run(job, &agent.id, state, &outcome, now_ms())
            .await
        {
            tracing::error!(exec_id = %job, agent_id = %agent.id, error = %e, "Could not store an exec result.");
        }
        let _ = events.send(JobEvent::Run {
            agent: agent.id.clone(),
            hostname: agent.facts.hostname.clone(),
            state,
        });
        let _ = events.send(JobEvent::Result {
            agent: agent.id.clone(),
            outcome,
        });
    }

    /// Cancels a running job (kills every run's process group); false if it already finished.
    pub async fn cancel(&self, job: &JobId, actor: &str) -> bool {
        match self.hub.job(job).await {
            Some(live) => {
                live.cancel.cancel();
                audit::record(
                    &self.store,
                    actor,
                    "exec.cancel",
                    &format!("exec:{job}"),
                    json!({}),
                )
                .await;
                true
            }
            None => false,
        }
    }

    /// The live feed of a running job.
    pub async fn subscribe(&self, job: &JobId) -> Option<broadcast::Receiver<JobEvent>> {
        self.hub.job(job).await.map(|l| l.events.subscribe())
    }
}
