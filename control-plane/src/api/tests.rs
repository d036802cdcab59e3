//! The HTTP API in-process (`Router::oneshot`) on a real SQLite store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::{AppState, router};
use crate::identity::{Password, Role, SessionPolicy};
use crate::pki::{Authority, now_ms};
use crate::ratelimit::RateLimiter;
use crate::telemetry::Telemetry;

struct Harness {
    app: axum::Router,
    token: String,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let (dir, store) = crate::store::tests::temp_sqlite().await;
    let token = super::auth_token();
    store
        .create_api_token("test", &super::hash_api_token(&token), now_ms())
        .await
        .unwrap();
    crate::identity::create_user(
        &store,
        "admin",
        &Password::new("correct horse battery"),
        Role::Owner,
        0,
    )
    .await
    .unwrap();
    let ca = Arc::new(Authority::load_or_create(&dir.path().join("pki"), &[]).unwrap());
    let fleet = crate::fleet::spawn_registry(&TaskTracker::new(), CancellationToken::new());
    let state = Arc::new(AppState {
        store: store.clone(),
        fleet: fleet.clone(),
        ca,
        telemetry: Arc::new(Telemetry::default()),
        public_url: "https://cp.example:7443".into(),
        points_retention: Duration::from_secs(48 * 3600),
        session_policy: SessionPolicy {
            idle: Duration::from_secs(3600),
            max: Duration::from_secs(86400),
        },
        login_limiter: RateLimiter::new(1000, 1000),
        public_origin: "http://dash.example".into(),
        secure_cookies: false,
        executor: crate::exec::Executor::new(
            store.clone(),
            fleet.clone(),
            crate::exec::spawn_hub(&TaskTracker::new(), CancellationToken::new()),
            TaskTracker::new(),
            CancellationToken::new(),
            1 << 20,
        ),
        terminals: crate::terminal::spawn_relay(&TaskTracker::new(), CancellationToken::new()),
        exec_max_output: 1 << 20,
        exec_default_timeout: Duration::from_secs(300),
        terminal_max_recording: 1 << 20,
    });
    let addr: std::net::SocketAddr = "192.0.2.7:5555".parse().unwrap();
    Harness {
        app: router(state).layer(MockConnectInfo(addr)),
        token,
        _dir: dir,
    }
}

impl Harness {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        auth: bool,
    ) -> (StatusCode, Value) {
        let headers: Vec<(&str, String)> = if auth {
            vec![("authorization", format!("Bearer {}", self.token))]
        } else {
            vec![]
        };
        let (status, _, body) = self.raw(method, path, body, &headers).await;
        (status, body)
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, String)],
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_owned()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        )
    }
}

#[tokio::test]
async fn every_documented_route_is_served_and_guarded() {
    let h = harness().await;
    for (path, methods) in super::openapi::PATHS {
        let concrete = format!(
            "/api/v1{}",
            path.replace("{id}", "00000000-0000-7000-8000-000000000000")
        );
        for m in *methods {
            let (status, body) = h.call(&m.to_uppercase(), &concrete, None, false).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{m} {path} must require a token: {body}"
            );
            assert_eq!(body["error"]["code"], "unauthorized");
            let (status, body) = h.call(&m.to_uppercase(), &concrete, Some("{}"), true).await;
            assert!(
                !(status == StatusCode::NOT_FOUND && body["error"]["message"] == "route not found"),
                "{m} {path} is not routed"
            );
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
        }
    }
    for (path, methods) in super::openapi::PUBLIC_PATHS {
        for m in *methods {
            let (status, body) = h
                .call(
                    &m.to_uppercase(),
                    &format!("/api/v1{path}"),
                    Some("{}"),
                    false,
                )
                .await;
            assert!(
                !(status == StatusCode::NOT_FOUND && body["error"]["message"] == "route not found"),
                "{m} {path} is not routed"
            );
            assert_ne!(
                status,
                StatusCode::UNAUTHORIZED,
                "{m} {path} must be public"
            );
        }
    }
    let (status, spec) = h.call("GET", "/api/v1/openapi.json", None, false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spec["openapi"], "3.0.3");
    let (status, _) = h.call("GET", "/api/v1/agents", None, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h.call("GET", "/healthz", None, false).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_bodies_get_clean_json_errors() {
    let h = harness().await;
    for (body, want) in [
        ("{not json", StatusCode::BAD_REQUEST),
        (r#"{"project": 7}"#, StatusCode::BAD_REQUEST),
        (r#"{"uses": 1, "surprise": true}"#, StatusCode::BAD_REQUEST),
        (r#"{"uses": 0}"#, StatusCode::BAD_REQUEST),
        (r#"{"ttl": "forever"}"#, StatusCode::BAD_REQUEST),
        (r#"{"project": "Bad Name"}"#, StatusCode::BAD_REQUEST),
        (r#"{"project": "nope"}"#, StatusCode::BAD_REQUEST),
        (r#"{"labels": {"a b": "c"}}"#, StatusCode::BAD_REQUEST),
    ] {
        let (status, resp) = h.call("POST", "/api/v1/tokens", Some(body), true).await;
        assert_eq!(status, want, "{body}: {resp}");
        assert_eq!(resp["error"]["code"], "bad_request", "{body}: {resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty() && !m.contains("panicked"))
        );
    }
    let huge = format!(
        r#"{{"description": "{}"}}"#,
        "x".repeat(super::MAX_BODY + 1)
    );
    let (status, resp) = h.call("POST", "/api/v1/tokens", Some(&huge), true).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{resp}");
    for q in [
        "series=",
        "series=cpu&from=10&to=5",
        "series=cpu&step=1ms",
        "series=cpu&step=1s&from=0&to=999999999999",
        "series=cpu&bogus=1",
    ] {
        let (status, resp) = h
            .call(
                "GET",
                &format!("/api/v1/agents/00000000-0000-7000-8000-000000000000/metrics?{q}"),
                None,
                true,
            )
            .await;
        assert!(status == StatusCode::BAD_REQUEST, "{q}: {status} {resp}");
    }
    let (status, _) = h.call("GET", "/api/v1/agents/not-a-uuid", None, true).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tokens_round_trip_without_leaking_secrets() {
    let h = harness().await;
    let (status, created) = h
        .call(
            "POST",
            "/api/v1/tokens",
            Some(r#"{"uses": 3, "ttl": "2h", "labels": {"env": "prod"}}"#),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("sovj_"));
    let command = created["command"].as_str().unwrap();
    assert!(
        command.contains("--server https://cp.example:7443")
            && command.contains(secret)
            && command.contains(created["ca_sha256"].as_str().unwrap())
    );
    let (_, list) = h.call("GET", "/api/v1/tokens", None, true).await;
    assert_eq!(list[0]["state"], "active");
    assert_eq!(list[0]["labels"]["env"], "prod");
    assert!(
        !list.to_string().contains(secret),
        "listing never returns the secret"
    );
    let id = created["id"].as_str().unwrap();
    let (status, revoked) = h
        .call("POST", &format!("/api/v1/tokens/{id}/revoke"), None, true)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revoked["state"], "revoked");
    let (status, _) = h
        .call("POST", "/api/v1/projects", Some(r#"{"id": "web"}"#), true)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, dup) = h
        .call("POST", "/api/v1/projects", Some(r#"{"id": "web"}"#), true)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");
    let body = json!({ "project": "web" }).to_string();
    let (status, _) = h.call("POST", "/api/v1/tokens", Some(&body), true).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn sessions_cookies_csrf_and_lockout() {
    let h = harness().await;
    let login = |user: &str, pw: &str| json!({ "username": user, "password": pw }).to_string();

    // Wrong user and wrong password look the same.
    let (s1, _, b1) = h
        .raw(
            "POST",
            "/api/v1/auth/login",
            Some(&login("nobody", "whatever pass")),
            &[],
        )
        .await;
    let (s2, _, b2) = h
        .raw(
            "POST",
            "/api/v1/auth/login",
            Some(&login("admin", "wrong password!")),
            &[],
        )
        .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(b1, b2);
    assert_eq!(b1["error"]["code"], "invalid_credentials");

    // A good sign-in sets a strict, HttpOnly cookie and returns the CSRF token.
    let (status, headers, me) = h
        .raw(
            "POST",
            "/api/v1/auth/login",
            Some(&login("Admin", "correct horse battery")),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let set_cookie = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Strict")
            && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Secure"), "plain http in this test");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(me["user"]["username"], "admin");
    assert!(headers.get("content-security-policy").is_some());

    let (status, _, who) = h
        .raw(
            "GET",
            "/api/v1/auth/me",
            None,
            &[("cookie", cookie.clone())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{who}");
    assert_eq!(who["csrf_token"], csrf.as_str());

    // Changes need the CSRF token and the dashboard's origin.
    let body = r#"{"uses": 1}"#;
    let (status, _, err) = h
        .raw(
            "POST",
            "/api/v1/tokens",
            Some(body),
            &[("cookie", cookie.clone())],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"]["code"], "csrf_failed");
    let (status, _, _) = h
        .raw(
            "POST",
            "/api/v1/tokens",
            Some(body),
            &[("cookie", cookie.clone()), ("x-csrf-token", "0".repeat(64))],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = h
        .raw(
            "POST",
            "/api/v1/tokens",
            Some(body),
            &[
                ("cookie", cookie.clone()),
                ("x-csrf-token", csrf.clone()),
                ("origin", "https://evil.example".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, created) = h
        .raw(
            "POST",
            "/api/v1/tokens",
            Some(body),
            &[
                ("cookie", cookie.clone()),
                ("x-csrf-token", csrf.clone()),
                ("origin", "http://dash.example".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // Logout ends the session.
    let (status, headers, _) = h
        .raw(
            "POST",
            "/api/v1/auth/logout",
            None,
            &[("cookie", cookie.clone()), ("x-csrf-token", csrf.clone())],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        headers
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _, gone) = h
        .raw(
            "GET",
            "/api/v1/auth/me",
            None,
            &[("cookie", cookie.clone())],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(gone["error"]["code"], "session_expired");

    // Five failures lock the account; the sixth attempt is refused even with
    // the right password. An unknown user locks the same way.
    for user in ["admin", "ghost"] {
        for i in 0..5 {
            let (status, _, _) = h
                .raw(
                    "POST",
                    "/api/v1/auth/login",
                    Some(&login(user, &format!("bad password {i}"))),
                    &[],
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let (status, _, locked) = h
            .raw(
                "POST",
                "/api/v1/auth/login",
                Some(&login(user, "correct horse battery")),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{user}: {locked}");
        assert_eq!(locked["error"]["code"], "locked");
        assert!(
            locked["error"]["message"]
                .as_str()
                .unwrap()
                .contains("15 minute"),
            "{locked}"
        );
    }
}

#[tokio::test]
async fn the_dashboard_is_served_with_client_routes() {
    let h = harness().await;
    let (status, headers, _) = h.raw("GET", "/agents/some-id", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers.get("x-frame-options").unwrap(), "DENY");
    let (status, _, _) = h.raw("GET", "/missing.js", None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = h.raw("GET", "/api/v1/nope", None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}
