//! Hostile and broken input on the real ports: nothing crashes, every
//! refusal is clear, and the control plane keeps serving.

use std::time::Duration;

use serde_json::json;
use sovereign_agent::tls;
use sovereign_e2e::{Agent, Backend, ControlPlane, FAST, wait_online};
use sovereign_proto::v1 as pb;
use tokio::io::AsyncWriteExt;

async fn healthy(cp: &ControlPlane) {
    let (status, _) = cp.get("/readyz").await;
    assert_eq!(status, 200, "control plane stopped serving:\n{}", cp.logs());
}

async fn garbage_and_floods_are_contained(backend: Backend) {
    let cp = ControlPlane::start_with(
        backend,
        &[
            ("SOVEREIGN_ENROLL_BURST", "5"),
            ("SOVEREIGN_ENROLL_RATE", "10"),
        ],
    )
    .await;

    // Raw garbage and plain HTTP/1 on the TLS port.
    for payload in [
        rand::random::<[u8; 32]>().repeat(64),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0x16, 0x03, 0x01, 0xff, 0xff],
    ] {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", cp.grpc_port))
            .await
            .unwrap();
        let _ = s.write_all(&payload).await;
        let _ = s.shutdown().await;
    }
    healthy(&cp).await;

    // A flood of enrollment attempts from one address is rate limited.
    let pin = tls::parse_fingerprint(&cp.ca_sha256).unwrap();
    let mut limited = 0;
    for i in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let state = sovereign_agent::state::StateDir::open(dir.path()).unwrap();
        let r = sovereign_agent::enroll::enroll(
            &state,
            sovereign_agent::enroll::EnrollParams {
                server: &cp.url(),
                token: "sovj_bogus",
                ca_sha256: pin,
                machine_id: format!("flood-{i}"),
                facts: pb::HostFacts::default(),
                hostname: None,
            },
        )
        .await;
        let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
        if msg.contains("too many enrollment attempts") {
            limited += 1;
        } else {
            assert!(msg.contains("unknown join token"), "{msg}");
        }
    }
    assert!(
        limited >= 10,
        "only {limited} of 20 attempts were rate limited"
    );
    let text = reqwest::get(format!("{}/metrics", cp.api()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("sovereign_enrollments_refused_total 20"),
        "{text}"
    );
    healthy(&cp).await;
    cp.cleanup().await;
}
on_both!(garbage_and_floods_are_contained);

async fn malformed_and_oversized_messages_end_only_that_stream(backend: Backend) {
    let cp = ControlPlane::start(backend).await;
    let mut agent = Agent::new(FAST);
    let id = agent.enroll_with(&cp, json!({}), &[]).await;
    let creds = sovereign_agent::state::StateDir::open(agent.state.path())
        .unwrap()
        .load()
        .unwrap();
    let channel = || {
        tls::channel(
            &cp.url(),
            tls::mutual_config(&creds.ca_der, &creds.cert_der, creds.key_der.clone()).unwrap(),
        )
        .unwrap()
    };

    // Bytes that are not an AgentMessage (a TerminalFrame's field 1 is a string
    // where AgentMessage expects a number).
    let mut grpc = tonic::client::Grpc::new(channel());
    grpc.ready().await.unwrap();
    let frames = tokio_stream::iter(vec![pb::TerminalFrame {
        session_id: "x".repeat(10),
        seq: 1,
        body: None,
    }]);
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/sovereign.v1.AgentLink/Connect");
    let codec = tonic_prost::ProstCodec::<pb::TerminalFrame, pb::ControlMessage>::default();
    let result = grpc
        .streaming(tonic::Request::new(frames), path, codec)
        .await;
    let err = match result {
        Err(e) => e,
        Ok(resp) => resp
            .into_inner()
            .message()
            .await
            .expect_err("a malformed message must end the stream"),
    };
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("malformed"), "{err:?}");

    // A message over the 4 MiB limit.
    let huge = pb::AgentMessage {
        id: 0,
        body: Some(pb::agent_message::Body::Metrics(pb::MetricBatch {
            seq: 1,
            points: vec![pb::MetricPoint {
                ts_ms: 1,
                interval_ms: 1,
                values: vec![pb::SeriesValue {
                    series: "x".repeat(5 * 1024 * 1024),
                    min: 0.0,
                    avg: 0.0,
                    max: 0.0,
                }],
            }],
        })),
    };
    let hello = pb::AgentMessage {
        id: 0,
        body: Some(pb::agent_message::Body::Hello(pb::Hello::default())),
    };
    let mut client = sovereign_proto::v1::agent_link_client::AgentLinkClient::new(channel());
    let outcome = match client.connect(tokio_stream::iter(vec![hello, huge])).await {
        Err(e) => Err(e),
        Ok(resp) => {
            let mut s = resp.into_inner();
            loop {
                match tokio::time::timeout(Duration::from_secs(10), s.message()).await {
                    Ok(Ok(Some(_))) => continue,
                    Ok(Ok(None)) => break Ok(()),
                    Ok(Err(e)) => break Err(e),
                    Err(_) => panic!("no answer to an oversized message"),
                }
            }
        }
    };
    let err = outcome.expect_err("an oversized message must be refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");
    healthy(&cp).await;

    // A normal agent with the same identity still works afterwards.
    agent.start();
    wait_online(&cp, &id).await;
    cp.cleanup().await;
}
on_both!(malformed_and_oversized_messages_end_only_that_stream);

fn ws_request(
    cp: &ControlPlane,
    origin: &str,
    cookie: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{}/api/v1/ws", cp.api_port)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn dashboard_websocket_checks_origin_and_session() {
    use tokio_tungstenite::tungstenite::{Error, Message};
    let cp = ControlPlane::start(Backend::Sqlite).await;
    let (cookie, _) = cp.sign_in().await;
    let own = cp.api();

    // A foreign origin is refused before the upgrade, even with a valid session.
    match tokio_tungstenite::connect_async(ws_request(&cp, "https://evil.example", Some(&cookie)))
        .await
    {
        Err(Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    // No session: 401.
    match tokio_tungstenite::connect_async(ws_request(&cp, &own, None)).await {
        Err(Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    // Same origin with a session: counts arrive, and garbage gets a clean error.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(&cp, &own, Some(&cookie)))
        .await
        .unwrap();
    use futures::{SinkExt, StreamExt};
    ws.send(Message::text("{not json")).await.unwrap();
    ws.send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            kinds.push(v["type"].as_str().unwrap().to_owned());
        }
    }
    assert!(kinds.contains(&"counts".to_owned()), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "error").count(),
        2,
        "{kinds:?}"
    );
    // An oversized frame closes the socket without harming the server.
    let _ = ws.send(Message::text("x".repeat(200 * 1024))).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    healthy(&cp).await;
    cp.cleanup().await;
}
