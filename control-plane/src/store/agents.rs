//! Agent rows: listing, connection bookkeeping, revocation and certificate checks.

use super::{Store, StoreError, u64_of};
use crate::fleet::{AgentId, AgentRecord, HostFacts};
use crate::labels::Labels;
use crate::projects::ProjectId;

type AgentRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
);

macro_rules! agent_columns {
    () => {
        "id, project_id, machine_id, facts, labels, agent_version, enrolled_at, last_seen_at, revoked_at, acked_seq"
    };
}

fn agent_from_row(r: AgentRow) -> Option<AgentRecord> {
    Some(AgentRecord {
        id: AgentId::parse(&r.0)?,
        project: ProjectId::parse(&r.1).ok()?,
        machine_id: r.2,
        facts: serde_json::from_str::<HostFacts>(&r.3).unwrap_or_default(),
        labels: Labels::from_json(&r.4),
        agent_version: r.5,
        enrolled_at_ms: r.6,
        last_seen_ms: r.7,
        revoked_at_ms: r.8,
        acked_seq: u64_of(r.9),
    })
}

/// Whether a presented client certificate may open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertCheck {
    Valid { acked_seq: u64 },
    AgentRevoked,
    CertRevoked,
    Unknown,
}

impl Store {
    pub async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let rows: Vec<AgentRow> = sqlx::query_as(concat!(
            "SELECT ",
            agent_columns!(),
            " FROM agents ORDER BY hostname, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(agent_from_row).collect())
    }

    /// (all agents, revoked agents).
    pub async fn agent_counts(&self) -> Result<(i64, i64), StoreError> {
        let row: (i64, i64) = sqlx::query_as("SELECT COUNT(*), COUNT(revoked_at) FROM agents")
            .fetch_one(&self.pool)
            .await?;
        Ok(row)
    }

    pub async fn get_agent(&self, id: &AgentId) -> Result<Option<AgentRecord>, StoreError> {
        let row: Option<AgentRow> = sqlx::query_as(concat!(
            "SELECT ",
            agent_columns!(),
            " FROM agents WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(agent_from_row))
    }

    /// Looks up the certificate an agent connected with.
    pub async fn check_cert(&self, agent: &AgentId, serial: &str) -> Result<CertCheck, StoreError> {
        let row: Option<(Option<i64>, Option<i64>, i64)> = sqlx::query_as(
            "SELECT a.revoked_at, c.revoked_at, a.acked_seq FROM certificates c \
             JOIN agents a ON a.id = c.agent_id WHERE c.serial = $1 AND c.agent_id = $2",
        )
        .bind(serial)
        .bind(agent.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => CertCheck::Unknown,
            Some((Some(_), _, _)) => CertCheck::AgentRevoked,
            Some((None, Some(_), _)) => CertCheck::CertRevoked,
            Some((None, None, acked)) => CertCheck::Valid {
                acked_seq: u64_of(acked),
            },
        })
    }

    /// Records what an agent said in its hello.
    pub async fn agent_connected(
        &self,
        id: &AgentId,
        facts: &HostFacts,
        agent_version: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE agents SET hostname = $1, facts = $2, agent_version = $3, last_seen_at = $4 WHERE id = $5",
        )
        .bind(&facts.hostname)
        .bind(serde_json::to_string(facts).unwrap_or_else(|_| "{}".into()))
        .bind(agent_version)
        .bind(now_ms)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks agents as seen now (batched, one transaction).
    pub async fn touch_agents(&self, ids: &[AgentId], now_ms: i64) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query("UPDATE agents SET last_seen_at = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Revokes an agent and every certificate it holds. `None` if there is no
    /// such agent; revoking twice keeps the first time.
    pub async fn revoke_agent(
        &self,
        id: &AgentId,
        now_ms: i64,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r =
            sqlx::query("UPDATE agents SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(now_ms)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE certificates SET revoked_at = $1 WHERE agent_id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get_agent(id).await
    }

    pub async fn set_agent_labels(
        &self,
        id: &AgentId,
        labels: &Labels,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE agents SET labels = $1 WHERE id = $2")
            .bind(labels.to_json())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
