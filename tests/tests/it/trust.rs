//! The gRPC port's trust rules, through real TLS: no certificate, a foreign
//! CA, a revoked agent, and certificate renewal.

use std::time::{Duration, Instant};

use serde_json::json;
use sovereign_agent::tls;
use sovereign_e2e::{Agent, Backend, ControlPlane, FAST, eventually, wait_online};
use sovereign_proto::v1 as pb;
use sovereign_proto::v1::agent_link_client::AgentLinkClient;

fn hello() -> tokio_stream::Iter<std::vec::IntoIter<pb::AgentMessage>> {
    tokio_stream::iter(vec![pb::AgentMessage {
        id: 0,
        body: Some(pb::agent_message::Body::Hello(pb::Hello {
            agent_version: "test".into(),
            facts: None,
            outbox_pending: 0,
        })),
    }])
}

async fn ca_der(cp: &ControlPlane) -> Vec<u8> {
    use base64::Engine;
    let (_, ca) = cp.get("/api/v1/ca").await;
    let pem = ca["pem"].as_str().unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

async fn clients_without_a_valid_certificate_are_refused(backend: Backend) {
    let cp = ControlPlane::start(backend).await;
    let pin = tls::parse_fingerprint(&cp.ca_sha256).unwrap();

    // No client certificate: TLS completes (enrollment needs that) but the stream is refused.
    let channel = tls::channel(&cp.url(), tls::pinned_config(pin).unwrap()).unwrap();
    let err = AgentLinkClient::new(channel)
        .connect(hello())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("client certificate is required"),
        "{err:?}"
    );

    // A certificate from a foreign CA fails the handshake.
    let foreign_key = rcgen::KeyPair::generate().unwrap();
    let mut foreign_ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    foreign_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let foreign_issuer = rcgen::Issuer::new(foreign_ca, foreign_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(
        rcgen::DnType::CommonName,
        "01a2006c-29ae-7675-96ff-811c453b168b",
    );
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &foreign_issuer).unwrap();
    let config = tls::mutual_config(
        &ca_der(&cp).await,
        leaf_cert.der(),
        leaf_key.serialize_der(),
    )
    .unwrap();
    let channel = tls::channel(&cp.url(), config).unwrap();
    let err = AgentLinkClient::new(channel)
        .connect(hello())
        .await
        .unwrap_err();
    assert_ne!(err.code(), tonic::Code::Ok);
    assert!(
        matches!(
            err.code(),
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Internal
                | tonic::Code::Cancelled
        ),
        "expected a handshake failure, got {err:?}"
    );
    assert!(
        !cp.logs().contains("Agent connected."),
        "no session may start without a valid certificate"
    );
    let (status, _) = cp.get("/readyz").await;
    assert_eq!(status, 200, "the control plane is unharmed");
    cp.cleanup().await;
}
on_both!(clients_without_a_valid_certificate_are_refused);

async fn revocation_cuts_the_stream_within_five_seconds(backend: Backend) {
    let cp = ControlPlane::start(backend).await;
    let mut agent = Agent::new(FAST);
    let id = agent.enroll_with(&cp, json!({}), &[]).await;
    agent.start();
    wait_online(&cp, &id).await;
    let revoked_at = Instant::now();
    let out = cp.cli(&["agent", "revoke", &id]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        Duration::from_secs(5),
        "the agent's stream to be cut",
        || async {
            agent
                .logs()
                .contains("this agent was revoked")
                .then_some(())
        },
    )
    .await;
    assert!(revoked_at.elapsed() < Duration::from_secs(5));
    assert_eq!(cp.agent(&id).await["status"], "revoked");
    // It keeps being refused at the first message from then on.
    let before = agent.logs().matches("was revoked").count();
    eventually(Duration::from_secs(10), "a refused reconnect", || async {
        (agent.logs().matches("was revoked").count() > before).then_some(())
    })
    .await;
    let text = reqwest::get(format!("{}/metrics", cp.api()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("sovereign_agents_online 0"), "{text}");
    assert!(
        !text.contains("sovereign_agent_sessions_refused_total 0"),
        "{text}"
    );
    cp.cleanup().await;
}
on_both!(revocation_cuts_the_stream_within_five_seconds);

async fn certificates_renew_over_the_stream(backend: Backend) {
    let mut cp = ControlPlane::start_with(backend, &[("SOVEREIGN_AGENT_CERT_TTL", "12s")]).await;
    let mut agent = Agent::new(FAST);
    let id = agent.enroll_with(&cp, json!({}), &[]).await;
    let original = std::fs::read(agent.state.path().join("cert.der")).unwrap();
    agent.start();
    wait_online(&cp, &id).await;
    // Renewal happens at 60% of the lifetime (~7 s).
    eventually(
        Duration::from_secs(15),
        "a renewed certificate on disk",
        || async {
            (std::fs::read(agent.state.path().join("cert.der")).unwrap_or_default() != original
                && agent.logs().contains("Certificate renewed."))
            .then_some(())
        },
    )
    .await;
    // Past the first certificate's expiry, a fresh connection still works:
    // it must be using the renewed certificate.
    tokio::time::sleep(Duration::from_secs(6)).await;
    cp.restart().await;
    wait_online(&cp, &id).await;
    cp.cleanup().await;
}
on_both!(certificates_renew_over_the_stream);
