//! The collector: samples the host on a fixed tick, keeps the last hour in
//! memory, turns samples into summaries for the outbox, and feeds full-rate
//! samples to the link while the control plane asks for them.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::enroll::now_ms;
use crate::metrics::{ProcessSnapshot, Ring, Sample, Summarizer, SummaryPoint};
use crate::sampler::{Sampler, SamplerError};

/// Process snapshots are taken this often (they cost milliseconds).
const PROCESS_EVERY: Duration = Duration::from_secs(10);
/// When full-rate starts, this much history is sent first so a chart starts full.
const LIVE_BACKFILL_MS: i64 = 120_000;
const LIVE_CHUNK: usize = 30;

pub struct Outputs {
    pub summaries: mpsc::Sender<SummaryPoint>,
    pub live: mpsc::Sender<Vec<SummaryPoint>>,
    pub processes: mpsc::Sender<ProcessSnapshot>,
}

pub struct Collector {
    sampler: Sampler,
    summarizer: Summarizer,
    ring: Ring,
    interval: Duration,
    out: Outputs,
    full_rate: watch::Receiver<bool>,
}

impl Collector {
    pub fn new(
        config: &Config,
        out: Outputs,
        full_rate: watch::Receiver<bool>,
    ) -> Result<Self, SamplerError> {
        let window = u32::try_from(config.summary_interval.as_millis()).unwrap_or(10_000);
        let ring_len =
            (config.history.as_millis() / config.sample_interval.as_millis().max(1)) as usize;
        Ok(Self {
            sampler: Sampler::new()?,
            summarizer: Summarizer::new(window),
            ring: Ring::new(ring_len.max(1)),
            interval: config.sample_interval,
            out,
            full_rate,
        })
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_processes: Option<Instant> = None;
        let mut sample = Sample::default();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = self.full_rate.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    if *self.full_rate.borrow_and_update() {
                        self.backfill_live();
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            let now = now_ms();
            self.sampler.sample_into(now, &mut sample);
            self.ring.push(&sample);
            if *self.full_rate.borrow() {
                let point = self.ring.since_limited(now, self.sampler.names(), 1);
                let _ = self.out.live.try_send(point);
            }
            if let Some(summary) = self.summarizer.push(&sample, self.sampler.names())
                && self.out.summaries.send(summary).await.is_err()
            {
                break;
            }
            if last_processes.is_none_or(|t| t.elapsed() >= PROCESS_EVERY) {
                last_processes = Some(Instant::now());
                let snapshot = self.sampler.processes(now);
                let _ = self.out.processes.try_send(snapshot);
            }
        }
        tracing::debug!("Collector stopped.");
    }

    /// Sends the recent history in chunks, dropping what the link cannot take.
    fn backfill_live(&self) {
        let mut from = now_ms() - LIVE_BACKFILL_MS;
        loop {
            let chunk = self
                .ring
                .since_limited(from, self.sampler.names(), LIVE_CHUNK);
            let Some(last) = chunk.last() else { break };
            from = last.ts_ms + 1;
            let full = chunk.len() < LIVE_CHUNK;
            if self.out.live.try_send(chunk).is_err() || full {
                break;
            }
        }
    }
}
