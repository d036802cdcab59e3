//! Terminal sessions and their recordings. Recording parts go to files
//! beside a SQLite database ([`super::recording_files`]) and into
//! `terminal_recordings` on PostgreSQL; parts stored in the table by earlier
//! versions still play back, before any in a file.

use super::{Store, StoreError, i64_of, u64_of};
use crate::fleet::AgentId;

/// Where a session's recording stands.
#[derive(Debug, Clone)]
pub struct RecordingState {
    pub started_at_ms: i64,
    pub recorded_upto: u64,
    /// Whether any part is stored (the first begins with the header).
    pub has_parts: bool,
}

#[derive(Debug, Clone)]
pub struct TerminalSessionRow {
    pub id: String,
    pub agent_id: String,
    pub user: String,
    pub started_at_ms: i64,
    pub last_attached_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub exit_code: Option<i64>,
    pub recorded_bytes: u64,
}

type Row = (
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
);

fn row(r: Row) -> TerminalSessionRow {
    TerminalSessionRow {
        id: r.0,
        agent_id: r.1,
        user: r.2,
        started_at_ms: r.3,
        last_attached_ms: r.4,
        ended_at_ms: r.5,
        exit_code: r.6,
        recorded_bytes: u64_of(r.7),
    }
}

impl Store {
    /// Creates the session row (a no-op if it exists); returns whether it was new.
    pub async fn open_terminal_session(
        &self,
        id: &str,
        agent: &AgentId,
        user: &str,
        now_ms: i64,
        cols: u32,
        rows: u32,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO terminal_sessions (id, agent_id, user_name, started_at, last_attached_at, cols, rows) VALUES ($1, $2, $3, $4, $4, $5, $6) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(agent.as_str())
        .bind(user)
        .bind(now_ms)
        .bind(i64::from(cols))
        .bind(i64::from(rows))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn terminal_session(
        &self,
        id: &str,
    ) -> Result<Option<TerminalSessionRow>, StoreError> {
        let r: Option<Row> = sqlx::query_as(
            "SELECT id, agent_id, user_name, started_at, last_attached_at, ended_at, exit_code, recorded_bytes FROM terminal_sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.map(row))
    }

    pub async fn terminal_sessions(
        &self,
        agent: &AgentId,
        limit: i64,
    ) -> Result<Vec<TerminalSessionRow>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, agent_id, user_name, started_at, last_attached_at, ended_at, exit_code, recorded_bytes FROM terminal_sessions \
             WHERE agent_id = $1 ORDER BY started_at DESC LIMIT $2",
        )
        .bind(agent.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(row).collect())
    }

    pub async fn touch_terminal_session(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE terminal_sessions SET last_attached_at = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn end_terminal_session(
        &self,
        id: &str,
        exit_code: Option<i32>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE terminal_sessions SET ended_at = COALESCE(ended_at, $1), exit_code = $2 WHERE id = $3")
            .bind(now_ms)
            .bind(exit_code.map(i64::from))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn recording_state(&self, id: &str) -> Result<RecordingState, StoreError> {
        let (started, recorded, file_bytes): (i64, i64, i64) = sqlx::query_as(
            "SELECT started_at, recorded_bytes, recording_file_bytes FROM terminal_sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("terminal session"))?;
        let in_table: Option<(i64,)> =
            sqlx::query_as("SELECT part FROM terminal_recordings WHERE session_id = $1 LIMIT 1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let in_file = match &self.recordings {
            Some(files) => files.has_parts(id, u64_of(file_bytes)).await?,
            None => false,
        };
        Ok(RecordingState {
            started_at_ms: started,
            recorded_upto: u64_of(recorded),
            has_parts: in_table.is_some() || in_file,
        })
    }

    /// Appends recording parts, in order, and moves the recorded offset
    /// (never back: a re-attached recorder may store after the old one's
    /// last part): the parts are stored before the offset moves, and all of
    /// them and the offset count, or none. Storing several at once is
    /// cheaper than one by one (one sync, one transaction).
    pub async fn append_recording(
        &self,
        id: &str,
        parts: Vec<Vec<u8>>,
        recorded_upto: u64,
    ) -> Result<(), StoreError> {
        if parts.is_empty() {
            return Ok(());
        }
        // An empty part would make the whole recording undecodable.
        if parts.iter().any(Vec::is_empty) {
            return Err(StoreError::Conflict(
                "an empty recording part cannot be stored".into(),
            ));
        }
        if let Some(files) = &self.recordings {
            let _one_at_a_time = files.lock(id).await;
            let committed = self
                .recording_file_bytes(id)
                .await?
                .ok_or(StoreError::NotFound("terminal session"))?;
            let committed = files.write(id, committed, parts).await?;
            let moved = sqlx::query(
                "UPDATE terminal_sessions SET recorded_bytes = CASE WHEN recorded_bytes > $1 THEN recorded_bytes ELSE $1 END, \
                 recording_file_bytes = $2 WHERE id = $3",
            )
            .bind(i64_of(recorded_upto))
            .bind(i64_of(committed))
            .bind(id)
            .execute(&self.pool)
            .await?;
            if moved.rows_affected() == 0 {
                return Err(StoreError::NotFound("terminal session"));
            }
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE terminal_sessions SET recorded_bytes = CASE WHEN recorded_bytes > $1 THEN recorded_bytes ELSE $1 END WHERE id = $2",
        )
        .bind(i64_of(recorded_upto))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Err(StoreError::NotFound("terminal session"));
        }
        for data in parts {
            sqlx::query(
                "INSERT INTO terminal_recordings (session_id, part, data) \
                 SELECT $1, COALESCE(MAX(part) + 1, 0), $2 FROM terminal_recordings WHERE session_id = $1",
            )
            .bind(id)
            .bind(data)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A session's stored parts, in order.
    pub async fn recording_parts(&self, id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
            "SELECT data FROM terminal_recordings WHERE session_id = $1 ORDER BY part",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut parts: Vec<Vec<u8>> = rows.into_iter().map(|r| r.0).collect();
        if let Some(files) = &self.recordings
            && let Some(committed) = self.recording_file_bytes(id).await?
        {
            parts.extend(files.read(id, committed).await?);
        }
        Ok(parts)
    }

    /// How many bytes of the session's recording file are committed; `None`
    /// if there is no such session.
    async fn recording_file_bytes(&self, id: &str) -> Result<Option<u64>, StoreError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT recording_file_bytes FROM terminal_sessions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(n,)| u64_of(n)))
    }
}
