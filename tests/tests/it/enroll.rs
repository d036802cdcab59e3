//! Enrollment through the real binaries: tokens, CA pinning, identity.

use std::time::Duration;

use serde_json::json;
use sovereign_e2e::{Agent, Backend, ControlPlane, FAST};

async fn refusals_are_clear(backend: Backend) {
    let cp = ControlPlane::start(backend).await;
    let agent = Agent::new(FAST);

    // A wrong CA hash: refused before the token is even sent.
    let secret = cp.token(json!({})).await;
    let mut wrong = cp.ca_sha256.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let (ok, text) = agent
        .enroll(
            &cp.url(),
            &secret,
            std::str::from_utf8(&wrong).unwrap(),
            &[],
        )
        .await;
    assert!(!ok && text.contains("does not match --ca-sha256"), "{text}");
    let (_, tokens) = cp.get("/api/v1/tokens").await;
    assert_eq!(
        tokens[0]["uses_left"], 1,
        "a refused server costs no token use"
    );

    // Unknown token.
    let (ok, text) = agent
        .enroll(&cp.url(), "sovj_0000", &cp.ca_sha256, &[])
        .await;
    assert!(!ok && text.contains("unknown join token"), "{text}");

    // Used up: the first enrollment takes the only use.
    let (ok, text) = agent.enroll(&cp.url(), &secret, &cp.ca_sha256, &[]).await;
    assert!(ok, "{text}");
    let other = Agent::new(FAST);
    let (ok, text) = other.enroll(&cp.url(), &secret, &cp.ca_sha256, &[]).await;
    assert!(!ok && text.contains("no uses left"), "{text}");

    // Expired.
    let short = cp.token(json!({ "ttl": "1s", "uses": 5 })).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ok, text) = other.enroll(&cp.url(), &short, &cp.ca_sha256, &[]).await;
    assert!(!ok && text.contains("expired"), "{text}");

    // Revoked, through the CLI.
    let revocable = cp.token(json!({ "uses": 5 })).await;
    let (_, list) = cp.get("/api/v1/tokens").await;
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["state"] == "active")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = cp.cli(&["token", "revoke", &id]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, text) = other
        .enroll(&cp.url(), &revocable, &cp.ca_sha256, &[])
        .await;
    assert!(!ok && text.contains("revoked"), "{text}");

    // None of the refusals logged a token secret.
    let logs = cp.logs();
    for s in [&secret, &short, &revocable] {
        assert!(
            !logs.contains(s.as_str()),
            "a token secret leaked into the log"
        );
    }
    cp.cleanup().await;
}
on_both!(refusals_are_clear);

async fn reenrolling_keeps_identity_and_projects_are_respected(backend: Backend) {
    let cp = ControlPlane::start(backend).await;
    let agent = Agent::new(FAST);
    let first = agent
        .enroll_with(&cp, json!({ "labels": { "env": "e2e" } }), &[])
        .await;
    let second = agent.enroll_with(&cp, json!({}), &[]).await;
    assert_eq!(first, second, "the same machine keeps its agent id");
    let (_, page) = cp.get("/api/v1/agents").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["labels"]["env"], "e2e");

    // A token for another project cannot take this machine over.
    let (status, _) = cp.post("/api/v1/projects", json!({ "id": "other" })).await;
    assert_eq!(status, 201);
    let foreign = cp.token(json!({ "project": "other" })).await;
    let (ok, text) = agent.enroll(&cp.url(), &foreign, &cp.ca_sha256, &[]).await;
    assert!(
        !ok && text.contains("already enrolled in project \"default\""),
        "{text}"
    );
    cp.cleanup().await;
}
on_both!(reenrolling_keeps_identity_and_projects_are_respected);

async fn one_use_token_race(backend: Backend) {
    let cp = ControlPlane::start_with(backend, &[("SOVEREIGN_ENROLL_BURST", "1000")]).await;
    let secret = cp.token(json!({ "uses": 1 })).await;
    let pin = sovereign_agent::tls::parse_fingerprint(&cp.ca_sha256).unwrap();
    let dirs: Vec<_> = (0..100).map(|_| tempfile::tempdir().unwrap()).collect();
    let attempts = dirs.iter().enumerate().map(|(i, dir)| {
        let url = cp.url();
        let secret = secret.clone();
        async move {
            let state = sovereign_agent::state::StateDir::open(dir.path()).unwrap();
            sovereign_agent::enroll::enroll(
                &state,
                sovereign_agent::enroll::EnrollParams {
                    server: &url,
                    token: &secret,
                    ca_sha256: pin,
                    machine_id: format!("race-{i}"),
                    facts: sovereign_proto::v1::HostFacts::default(),
                    hostname: None,
                },
            )
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let used_up = results
        .iter()
        .filter(|r| {
            r.as_ref()
                .err()
                .is_some_and(|e| e.to_string().contains("no uses left"))
        })
        .count();
    assert_eq!(
        wins,
        1,
        "{:?}",
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(ToString::to_string)
            .take(3)
            .collect::<Vec<_>>()
    );
    assert_eq!(used_up, 99);
    let (_, page) = cp.get("/api/v1/agents").await;
    assert_eq!(page["total"], 1);
    cp.cleanup().await;
}
on_both!(one_use_token_race);
