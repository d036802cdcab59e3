//! Join tokens, and enrollment: the one transaction that redeems a token and
//! creates (or re-keys) an agent.

use super::{Store, StoreError};
use crate::enroll::{EnrollError, Enrolled, JoinToken, NewToken, RedeemError, TokenId};
use crate::fleet::{AgentId, HostFacts};
use crate::labels::Labels;
use crate::pki::{IssuedCert, PkiError, millis};
use crate::projects::ProjectId;

type TokenRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
);

macro_rules! token_columns {
    () => {
        "id, project_id, labels, description, uses_total, uses_left, created_at, expires_at, revoked_at"
    };
}

fn token_from_row(r: TokenRow) -> Option<JoinToken> {
    Some(JoinToken {
        id: TokenId::parse(&r.0)?,
        project: ProjectId::parse(&r.1).ok()?,
        labels: Labels::from_json(&r.2),
        description: r.3,
        uses_total: u32::try_from(r.4).unwrap_or(0),
        uses_left: u32::try_from(r.5).unwrap_or(0),
        created_at_ms: r.6,
        expires_at_ms: r.7,
        revoked_at_ms: r.8,
    })
}

impl Store {
    pub async fn create_token(
        &self,
        new: &NewToken,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<JoinToken, StoreError> {
        if !self.project_exists(&new.project).await? {
            return Err(StoreError::NotFound("project"));
        }
        let ttl_ms = i64::try_from(new.ttl.as_millis()).unwrap_or(i64::MAX);
        let token = JoinToken {
            id: TokenId::new(),
            project: new.project.clone(),
            labels: new.labels.clone(),
            description: new.description.clone(),
            uses_total: new.uses,
            uses_left: new.uses,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            revoked_at_ms: None,
        };
        sqlx::query(
            "INSERT INTO join_tokens (id, token_hash, project_id, labels, description, uses_total, uses_left, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(token.id.as_str())
        .bind(token_hash)
        .bind(token.project.as_str())
        .bind(token.labels.to_json())
        .bind(&token.description)
        .bind(i64::from(token.uses_total))
        .bind(i64::from(token.uses_left))
        .bind(token.created_at_ms)
        .bind(token.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(token)
    }

    pub async fn list_tokens(&self) -> Result<Vec<JoinToken>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM join_tokens ORDER BY created_at DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(token_from_row).collect())
    }

    pub async fn get_token(&self, id: &TokenId) -> Result<Option<JoinToken>, StoreError> {
        let row: Option<TokenRow> = sqlx::query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM join_tokens WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(token_from_row))
    }

    /// Revokes a token; `false` if it does not exist.
    pub async fn revoke_token(&self, id: &TokenId, now_ms: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE join_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
        )
        .bind(now_ms)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Redeems one use of the token whose hash is `token_hash` and, in the
    /// same transaction, creates or re-keys the agent of `machine_id` with the
    /// certificate `sign` issues for it.
    pub async fn enroll(
        &self,
        token_hash: &str,
        machine_id: &str,
        facts: &HostFacts,
        agent_version: &str,
        sign: impl FnOnce(&AgentId) -> Result<IssuedCert, PkiError>,
    ) -> Result<Enrolled, EnrollError> {
        let now = crate::pki::now_ms();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let redeemed: Option<(String, String)> = sqlx::query_as(
            "UPDATE join_tokens SET uses_left = uses_left - 1 \
             WHERE token_hash = $1 AND uses_left > 0 AND expires_at > $2 AND revoked_at IS NULL \
             RETURNING project_id, labels",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let Some((project, token_labels)) = redeemed else {
            drop(tx);
            return Err(self.why_not_redeemable(token_hash, now).await?.into());
        };
        let existing: Option<(String, String, String)> =
            sqlx::query_as("SELECT id, project_id, labels FROM agents WHERE machine_id = $1")
                .bind(machine_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        let token_labels = Labels::from_json(&token_labels);
        let (agent_id, labels, reenrolled) = match &existing {
            Some((_, enrolled, _)) if *enrolled != project => {
                return Err(EnrollError::WrongProject {
                    enrolled: enrolled.clone(),
                    token: project,
                });
            }
            Some((id, _, labels)) => {
                let id = AgentId::parse(id).ok_or(StoreError::NotFound("agent"))?;
                let mut labels = Labels::from_json(labels);
                labels.merge_missing(&token_labels);
                (id, labels, true)
            }
            None => (AgentId::new(), token_labels, false),
        };
        let cert = sign(&agent_id)?;
        let facts_json = serde_json::to_string(facts).unwrap_or_else(|_| "{}".into());
        if reenrolled {
            sqlx::query(
                "UPDATE agents SET hostname = $1, facts = $2, labels = $3, agent_version = $4, revoked_at = NULL WHERE id = $5",
            )
            .bind(&facts.hostname)
            .bind(&facts_json)
            .bind(labels.to_json())
            .bind(agent_version)
            .bind(agent_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            sqlx::query("UPDATE certificates SET revoked_at = $1 WHERE agent_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(agent_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        } else {
            sqlx::query(
                "INSERT INTO agents (id, project_id, machine_id, hostname, facts, labels, agent_version, enrolled_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(agent_id.as_str())
            .bind(&project)
            .bind(machine_id)
            .bind(&facts.hostname)
            .bind(&facts_json)
            .bind(labels.to_json())
            .bind(agent_version)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        }
        let not_after_ms = millis(cert.not_after);
        sqlx::query(
            "INSERT INTO certificates (serial, agent_id, issued_at, not_after) VALUES ($1, $2, $3, $4)",
        )
        .bind(&cert.serial)
        .bind(agent_id.as_str())
        .bind(now)
        .bind(not_after_ms)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Enrolled {
            agent_id,
            project: ProjectId::parse(&project).unwrap_or_else(|_| ProjectId::default_project()),
            labels,
            certificate_der: cert.der,
            not_after_ms,
            reenrolled,
        })
    }

    async fn why_not_redeemable(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<RedeemError, StoreError> {
        let row: Option<(i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT uses_left, expires_at, revoked_at FROM join_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => RedeemError::Unknown,
            Some((_, _, Some(_))) => RedeemError::Revoked,
            Some((_, expires, None)) if expires <= now => RedeemError::Expired,
            Some(_) => RedeemError::UsedUp,
        })
    }

    /// Records a certificate issued by renewal over the live stream.
    pub async fn record_cert(
        &self,
        agent: &AgentId,
        serial: &str,
        issued_at_ms: i64,
        not_after_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO certificates (serial, agent_id, issued_at, not_after) VALUES ($1, $2, $3, $4)")
            .bind(serial)
            .bind(agent.as_str())
            .bind(issued_at_ms)
            .bind(not_after_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets certificates that expired long ago.
    pub async fn prune_certs(&self, before_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM certificates WHERE not_after < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
