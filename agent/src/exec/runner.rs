//! The exec runner: one owner task that holds the journal, the runs in
//! progress and the queue. The link hands it requests through a bounded
//! channel (`Handle`) and reads `Event`s back from another.
//!
//! Exactly once: an id the journal knows as finished is answered with the
//! stored outcome (`duplicate`); an id running or queued now is left alone
//! (its output keeps flowing); a new id is recorded as started, durably,
//! before its process is spawned; an id that was started when the agent
//! died was closed at start-up with an error and is answered with that.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::journal::{Entry, Journal, JournalError};
use super::run::{self, Context};
use super::{Event, ExecError, ExecId, ExecSpec, Outcome, Settings};
use crate::spawn::BaseEnv;

/// Requests waiting for the runner, at most.
const INBOX: usize = 1024;
/// Runs waiting for a free slot, at most; more are refused.
const QUEUE: usize = 4096;
/// Finished outcomes waiting for the link, at most (they are on disk too).
const RESULTS: usize = 4096;

enum Request {
    Run(ExecSpec),
    Cancel(ExecId),
}

/// Hands requests to the runner; never blocks.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
}

impl Handle {
    pub fn run(&self, spec: ExecSpec) -> Result<(), ExecError> {
        self.send(Request::Run(spec))
    }

    pub fn cancel(&self, id: ExecId) -> Result<(), ExecError> {
        self.send(Request::Cancel(id))
    }

    fn send(&self, r: Request) -> Result<(), ExecError> {
        self.tx.try_send(r).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ExecError::Busy,
            mpsc::error::TrySendError::Closed(_) => ExecError::Stopped,
        })
    }
}

pub struct Runner {
    settings: Settings,
    base: BaseEnv,
    journal: Journal,
    inbox: mpsc::Receiver<Request>,
    events: mpsc::Sender<Event>,
    running: HashMap<ExecId, CancellationToken>,
    queue: VecDeque<ExecSpec>,
    results: VecDeque<Outcome>,
    done_tx: mpsc::Sender<Outcome>,
    done_rx: mpsc::Receiver<Outcome>,
    tracker: TaskTracker,
}

impl Runner {
    /// Opens the journal in `dir`. `events` carries output and outcomes to
    /// the link; its capacity is how much output may wait for the link.
    pub fn open(
        dir: &Path,
        settings: Settings,
        base: BaseEnv,
        events: mpsc::Sender<Event>,
    ) -> Result<(Self, Handle), JournalError> {
        let journal = Journal::open(dir, settings.history)?;
        let (tx, inbox) = mpsc::channel(INBOX);
        let (done_tx, done_rx) = mpsc::channel(settings.max_concurrent.max(1));
        let runner = Self {
            settings,
            base,
            journal,
            inbox,
            events,
            running: HashMap::new(),
            queue: VecDeque::new(),
            results: VecDeque::new(),
            done_tx,
            done_rx,
            tracker: TaskTracker::new(),
        };
        Ok((runner, Handle { tx }))
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let events = self.events.clone();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(o) = self.done_rx.recv() => self.finished(o, &shutdown),
                r = self.inbox.recv() => match r {
                    Some(Request::Run(spec)) => self.submit(spec, &shutdown),
                    Some(Request::Cancel(id)) => self.cancel(&id),
                    None => break,
                },
                permit = events.reserve(), if !self.results.is_empty() => match (permit, self.results.pop_front()) {
                    (Ok(p), Some(o)) => p.send(Event::Finished(o)),
                    _ => break,
                },
            }
        }
        // Running commands saw the shutdown too: they are being killed.
        // Record how they ended so a re-sent id is answered, not re-run.
        self.tracker.close();
        let wait = async {
            while !self.running.is_empty() {
                match self.done_rx.recv().await {
                    Some(o) => self.finished(o, &shutdown),
                    None => break,
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), wait).await;
        tracing::info!(unfinished = self.running.len(), "Exec runner stopped.");
    }

    fn submit(&mut self, spec: ExecSpec, shutdown: &CancellationToken) {
        let id = spec.id.clone();
        if self.running.contains_key(&id) || self.queue.iter().any(|q| q.id == id) {
            tracing::debug!(exec_id = %id, "Exec re-sent while it runs; not starting it again.");
            return;
        }
        if let Some(Entry::Finished(stored)) = self.journal.get(&id) {
            tracing::debug!(exec_id = %id, "Exec re-sent after it finished; answering with the stored result.");
            let mut o = stored.clone();
            o.duplicate = true;
            self.push_result(o);
            return;
        }
        if self.running.len() < self.settings.max_concurrent {
            self.start(spec, shutdown);
        } else if self.queue.len() < QUEUE {
            self.queue.push_back(spec);
        } else {
            self.push_result(Outcome::failed(
                id,
                format!("too many commands waiting on this agent ({QUEUE}); try again later"),
            ));
        }
    }

    fn start(&mut self, spec: ExecSpec, shutdown: &CancellationToken) {
        let id = spec.id.clone();
        if let Err(e) = self.journal.started(&id) {
            tracing::error!(exec_id = %id, error = %e, "Cannot record an exec; not running it.");
            self.push_result(Outcome::failed(id, format!("cannot record the run: {e}")));
            return;
        }
        let cancel = shutdown.child_token();
        self.running.insert(id, cancel.clone());
        let ctx = Context {
            events: self.events.clone(),
            cancel,
            shutdown: shutdown.clone(),
            base: self.base.clone(),
        };
        let settings = self.settings.clone();
        let done = self.done_tx.clone();
        self.tracker.spawn(async move {
            let outcome = run::run(spec, &settings, ctx).await;
            let _ = done.send(outcome).await;
        });
    }

    fn cancel(&mut self, id: &ExecId) {
        if let Some(token) = self.running.get(id) {
            tracing::info!(exec_id = %id, "Cancelling a command.");
            token.cancel();
        } else if let Some(i) = self.queue.iter().position(|q| &q.id == id) {
            self.queue.remove(i);
            let mut o = Outcome::failed(id.clone(), "");
            o.cancelled = true;
            let recorded = self
                .journal
                .started(id)
                .and_then(|()| self.journal.finished(&o));
            if let Err(e) = recorded {
                tracing::error!(exec_id = %id, error = %e, "Cannot record a cancelled exec.");
            }
            self.push_result(o);
        }
    }

    fn finished(&mut self, o: Outcome, shutdown: &CancellationToken) {
        self.running.remove(&o.exec_id);
        if let Err(e) = self.journal.finished(&o) {
            tracing::error!(exec_id = %o.exec_id, error = %e, "Cannot record how an exec ended.");
        }
        tracing::info!(exec_id = %o.exec_id, exit_code = ?o.exit_code, signal = ?o.signal, duration_ms = o.duration_ms, timed_out = o.timed_out, cancelled = o.cancelled, "Command finished.");
        self.push_result(o);
        while self.running.len() < self.settings.max_concurrent && !shutdown.is_cancelled() {
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            self.start(next, shutdown);
        }
    }

    fn push_result(&mut self, o: Outcome) {
        if self.results.len() >= RESULTS
            && let Some(dropped) = self.results.pop_front()
        {
            tracing::warn!(exec_id = %dropped.exec_id, "Too many results waiting for the control plane; this one stays on disk until the id is re-sent.");
        }
        self.results.push_back(o);
    }
}
