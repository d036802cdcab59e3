//! The audit log table: appends that extend the hash chain, and reads.

use super::{Backend, Store, StoreError};
use crate::audit::{Entry, chain_hash};

type Row = (i64, i64, String, String, String, String, String, String);

fn entry(r: Row) -> Entry {
    Entry {
        id: r.0,
        at_ms: r.1,
        actor: r.2,
        action: r.3,
        target: r.4,
        detail: r.5,
        prev_hash: r.6,
        hash: r.7,
    }
}

impl Store {
    /// Appends one entry, chained to the last. Appends are serialized (SQLite
    /// by its write lock, PostgreSQL by an advisory lock) so the chain never forks.
    pub async fn append_audit(
        &self,
        at_ms: i64,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<Entry, StoreError> {
        let mut tx = self.pool.begin().await?;
        match self.backend {
            Backend::Postgres => {
                sqlx::query("SELECT pg_advisory_xact_lock(7474701)")
                    .execute(&mut *tx)
                    .await?;
            }
            Backend::Sqlite => {
                // Take the write lock before reading the chain's tail.
                sqlx::query("UPDATE audit_log SET id = id WHERE id = -1")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (prev_id, prev_hash) = last.unwrap_or((0, String::new()));
        let id = prev_id + 1;
        let hash = chain_hash(&prev_hash, id, at_ms, actor, action, target, detail);
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, target, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(at_ms)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Entry {
            id,
            at_ms,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
            prev_hash,
            hash,
        })
    }

    /// Newest first, entries with id < `before`.
    pub async fn audit_page(&self, limit: i64, before: i64) -> Result<Vec<Entry>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at, actor, action, target, detail, prev_hash, hash FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(entry).collect())
    }

    /// Oldest first, entries with id > `after`.
    pub async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<Entry>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at, actor, action, target, detail, prev_hash, hash FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(entry).collect())
    }
}
