//! Wires the control plane together and runs it until SIGTERM/SIGINT:
//! store, CA, live registry, ingest writer, gRPC gateway, HTTP API and the
//! housekeeping loop; then drains them within the grace period.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::fleet::{self, Fleet};
use crate::grpc::{self, Gateway};
use crate::identity::{self, Password, Role, SessionPolicy};
use crate::metrics;
use crate::pki::{Authority, now_ms};
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use crate::telemetry::Telemetry;
use crate::{fsutil, store};

pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap-admin";

pub async fn run(config: Config) -> anyhow::Result<()> {
    fsutil::create_private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let store = Store::open(&config.database_url).await.with_context(|| {
        format!(
            "cannot open database {}",
            store::redact_url(&config.database_url)
        )
    })?;
    let ca = Arc::new(Authority::load_or_create(
        &config.data_dir.join("pki"),
        &config.server_names,
    )?);
    let admin_token = ensure_bootstrap_token(&store, &config.data_dir).await?;
    let admin_password = ensure_first_admin(&store).await?;

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let telemetry = Arc::new(Telemetry::default());
    let fleet = fleet::spawn_registry(&tracker, shutdown.child_token());
    let exec_hub = crate::exec::spawn_hub(&tracker, shutdown.child_token());
    let terminals = crate::terminal::spawn_relay(&tracker, shutdown.child_token());
    let interrupted = store.fail_interrupted_jobs(now_ms()).await?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "Marked exec runs interrupted by the last shutdown as failed."
        );
    }
    let executor = crate::exec::Executor::new(
        store.clone(),
        fleet.clone(),
        exec_hub.clone(),
        tracker.clone(),
        shutdown.child_token(),
        config.exec_max_output,
    );
    // The ingest writer outlives the sessions so it can flush what they queued.
    let ingest_stop = CancellationToken::new();
    let ingest_tracker = TaskTracker::new();
    let ingest = metrics::spawn_ingest(
        store.clone(),
        telemetry.clone(),
        &ingest_tracker,
        ingest_stop.clone(),
    );

    let grpc_listener = tokio::net::TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("cannot listen on {} (grpc.listen)", config.grpc_listen))?;
    let api_listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("cannot listen on {} (api.listen)", config.api_listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let api_addr = api_listener.local_addr()?;

    let gateway = Arc::new(Gateway::new(
        store.clone(),
        ca.clone(),
        fleet.clone(),
        ingest,
        telemetry.clone(),
        RateLimiter::new(config.enroll_rate_per_minute, config.enroll_burst),
        config.agent_cert_ttl,
        tracker.clone(),
        shutdown.clone(),
        exec_hub.clone(),
        terminals.clone(),
    ));
    let grpc_tls = grpc::acceptor(&ca).context("cannot set up TLS for the agent gateway")?;
    let grpc_task = tokio::spawn(grpc::serve(gateway, grpc_listener, grpc_tls));

    let state = Arc::new(AppState {
        store: store.clone(),
        fleet: fleet.clone(),
        ca: ca.clone(),
        telemetry,
        public_url: config.public_url.clone(),
        points_retention: config.points_retention,
        session_policy: SessionPolicy {
            idle: config.session_idle,
            max: config.session_max,
        },
        login_limiter: RateLimiter::new(config.login_rate_per_minute, config.login_rate_per_minute),
        public_origin: api::origin_of(&config.api_public_url),
        secure_cookies: config.api_public_url.starts_with("https://"),
        executor,
        terminals,
        exec_max_output: config.exec_max_output,
        exec_default_timeout: config.exec_default_timeout,
        terminal_max_recording: config.terminal_max_recording,
    });
    let api_shutdown = shutdown.clone();
    let api_task = tokio::spawn(async move {
        use axum::serve::ListenerExt;
        // Terminal keystrokes and prompts are small writes: never let Nagle hold them.
        let api_listener = api_listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "Could not set TCP_NODELAY.");
            }
        });
        axum::serve(
            api_listener,
            api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(api_shutdown.cancelled_owned())
        .await
    });
    tracker.spawn(housekeeping(
        store.clone(),
        fleet,
        config.clone(),
        shutdown.child_token(),
    ));

    println!("Sovereign control plane is up.");
    println!("  API:        http://{api_addr}");
    println!(
        "  gRPC:       {grpc_addr} (agents dial {})",
        config.public_url
    );
    println!("  CA SHA-256: {}", ca.fingerprint());
    if let Some(token) = admin_token {
        println!(
            "  Admin API token (shown once; also saved to {}): {token}",
            config.data_dir.join("admin.token").display()
        );
    }
    if let Some(password) = &admin_password {
        println!(
            "  Dashboard:  {} — sign in as {FIRST_ADMIN} with password {} (shown once; change it with `sovereign admin reset-password`)",
            config.api_public_url,
            password.expose()
        );
    }
    if !crate::dashboard::is_built() {
        println!(
            "  (This binary has no dashboard built in: run `npm --prefix web ci && npm --prefix web run build`, then rebuild.)"
        );
    }
    tracing::info!(
        api = %api_addr,
        grpc = %grpc_addr,
        database = ?store.backend(),
        recordings = %store.recordings_dir().map_or("in the database".into(), |d| d.display().to_string()),
        "Control plane started."
    );

    wait_for_signal().await;
    tracing::info!("Shutting down: no new connections; draining sessions.");
    shutdown.cancel();
    tracker.close();
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        let _ = grpc_task.await;
        let _ = api_task.await;
        tracker.wait().await;
        ingest_stop.cancel();
        ingest_tracker.close();
        ingest_tracker.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(grace = ?config.shutdown_grace, "Shutdown grace period ran out; exiting anyway.");
    }
    store.close().await;
    tracing::info!("Stopped.");
    Ok(())
}

pub const FIRST_ADMIN: &str = "admin";

/// Creates the first admin (an organization owner) with a random password
/// when there are no users yet. Returns the password when created.
async fn ensure_first_admin(store: &Store) -> anyhow::Result<Option<Password>> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let password = Password::generate();
    identity::create_user(store, FIRST_ADMIN, &password, Role::Owner, now_ms())
        .await
        .context("cannot create the first admin")?;
    tracing::info!(user = FIRST_ADMIN, "Created the first admin.");
    Ok(Some(password))
}

/// Creates the first admin API token if there is none, saving it to
/// `DATA_DIR/admin.token` (0600) for the local CLI. Returns it when created.
async fn ensure_bootstrap_token(store: &Store, data_dir: &Path) -> anyhow::Result<Option<String>> {
    if store.api_token_count().await? > 0 {
        return Ok(None);
    }
    let token = api::auth_token();
    store
        .create_api_token(BOOTSTRAP_TOKEN_NAME, &api::hash_api_token(&token), now_ms())
        .await?;
    let path = data_dir.join("admin.token");
    fsutil::write_atomic(&path, format!("{token}\n").as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(token))
}

/// Periodic chores: record last-seen for connected agents, prune metrics past
/// their retention and certificates long expired.
async fn housekeeping(store: Store, fleet: Fleet, config: Config, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut rounds: u64 = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = now_ms();
        let online: Vec<_> = fleet.online().await.into_iter().map(|(id, _)| id).collect();
        if let Err(e) = store.touch_agents(&online, now).await {
            tracing::warn!(error = %e, "Could not record last-seen times.");
        }
        if rounds.is_multiple_of(10) {
            let points_before =
                now - i64::try_from(config.points_retention.as_millis()).unwrap_or(i64::MAX);
            let rollups_before =
                now - i64::try_from(config.rollup_retention.as_millis()).unwrap_or(i64::MAX);
            match store.prune_metrics(points_before, rollups_before).await {
                Ok((p, r)) if p + r > 0 => {
                    tracing::info!(points = p, rollups = r, "Pruned metrics past retention.")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Could not prune metrics."),
            }
            if let Err(e) = store.prune_identity(now).await {
                tracing::warn!(error = %e, "Could not prune expired sessions.");
            }
            if let Err(e) = store.prune_certs(now - 7 * 86_400_000).await {
                tracing::warn!(error = %e, "Could not prune expired certificates.");
            }
        }
        rounds += 1;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
