//! Exec jobs, per-agent runs and their stored output.

use super::{Store, StoreError, i64_of, u64_of};
use crate::exec::{JobId, Outcome, RunState};
use crate::fleet::AgentId;

/// A run as stored.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub agent_id: String,
    pub hostname: String,
    pub state: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub created_at_ms: i64,
    pub created_by: String,
    pub spec_json: String,
    pub target_json: String,
    pub finished_at_ms: Option<i64>,
    pub runs: Vec<RunRow>,
}

#[derive(Debug, Clone)]
pub struct JobSummary {
    pub id: String,
    pub created_at_ms: i64,
    pub created_by: String,
    pub spec_json: String,
    pub agents: i64,
    pub ok: i64,
    pub failed: i64,
    pub running: i64,
}

/// A job to record, with one pending run per (agent, hostname).
pub struct NewJob<'a> {
    pub job: &'a JobId,
    pub now_ms: i64,
    pub actor: &'a str,
    pub spec_json: &'a str,
    pub target_json: &'a str,
    pub concurrency: u32,
    pub runs: &'a [(AgentId, String)],
}

type SummaryTuple = (String, i64, String, String, i64, i64, i64, i64);

type RunTuple = (
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    i64,
    String,
    i64,
);

fn run_row(r: RunTuple) -> RunRow {
    RunRow {
        agent_id: r.0,
        hostname: r.1,
        state: r.2,
        outcome: Outcome {
            exit_code: r.3.and_then(|v| i32::try_from(v).ok()),
            signal: r.4.and_then(|v| i32::try_from(v).ok()),
            duration_ms: u64_of(r.5.unwrap_or(0)),
            timed_out: r.6 != 0,
            cancelled: r.7 != 0,
            truncated: r.8 != 0,
            error: r.9,
            output_bytes: u64_of(r.10),
        },
    }
}

impl Store {
    pub async fn create_job(&self, new: &NewJob<'_>) -> Result<(), StoreError> {
        let NewJob {
            job,
            now_ms,
            actor,
            spec_json,
            target_json,
            concurrency,
            runs,
        } = *new;
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO exec_jobs (id, created_at, created_by, spec, target, concurrency) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(job.as_str())
            .bind(now_ms)
            .bind(actor)
            .bind(spec_json)
            .bind(target_json)
            .bind(i64::from(concurrency))
            .execute(&mut *tx)
            .await?;
        for (agent, hostname) in runs {
            sqlx::query(
                "INSERT INTO exec_runs (job_id, agent_id, hostname, state) VALUES ($1, $2, $3, $4)",
            )
            .bind(job.as_str())
            .bind(agent.as_str())
            .bind(hostname)
            .bind(RunState::Pending.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn run_started(
        &self,
        job: &JobId,
        agent: &AgentId,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE exec_runs SET state = $1, started_at = $2 WHERE job_id = $3 AND agent_id = $4",
        )
        .bind(RunState::Running.as_str())
        .bind(now_ms)
        .bind(job.as_str())
        .bind(agent.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn finish_run(
        &self,
        job: &JobId,
        agent: &AgentId,
        state: RunState,
        o: &Outcome,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE exec_runs SET state = $1, exit_code = $2, signal = $3, duration_ms = $4, timed_out = $5, cancelled = $6, \
             truncated = $7, error = $8, output_bytes = $9, finished_at = $10 WHERE job_id = $11 AND agent_id = $12",
        )
        .bind(state.as_str())
        .bind(o.exit_code.map(i64::from))
        .bind(o.signal.map(i64::from))
        .bind(i64_of(o.duration_ms))
        .bind(i64::from(o.timed_out))
        .bind(i64::from(o.cancelled))
        .bind(i64::from(o.truncated))
        .bind(&o.error)
        .bind(i64_of(o.output_bytes))
        .bind(now_ms)
        .bind(job.as_str())
        .bind(agent.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores one chunk; a re-sent chunk (same seq) is ignored.
    pub async fn append_output(
        &self,
        job: &JobId,
        agent: &AgentId,
        seq: u64,
        stderr: bool,
        data: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO exec_output (job_id, agent_id, seq, stream, data) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, agent_id, seq) DO NOTHING",
        )
        .bind(job.as_str())
        .bind(agent.as_str())
        .bind(i64_of(seq))
        .bind(i64::from(stderr))
        .bind(data)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn finish_job(&self, job: &JobId, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE exec_jobs SET finished_at = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(job.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// After a restart, runs that were in flight cannot be followed any more:
    /// they are marked failed so no job looks running forever.
    pub async fn fail_interrupted_jobs(&self, now_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE exec_runs SET state = 'failed', error = 'the control plane restarted while this ran; check the host', finished_at = $1 \
             WHERE state IN ('pending', 'running')",
        )
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        sqlx::query("UPDATE exec_jobs SET finished_at = $1 WHERE finished_at IS NULL")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn get_job(&self, job: &JobId) -> Result<Option<JobRow>, StoreError> {
        let row: Option<(String, i64, String, String, String, Option<i64>)> =
            sqlx::query_as("SELECT id, created_at, created_by, spec, target, finished_at FROM exec_jobs WHERE id = $1")
                .bind(job.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else { return Ok(None) };
        let runs: Vec<RunTuple> = sqlx::query_as(
            "SELECT agent_id, hostname, state, exit_code, signal, duration_ms, timed_out, cancelled, truncated, error, output_bytes \
             FROM exec_runs WHERE job_id = $1 ORDER BY hostname, agent_id",
        )
        .bind(job.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(JobRow {
            id: r.0,
            created_at_ms: r.1,
            created_by: r.2,
            spec_json: r.3,
            target_json: r.4,
            finished_at_ms: r.5,
            runs: runs.into_iter().map(run_row).collect(),
        }))
    }

    /// Stored output of a job: (agent, seq, stderr, data), in order per agent.
    pub async fn job_output(
        &self,
        job: &JobId,
    ) -> Result<Vec<(String, u64, bool, Vec<u8>)>, StoreError> {
        let rows: Vec<(String, i64, i64, Vec<u8>)> =
            sqlx::query_as("SELECT agent_id, seq, stream, data FROM exec_output WHERE job_id = $1 ORDER BY agent_id, seq")
                .bind(job.as_str())
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(a, seq, stream, data)| (a, u64_of(seq), stream != 0, data))
            .collect())
    }

    pub async fn list_jobs(&self, limit: i64) -> Result<Vec<JobSummary>, StoreError> {
        let rows: Vec<SummaryTuple> = sqlx::query_as(
            "SELECT j.id, j.created_at, j.created_by, j.spec, COUNT(r.agent_id), \
               COALESCE(SUM(CASE WHEN r.state = 'done' AND r.exit_code = 0 AND r.timed_out = 0 AND r.cancelled = 0 THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN r.state IN ('offline', 'failed') OR (r.state = 'done' AND (r.exit_code IS NULL OR r.exit_code <> 0 OR r.timed_out <> 0 OR r.cancelled <> 0)) THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN r.state IN ('pending', 'running') THEN 1 ELSE 0 END), 0) \
             FROM exec_jobs j LEFT JOIN exec_runs r ON r.job_id = j.id \
             GROUP BY j.id, j.created_at, j.created_by, j.spec ORDER BY j.created_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| JobSummary {
                id: r.0,
                created_at_ms: r.1,
                created_by: r.2,
                spec_json: r.3,
                agents: r.4,
                ok: r.5,
                failed: r.6,
                running: r.7,
            })
            .collect())
    }
}
