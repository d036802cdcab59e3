//! The end-to-end harness: starts real `sovereign` and `sovereign-agent`
//! processes on 127.0.0.1 with temporary state, on SQLite or on a fresh
//! PostgreSQL database, and stops them when dropped.

// Starting processes is what this crate is for, and a harness that cannot
// set up must fail the test loudly.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::{Child, Command};

/// Where the workspace's binaries are: next to this test executable's folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, which the README's test command does)",
        path.display()
    );
    path
}

/// A port on 127.0.0.1 that was free a moment ago, below the kernel's
/// ephemeral range (32768–60999 by default). A port the kernel handed out
/// for `127.0.0.1:0` and that is free again can become the local end of
/// any outgoing connection on the machine before the control plane binds
/// it (seen in CI: "Address already in use"); ports below that range are
/// taken only by an explicit bind, such as a listener's. They are tried in
/// turn from a random start, so the tests of one process never pick the
/// same one.
pub fn free_port() -> u16 {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u16 = 20_000;
    const SPAN: u32 = 12_000;
    static START: LazyLock<u32> = LazyLock::new(|| rand::random_range(0..SPAN));
    static TRIED: AtomicU32 = AtomicU32::new(0);
    for _ in 0..SPAN {
        let offset = START.wrapping_add(TRIED.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = LOW + u16::try_from(offset).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    0
}

/// Polls `f` every 100 ms until it returns `Some`, or fails after `timeout`
/// saying what was awaited.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database for one test. PostgreSQL databases are dropped by `cleanup`.
pub struct Database {
    pub url: String,
    pg: Option<(String, String)>,
}

pub fn pg_admin_url() -> String {
    std::env::var("SOVEREIGN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl Database {
    pub async fn create(backend: Backend, dir: &Path) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => Ok(Self {
                url: format!("sqlite://{}?mode=rwc", dir.join("sovereign.db").display()),
                pg: None,
            }),
            Backend::Postgres => {
                let admin = pg_admin_url();
                let name = format!("sov_e2e_{}", hex::encode(rand::random::<[u8; 6]>()));
                let pool = sqlx::PgPool::connect(&admin).await.with_context(|| {
                    format!(
                        "PostgreSQL at {admin} is required for the PostgreSQL half of the e2e suite"
                    )
                })?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await?;
                pool.close().await;
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .unwrap_or(admin.clone());
                Ok(Self {
                    url: format!("{base}/{name}"),
                    pg: Some((admin, name)),
                })
            }
        }
    }

    pub async fn cleanup(&self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(pool) = sqlx::PgPool::connect(admin).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&pool)
            .await;
            pool.close().await;
        }
    }
}

pub struct ControlPlane {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub db: Database,
    pub grpc_port: u16,
    pub api_port: u16,
    pub admin_token: String,
    /// The first admin's password, printed on the first start.
    pub admin_password: String,
    pub ca_sha256: String,
    env: Vec<(String, String)>,
    starts: u32,
    http: reqwest::Client,
}

impl ControlPlane {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// Starts a control plane with extra environment (settings overrides).
    pub async fn start_with(backend: Backend, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(backend, dir.path()).await.unwrap();
        let mut cp = Self {
            child: None,
            db,
            grpc_port: free_port(),
            api_port: free_port(),
            admin_token: String::new(),
            admin_password: String::new(),
            ca_sha256: String::new(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            starts: 0,
            dir,
            http: reqwest::Client::new(),
        };
        cp.spawn().await.unwrap();
        cp
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.grpc_port)
    }

    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("cp-{}.log", self.starts))
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let out_path = self.dir.path().join(format!("cp-{}.out", self.starts));
        let log = std::fs::File::create(self.log_path())?;
        let out = std::fs::File::create(&out_path)?;
        let mut cmd = Command::new(bin("sovereign"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--database-url")
            .arg(&self.db.url)
            .arg("--grpc-listen")
            .arg(format!("127.0.0.1:{}", self.grpc_port))
            .arg("--api-listen")
            .arg(format!("127.0.0.1:{}", self.api_port))
            .env("RUST_LOG", "info,sovereign=debug")
            .env("SOVEREIGN_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().context("cannot start sovereign")?);
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&out_path).unwrap_or_default();
            if text.contains("CA SHA-256:") {
                for line in text.lines() {
                    if let Some(fp) = line.trim().strip_prefix("CA SHA-256: ") {
                        self.ca_sha256 = fp.trim().to_owned();
                    }
                    if let Some((_, rest)) = line.split_once("with password ") {
                        self.admin_password =
                            rest.split_whitespace().next().unwrap_or("").to_owned();
                    }
                }
                if let Ok(token) = std::fs::read_to_string(self.data_dir().join("admin.token")) {
                    self.admin_token = token.trim().to_owned();
                }
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("sovereign exited early with {status}:\n{}", self.logs());
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("sovereign did not come up within 30 s:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the control plane logged, across restarts.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.dir.path().join(format!("cp-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// SIGKILL: no chance to flush anything.
    pub async fn kill(&mut self) {
        kill(self.child.take()).await;
    }

    /// SIGTERM, then waits for the exit; returns how long it took.
    pub async fn terminate(&mut self) -> (Duration, Option<std::process::ExitStatus>) {
        terminate(self.child.take()).await
    }

    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await.unwrap();
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api()))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// The actions of the newest `limit` audit entries, newest first.
    pub async fn audit_actions(&self, limit: usize) -> Vec<String> {
        let (status, audit) = self.get(&format!("/api/v1/audit?limit={limit}")).await;
        assert_eq!(status, 200, "{audit}");
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }

    /// GETs a text body (Prometheus text, a recording) with the admin token.
    pub async fn get_text(&self, path: &str) -> String {
        let resp = self
            .http
            .get(format!("{}{path}", self.api()))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    /// Creates a join token and returns its secret.
    pub async fn token(&self, body: Value) -> String {
        let (status, t) = self.post("/api/v1/tokens", body).await;
        assert_eq!(status, 201, "token creation failed: {t}");
        t["secret"].as_str().unwrap().to_owned()
    }

    pub async fn agent(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/agents/{id}")).await.1
    }

    /// Signs in as the first admin; returns (cookie, csrf token).
    pub async fn sign_in(&self) -> (String, String) {
        let resp = self
            .http
            .post(format!("{}/api/v1/auth/login", self.api()))
            .json(&serde_json::json!({ "username": "admin", "password": self.admin_password }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let me: Value = resp.json().await.unwrap();
        (cookie, me["csrf_token"].as_str().unwrap().to_owned())
    }

    /// Polls an exec job until every run has finished.
    pub async fn wait_exec(&self, id: &str) -> Value {
        eventually(
            Duration::from_secs(60),
            "the exec job to finish",
            || async {
                let (_, job) = self.get(&format!("/api/v1/exec/{id}")).await;
                let done = job["runs"].as_array().is_some_and(|runs| {
                    runs.iter()
                        .all(|r| r["state"] != "pending" && r["state"] != "running")
                });
                done.then_some(job)
            },
        )
        .await
    }

    /// Runs the admin CLI against this control plane.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        // Client flags go before a `--`, whose tail is a command's argv.
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        Command::new(bin("sovereign"))
            .args(&args[..split])
            .arg("--api")
            .arg(self.api())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&args[split..])
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap()
    }

    pub async fn cleanup(mut self) {
        self.kill().await;
        self.db.cleanup().await;
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// SIGKILL: no chance to flush anything.
async fn kill(child: Option<Child>) {
    if let Some(mut child) = child {
        let _ = child.kill().await;
    }
}

/// SIGTERM, then waits (up to 20 s) for the exit; returns how long it took.
async fn terminate(child: Option<Child>) -> (Duration, Option<std::process::ExitStatus>) {
    let Some(mut child) = child else {
        return (Duration::ZERO, None);
    };
    let start = Instant::now();
    signal(child.id(), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .ok()
        .and_then(Result::ok);
    (start.elapsed(), status)
}

fn signal(pid: Option<u32>, sig: &str) {
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status();
    }
}

/// A real agent process with its own state dir.
pub struct Agent {
    child: Option<Child>,
    pub state: tempfile::TempDir,
    pub machine_id: String,
    env: Vec<(String, String)>,
    runs: u32,
}

/// Settings that make e2e runs fast: 1 s summaries, quick reconnects.
pub const FAST: &[(&str, &str)] = &[
    ("SOVEREIGN_AGENT_SUMMARY_INTERVAL", "1s"),
    ("SOVEREIGN_AGENT_BACKOFF_INITIAL", "200ms"),
    ("SOVEREIGN_AGENT_BACKOFF_CAP", "2s"),
];

impl Agent {
    pub fn new(env: &[(&str, &str)]) -> Self {
        Self {
            child: None,
            state: tempfile::tempdir().unwrap(),
            machine_id: format!("e2e-{}", hex::encode(rand::random::<[u8; 8]>())),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            runs: 0,
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bin("sovereign-agent"));
        cmd.env("RUST_LOG", "info,sovereign_agent=debug")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `sovereign-agent enroll`; returns (success, stdout + stderr).
    pub async fn enroll(
        &self,
        server: &str,
        token: &str,
        ca_sha256: &str,
        extra: &[&str],
    ) -> (bool, String) {
        let out = self
            .command()
            .arg("enroll")
            .args([
                "--server",
                server,
                "--token",
                token,
                "--ca-sha256",
                ca_sha256,
            ])
            .arg("--state-dir")
            .arg(self.state.path())
            .args(["--machine-id", &self.machine_id])
            .args(extra)
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Enrolls against `cp` with a fresh one-use token, and returns the agent id.
    pub async fn enroll_with(
        &self,
        cp: &ControlPlane,
        token_body: Value,
        extra: &[&str],
    ) -> String {
        let secret = cp.token(token_body).await;
        let (ok, text) = self.enroll(&cp.url(), &secret, &cp.ca_sha256, extra).await;
        assert!(ok, "enroll failed: {text}");
        self.agent_id()
    }

    pub fn agent_id(&self) -> String {
        let text =
            std::fs::read_to_string(self.state.path().join("agent.toml")).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("agent_id = "))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.state.path().join(format!("agent-{}.log", self.runs))
    }

    pub fn logs(&self) -> String {
        (1..=self.runs)
            .map(|i| {
                std::fs::read_to_string(self.state.path().join(format!("agent-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    pub fn start(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = self
            .command()
            .arg("run")
            .arg("--state-dir")
            .arg(self.state.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub async fn terminate(&mut self) -> (Duration, Option<std::process::ExitStatus>) {
        terminate(self.child.take()).await
    }

    pub async fn kill(&mut self) {
        kill(self.child.take()).await;
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// Waits until the control plane reports the agent online.
pub async fn wait_online(cp: &ControlPlane, id: &str) {
    eventually(
        Duration::from_secs(20),
        "the agent to come online",
        || async { (cp.agent(id).await["status"] == "online").then_some(()) },
    )
    .await;
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
