//! The ingest task: the single writer of metric points. Sessions hand it
//! batches; it stores many at once in one transaction and then acks each
//! batch to its agent, so an ack always means "durable".

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Point;
use crate::fleet::{AgentId, Push};
use crate::store::{BatchRef, Store};
use crate::telemetry::Telemetry;

/// Most batches written in one transaction.
const MAX_JOBS_PER_TX: usize = 512;

pub struct IngestJob {
    pub agent: AgentId,
    pub seq: u64,
    pub points: Vec<Point>,
    /// Where the ack goes once the batch is durable.
    pub ack: mpsc::Sender<Push>,
}

#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<IngestJob>,
}

#[derive(Debug, thiserror::Error)]
#[error("the control plane is shutting down")]
pub struct IngestClosed;

impl Ingest {
    /// Queues a batch; waits (backpressure) while the writer is behind.
    pub async fn submit(&self, job: IngestJob) -> Result<(), IngestClosed> {
        self.tx.send(job).await.map_err(|_| IngestClosed)
    }
}

pub fn spawn_ingest(
    store: Store,
    telemetry: Arc<Telemetry>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Ingest {
    let (tx, rx) = mpsc::channel(4096);
    tracker.spawn(run(store, telemetry, rx, shutdown));
    Ingest { tx }
}

async fn run(
    store: Store,
    telemetry: Arc<Telemetry>,
    mut rx: mpsc::Receiver<IngestJob>,
    shutdown: CancellationToken,
) {
    let mut jobs: Vec<IngestJob> = Vec::with_capacity(MAX_JOBS_PER_TX);
    loop {
        let first = tokio::select! {
            job = rx.recv() => job,
            () = shutdown.cancelled() => None,
        };
        let Some(first) = first else { break };
        jobs.push(first);
        while jobs.len() < MAX_JOBS_PER_TX {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        write(&store, &telemetry, &mut jobs).await;
    }
    // Flush whatever the sessions queued before they stopped.
    rx.close();
    while let Some(job) = rx.recv().await {
        jobs.push(job);
        if jobs.len() >= MAX_JOBS_PER_TX {
            write(&store, &telemetry, &mut jobs).await;
        }
    }
    write(&store, &telemetry, &mut jobs).await;
    tracing::debug!("Metric ingest stopped.");
}

async fn write(store: &Store, telemetry: &Telemetry, jobs: &mut Vec<IngestJob>) {
    if jobs.is_empty() {
        return;
    }
    let refs: Vec<BatchRef<'_>> = jobs
        .iter()
        .map(|j| BatchRef {
            agent: &j.agent,
            seq: j.seq,
            points: &j.points,
        })
        .collect();
    match store.ingest(&refs).await {
        Ok(new_points) => {
            telemetry.points_ingested.add(new_points);
            telemetry.batches_ingested.add(jobs.len() as u64);
            for job in jobs.iter() {
                // A full or closed session queue only delays the ack: the agent
                // re-sends and the store skips what it already has.
                let _ = job.ack.try_send(Push::MetricAck { up_to_seq: job.seq });
            }
        }
        Err(e) => {
            telemetry.ingest_errors.add(1);
            tracing::error!(error = %e, batches = jobs.len(), "Could not store metric batches; agents will re-send them.");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    jobs.clear();
}
