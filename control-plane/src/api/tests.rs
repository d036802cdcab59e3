//! The HTTP API in-process (`Router::oneshot`) on a real SQLite store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::{AppState, router};
use crate::pki::{Authority, millis};
use crate::store::Store;
use crate::telemetry::Telemetry;

struct Harness {
    app: axum::Router,
    token: String,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.db").display()
    ))
    .await
    .unwrap();
    let token = super::auth_token();
    store
        .create_api_token(
            "test",
            &super::hash_api_token(&token),
            millis(std::time::SystemTime::now()),
        )
        .await
        .unwrap();
    let ca = Arc::new(Authority::load_or_create(&dir.path().join("pki"), &[]).unwrap());
    let fleet = crate::fleet::spawn_registry(&TaskTracker::new(), CancellationToken::new());
    let state = Arc::new(AppState {
        store,
        fleet,
        ca,
        telemetry: Arc::new(Telemetry::default()),
        public_url: "https://cp.example:7443".into(),
        points_retention: Duration::from_secs(48 * 3600),
    });
    Harness {
        app: router(state),
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
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if auth {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_owned()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
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
