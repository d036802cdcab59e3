//! Metric points and their 1-minute rollups.

use std::collections::BTreeSet;

use super::{Store, StoreError, i64_of};
use crate::fleet::AgentId;
use crate::metrics::{self, Point, ROLLUP_MS, Stat};

/// One agent's batch, as the ingest task hands it over.
pub struct BatchRef<'a> {
    pub agent: &'a AgentId,
    pub seq: u64,
    pub points: &'a [Point],
}

impl Store {
    /// Stores batches in one transaction. A point already stored for the same
    /// (agent, timestamp) is skipped, so a re-sent batch changes nothing. The
    /// rollup of every minute that gained a point is recomputed from the
    /// points, which keeps rollups exact whatever order points arrive in.
    /// Returns how many points were new.
    pub async fn ingest(&self, batches: &[BatchRef<'_>]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut touched: BTreeSet<(&str, i64)> = BTreeSet::new();
        let mut inserted = 0;
        for b in batches {
            for p in b.points {
                let r = sqlx::query(
                    "INSERT INTO metric_points (agent_id, ts, payload) VALUES ($1, $2, $3) \
                     ON CONFLICT (agent_id, ts) DO NOTHING",
                )
                .bind(b.agent.as_str())
                .bind(p.ts_ms)
                .bind(metrics::encode(&p.stats))
                .execute(&mut *tx)
                .await?;
                if r.rows_affected() > 0 {
                    inserted += 1;
                    touched.insert((b.agent.as_str(), p.ts_ms.div_euclid(ROLLUP_MS) * ROLLUP_MS));
                }
            }
            sqlx::query(
                "UPDATE agents SET acked_seq = CASE WHEN acked_seq < $1 THEN $1 ELSE acked_seq END WHERE id = $2",
            )
            .bind(i64_of(b.seq))
            .bind(b.agent.as_str())
            .execute(&mut *tx)
            .await?;
        }
        for (agent, bucket) in touched {
            let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
                "SELECT payload FROM metric_points WHERE agent_id = $1 AND ts >= $2 AND ts < $3",
            )
            .bind(agent)
            .bind(bucket)
            .bind(bucket + ROLLUP_MS)
            .fetch_all(&mut *tx)
            .await?;
            let decoded: Vec<Vec<Stat>> = rows.iter().map(|r| metrics::decode(&r.0)).collect();
            let merged = metrics::merge_points(decoded.iter().map(Vec::as_slice));
            sqlx::query(
                "INSERT INTO metric_rollups (agent_id, bucket, payload) VALUES ($1, $2, $3) \
                 ON CONFLICT (agent_id, bucket) DO UPDATE SET payload = excluded.payload",
            )
            .bind(agent)
            .bind(bucket)
            .bind(metrics::encode(&merged))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Stored points of one agent with `from <= ts <= to`, oldest first.
    pub async fn points(
        &self,
        agent: &AgentId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Vec<Stat>)>, StoreError> {
        self.series_rows("SELECT ts, payload FROM metric_points WHERE agent_id = $1 AND ts >= $2 AND ts <= $3 ORDER BY ts", agent, from_ms, to_ms).await
    }

    /// 1-minute rollups of one agent with `from <= bucket <= to`, oldest first.
    pub async fn rollups(
        &self,
        agent: &AgentId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Vec<Stat>)>, StoreError> {
        self.series_rows("SELECT bucket, payload FROM metric_rollups WHERE agent_id = $1 AND bucket >= $2 AND bucket <= $3 ORDER BY bucket", agent, from_ms, to_ms).await
    }

    async fn series_rows(
        &self,
        sql: &'static str,
        agent: &AgentId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Vec<Stat>)>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(sql)
            .bind(agent.as_str())
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(ts, p)| (ts, metrics::decode(&p)))
            .collect())
    }

    /// The newest stored point of one agent.
    pub async fn latest_point(
        &self,
        agent: &AgentId,
    ) -> Result<Option<(i64, Vec<Stat>)>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT ts, payload FROM metric_points WHERE agent_id = $1 ORDER BY ts DESC LIMIT 1",
        )
        .bind(agent.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(ts, p)| (ts, metrics::decode(&p))))
    }

    /// Deletes points and rollups past their retention.
    pub async fn prune_metrics(
        &self,
        points_before_ms: i64,
        rollups_before_ms: i64,
    ) -> Result<(u64, u64), StoreError> {
        let p = sqlx::query("DELETE FROM metric_points WHERE ts < $1")
            .bind(points_before_ms)
            .execute(&self.pool)
            .await?;
        let r = sqlx::query("DELETE FROM metric_rollups WHERE bucket < $1")
            .bind(rollups_before_ms)
            .execute(&self.pool)
            .await?;
        Ok((p.rows_affected(), r.rows_affected()))
    }
}
