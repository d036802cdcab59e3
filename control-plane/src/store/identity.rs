//! Users, memberships, sessions and the sign-in throttle.

use super::{Store, StoreError};
use crate::identity::{Role, Session, User, UserId};

type UserRow = (String, String, Option<String>, i64, Option<String>);

fn user_from_row(r: UserRow) -> (User, Option<String>) {
    let role = r.4.as_deref().and_then(Role::parse).unwrap_or(Role::Viewer);
    (
        User {
            id: UserId::from_stored(r.0),
            username: r.1,
            role,
            created_at_ms: r.3,
        },
        r.2,
    )
}

impl Store {
    pub async fn user_count(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Creates the user and its organization-wide membership.
    pub async fn create_user(&self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING",
        )
        .bind(user.id.as_str())
        .bind(&user.username)
        .bind(password_hash)
        .bind(user.created_at_ms)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "user {:?} already exists",
                user.username
            )));
        }
        sqlx::query("INSERT INTO memberships (user_id, project_id, role) VALUES ($1, '', $2)")
            .bind(user.id.as_str())
            .bind(user.role.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
            .bind(password_hash)
            .bind(username)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() > 0 {
            // A new password ends every session of the user.
            sqlx::query(
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = $1)",
            )
            .bind(username)
            .execute(&self.pool)
            .await?;
        }
        Ok(r.rows_affected() > 0)
    }

    /// An enabled user and its password hash.
    pub async fn user_with_hash(
        &self,
        username: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT u.id, u.username, u.password_hash, u.created_at, m.role FROM users u \
             LEFT JOIN memberships m ON m.user_id = u.id AND m.project_id = '' \
             WHERE u.username = $1 AND u.disabled_at IS NULL",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(user_from_row))
    }

    pub async fn locked_until(
        &self,
        username: &str,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT locked_until FROM login_throttle WHERE username = $1 AND locked_until > $2",
        )
        .bind(username)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// Counts a failure; returns the lock expiry when this failure locks the
    /// username. Failures older than the lockout window are forgotten.
    pub async fn record_login_failure(
        &self,
        username: &str,
        now_ms: i64,
        max: i64,
        lock_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (failures,): (i64,) = sqlx::query_as(
            "INSERT INTO login_throttle (username, failures, updated_at) VALUES ($1, 1, $2) \
             ON CONFLICT (username) DO UPDATE SET \
               failures = CASE WHEN login_throttle.updated_at < $3 THEN 1 ELSE login_throttle.failures + 1 END, \
               updated_at = $2 \
             RETURNING failures",
        )
        .bind(username)
        .bind(now_ms)
        .bind(now_ms - lock_ms)
        .fetch_one(&self.pool)
        .await?;
        if failures < max {
            return Ok(None);
        }
        let until = now_ms.saturating_add(lock_ms);
        sqlx::query(
            "UPDATE login_throttle SET failures = 0, locked_until = $1 WHERE username = $2",
        )
        .bind(until)
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(Some(until))
    }

    pub async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_throttle WHERE username = $1")
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn create_session(
        &self,
        s: &Session,
        method: &str,
        remote_addr: &str,
        user_agent: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, auth_method, created_at, authenticated_at, last_seen_at, expires_at, remote_addr, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $5, $5, $6, $7, $8)",
        )
        .bind(&s.id_hash)
        .bind(s.user.id.as_str())
        .bind(&s.csrf_token)
        .bind(method)
        .bind(s.authenticated_at_ms)
        .bind(s.expires_at_ms)
        .bind(remote_addr)
        .bind(user_agent)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A session that has not expired, with its (enabled) user.
    pub async fn session(&self, id_hash: &str, now_ms: i64) -> Result<Option<Session>, StoreError> {
        type Row = (
            String,
            String,
            i64,
            i64,
            i64,
            String,
            String,
            i64,
            Option<String>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT s.id_hash, s.csrf_token, s.authenticated_at, s.last_seen_at, s.expires_at, u.id, u.username, u.created_at, m.role \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             LEFT JOIN memberships m ON m.user_id = u.id AND m.project_id = '' \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
        )
        .bind(id_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Session {
            id_hash: r.0,
            csrf_token: r.1,
            authenticated_at_ms: r.2,
            last_seen_ms: r.3,
            expires_at_ms: r.4,
            user: User {
                id: UserId::from_stored(r.5),
                username: r.6,
                created_at_ms: r.7,
                role: r.8.as_deref().and_then(Role::parse).unwrap_or(Role::Viewer),
            },
        }))
    }

    pub async fn touch_session(
        &self,
        id_hash: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE id_hash = $3")
            .bind(now_ms)
            .bind(expires_at_ms)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets expired sessions and stale sign-in failures.
    pub async fn prune_identity(&self, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM login_throttle WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until < $1)")
            .bind(now_ms - 86_400_000)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
