//! The store: the only module that runs SQL. SQLite (embedded default, WAL)
//! or PostgreSQL, through one set of portable queries on sqlx's `Any` driver;
//! each backend has its own migrations.

mod agents;
mod audit;
mod exec;
mod identity;
mod metrics;
mod recording_files;
mod terminal;
mod tokens;

pub use agents::CertCheck;
pub use exec::{JobRow, JobSummary, NewJob, RunRow};
pub use metrics::BatchRef;
pub use terminal::{RecordingState, TerminalSessionRow};

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("cannot use the recording file {}: {source}", path.display())]
    RecordingFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite on a file: terminal recordings go to files beside it.
    recordings: Option<std::sync::Arc<recording_files::RecordingFiles>>,
}

impl Store {
    /// Connects and runs pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?
            }
        };
        let recordings = match backend {
            Backend::Sqlite => {
                // SQLite knows where its file is; an in-memory database has none.
                let (file,): (String,) =
                    sqlx::query_as("SELECT file FROM pragma_database_list WHERE name = 'main'")
                        .fetch_one(&pool)
                        .await?;
                (!file.is_empty()).then(|| {
                    std::sync::Arc::new(recording_files::RecordingFiles::beside(
                        std::path::Path::new(&file),
                    ))
                })
            }
            Backend::Postgres => None,
        };
        let store = Self {
            pool,
            backend,
            recordings,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Keeps terminal recordings in the database on SQLite too, as versions
    /// before recording files did: what the recording bench compares with.
    #[doc(hidden)]
    pub fn with_recordings_in_database(mut self) -> Self {
        self.recordings = None;
        self
    }

    /// Where terminal recordings are kept outside the database, if they are.
    pub fn recordings_dir(&self) -> Option<&std::path::Path> {
        self.recordings
            .as_deref()
            .map(recording_files::RecordingFiles::dir)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Checks a bootstrap/API token hash; returns the token's name.
    pub async fn api_token_name(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT name FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn api_token_count(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(n)
    }

    pub async fn create_api_token(
        &self,
        name: &str,
        hash: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, token_hash, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(hash)
        .bind(name)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn project_exists(
        &self,
        id: &crate::projects::ProjectId,
    ) -> Result<bool, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM projects WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn create_project(
        &self,
        id: &crate::projects::ProjectId,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO projects (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("project {id} already exists")));
        }
        Ok(())
    }

    pub async fn list_projects(&self) -> Result<Vec<crate::projects::Project>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT id, created_at FROM projects ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, created_at_ms)| {
                crate::projects::ProjectId::parse(&id)
                    .ok()
                    .map(|id| crate::projects::Project { id, created_at_ms })
            })
            .collect())
    }
}

/// Hides the password in a database URL for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn passwords_never_leave_the_store() {
        assert_eq!(
            redact_url("postgres://sov:hunter2@db:5432/x"),
            "postgres://sov:[redacted]@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://data/s.db"), "sqlite://data/s.db");
    }
}

#[cfg(test)]
pub mod tests;
