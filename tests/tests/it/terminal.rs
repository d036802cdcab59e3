//! The browser terminal through the real relay, with a Rust WebSocket
//! client standing in for the browser: round trip, resize, reattach after
//! the control plane is SIGKILLed with no output lost, and a recording that
//! Debian's asciinema plays.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sovereign_e2e::{Agent, Backend, ControlPlane, FAST, eventually, wait_online};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A terminal viewer: what it rendered so far and its offset.
struct Viewer {
    ws: Ws,
    text: String,
    offset: u64,
}

async fn ticket(
    cp: &ControlPlane,
    cookie: &str,
    csrf: &str,
    agent: &str,
    session: Option<&str>,
) -> Value {
    let body = match session {
        Some(s) => json!({ "session_id": s }),
        None => json!({}),
    };
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/agents/{agent}/terminal/ticket",
            cp.api()
        ))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .header("origin", cp.api())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn attach(
    cp: &ControlPlane,
    cookie: &str,
    csrf: &str,
    agent: &str,
    session: Option<&str>,
    offset: u64,
    text: String,
) -> (Viewer, Value) {
    let t = ticket(cp, cookie, csrf, agent, session).await;
    let mut req = format!(
        "ws://127.0.0.1:{}/api/v1/agents/{agent}/terminal",
        cp.api_port
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("origin", cp.api().parse().unwrap());
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let auth = json!({ "type": "auth", "ticket": t["ticket"], "session_id": t["session_id"], "cols": 80, "rows": 24, "offset": offset });
    ws.send(Message::text(auth.to_string())).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(15), ws.next())
        .await
        .expect("an attached message")
        .unwrap()
        .unwrap();
    let Message::Text(t) = first else {
        panic!("expected attached first, got {first:?}")
    };
    let attached: Value = serde_json::from_str(t.as_str()).unwrap();
    assert_eq!(attached["type"], "attached", "{attached}");
    (Viewer { ws, text, offset }, attached)
}

impl Viewer {
    async fn type_in(&mut self, s: &str) {
        self.ws
            .send(Message::binary(s.as_bytes().to_vec()))
            .await
            .unwrap();
    }

    /// Reads output until `needle` appears, keeping offsets exact.
    async fn until(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !self.text.contains(needle) {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", self.text));
            match msg.unwrap().unwrap() {
                Message::Binary(b) => {
                    let offset = u64::from_be_bytes(b[..8].try_into().unwrap());
                    let data = &b[8..];
                    let end = offset + data.len() as u64;
                    assert!(
                        offset <= self.offset,
                        "a gap in the output: {offset} after {}",
                        self.offset
                    );
                    if end > self.offset {
                        let fresh = &data[usize::try_from(self.offset - offset).unwrap()..];
                        self.text.push_str(&String::from_utf8_lossy(fresh));
                        self.offset = end;
                    }
                }
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    assert_ne!(v["type"], "error", "{v}");
                }
                _ => {}
            }
        }
    }
}

async fn terminal_round_trip_resize_and_reattach(backend: Backend) {
    let mut cp = ControlPlane::start(backend).await;
    let mut agent = Agent::new(FAST);
    let id = agent.enroll_with(&cp, json!({}), &[]).await;
    agent.start();
    wait_online(&cp, &id).await;
    let (cookie, csrf) = cp.sign_in().await;
    let (mut v, attached) = attach(&cp, &cookie, &csrf, &id, None, 0, String::new()).await;
    let session = attached["session_id"].as_str().unwrap().to_owned();
    assert_eq!(attached["resumed"], false);
    let tag = format!("{:x}", rand::random::<u64>());

    v.type_in(&format!("echo hello-$((1+1))-{tag}\r")).await;
    v.until(&format!("hello-2-{tag}\r\n")).await;
    v.ws.send(Message::text(
        json!({ "type": "resize", "cols": 120, "rows": 40 }).to_string(),
    ))
    .await
    .unwrap();
    v.type_in("stty size\r").await;
    v.until("40 120").await;
    // Absurd sizes are clamped, not fatal.
    v.ws.send(Message::text(
        json!({ "type": "resize", "cols": 0, "rows": 100000 }).to_string(),
    ))
    .await
    .unwrap();
    v.ws.send(Message::text(
        json!({ "type": "resize", "cols": 120, "rows": 40 }).to_string(),
    ))
    .await
    .unwrap();

    // A paste far bigger than the relay's WebSocket read buffer arrives
    // whole: 600 lines of 99 characters in one 60,000-byte frame. The marker
    // first: once it shows, the shell has put the PTY back in line mode, so
    // the lines and the final Ctrl-D reach `wc` as lines and end-of-file.
    v.type_in(&format!(
        "echo paste-$((5+5)); wc -c | sed 's/^/pasted-{tag}=/'\r"
    ))
    .await;
    v.until("paste-10\r\n").await;
    v.type_in(&format!("{}\r", "x".repeat(99)).repeat(600))
        .await;
    v.type_in("\x04").await;
    v.until(&format!("pasted-{tag}=60000")).await;

    // Output produced while the control plane is dead must not be lost.
    v.type_in(&format!("sleep 2; echo while-down-$((2+1))-{tag}\r"))
        .await;
    v.until("sleep 2").await;
    cp.kill().await;
    let (offset, text) = (v.offset, v.text.clone());
    drop(v);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cp.restart().await;
    wait_online(&cp, &id).await;
    let (cookie, csrf) = cp.sign_in().await;
    let t0 = std::time::Instant::now();
    let (mut v, attached) = attach(&cp, &cookie, &csrf, &id, Some(&session), offset, text).await;
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(attached["resumed"], true, "{attached}");
    v.until(&format!("while-down-3-{tag}")).await;
    v.type_in(&format!("echo after-$((3+1))-{tag}\r")).await;
    v.until(&format!("after-4-{tag}\r\n")).await;
    for marker in [format!("hello-2-{tag}"), format!("while-down-3-{tag}")] {
        assert_eq!(
            v.text.matches(&marker).count(),
            1,
            "replay must not duplicate output: {marker}"
        );
    }

    // The live sessions list offers it for resuming.
    let (_, sessions) = cp.get(&format!("/api/v1/agents/{id}/terminals")).await;
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["session_id"] == session.as_str()),
        "{sessions}"
    );

    // A second viewer takes the session over while the first is attached
    // and its recorder still holds the latest output unstored: the
    // recording gets that output once, not again from the new recorder.
    v.type_in(&format!("echo takeover-$((4+1))-{tag}\r")).await;
    v.until(&format!("takeover-5-{tag}\r\n")).await;
    let (offset, text) = (v.offset, v.text.clone());
    let (mut v, attached) = attach(&cp, &cookie, &csrf, &id, Some(&session), offset, text).await;
    assert_eq!(attached["resumed"], true, "{attached}");
    v.type_in(&format!("echo second-$((5+1))-{tag}\r")).await;
    v.until(&format!("second-6-{tag}\r\n")).await;

    // Exit: the session closes and its recording plays in asciinema.
    v.type_in("exit\r").await;
    let closed = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), v.ws.next())
            .await
            .expect("a closed message")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let m: Value = serde_json::from_str(t.as_str()).unwrap();
            if m["type"] == "closed" {
                break m;
            }
        }
    };
    assert_eq!(closed["exit_code"], 0, "{closed}");
    let (_, recordings) = cp.get(&format!("/api/v1/agents/{id}/recordings")).await;
    assert!(
        recordings
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["session_id"] == session.as_str() && r["ended_at"].is_i64()),
        "{recordings}"
    );
    let cast = cp.get_text(&format!("/api/v1/recordings/{session}")).await;
    let header: Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    // The output as recorded, joined (a marker may span two events).
    let output: String = cast
        .lines()
        .skip(1)
        .filter_map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            (event[1] == "o").then(|| event[2].as_str().unwrap().to_owned())
        })
        .collect();
    for marker in ["hello-2", "while-down-3", "takeover-5", "second-6"] {
        assert_eq!(
            output.matches(&format!("{marker}-{tag}")).count(),
            1,
            "the recording must have {marker} exactly once:\n{cast}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session.cast");
    std::fs::write(&file, &cast).unwrap();
    // asciinema wants a terminal even to print: `script` lends it one.
    match tokio::process::Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!("asciinema cat {}", file.display()))
        .arg("/dev/null")
        .stdin(std::process::Stdio::null())
        .output()
        .await
    {
        Ok(out) => {
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "asciinema rejected the recording: {}{shown}\n{cast}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                shown.contains(&format!("hello-2-{tag}"))
                    && shown.contains(&format!("while-down-3-{tag}")),
                "{shown}"
            );
        }
        Err(e) => {
            panic!("asciinema is required to validate recordings (apt-get install asciinema): {e}")
        }
    }
    let actions = cp.audit_actions(50).await;
    assert!(
        actions.iter().any(|a| a == "terminal.open")
            && actions.iter().any(|a| a == "terminal.close"),
        "{actions:?}"
    );
    cp.cleanup().await;
}
on_both!(terminal_round_trip_resize_and_reattach);

#[tokio::test]
async fn terminal_tickets_are_single_use_and_guarded() {
    let cp = ControlPlane::start(Backend::Sqlite).await;
    let mut agent = Agent::new(FAST);
    let id = agent.enroll_with(&cp, json!({}), &[]).await;
    agent.start();
    wait_online(&cp, &id).await;
    let (cookie, csrf) = cp.sign_in().await;
    // No CSRF token: refused.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/agents/{id}/terminal/ticket", cp.api()))
        .header("cookie", &cookie)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let t = ticket(&cp, &cookie, &csrf, &id, None).await;
    let connect = || async {
        let mut req = format!("ws://127.0.0.1:{}/api/v1/agents/{id}/terminal", cp.api_port)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("origin", cp.api().parse().unwrap());
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        tokio_tungstenite::connect_async(req).await.unwrap().0
    };
    let auth = json!({ "type": "auth", "ticket": t["ticket"], "session_id": t["session_id"], "cols": 80, "rows": 24, "offset": 0 }).to_string();
    let mut first = connect().await;
    first.send(Message::text(auth.clone())).await.unwrap();
    let msg = first.next().await.unwrap().unwrap();
    assert!(msg.to_text().unwrap().contains("attached"), "{msg:?}");
    // The same ticket again: refused with a clear message.
    let mut second = connect().await;
    second.send(Message::text(auth)).await.unwrap();
    let msg = second.next().await.unwrap().unwrap();
    assert!(
        msg.to_text().unwrap().contains("unknown, used or expired"),
        "{msg:?}"
    );
    // Garbage instead of auth.
    let mut third = connect().await;
    third.send(Message::binary(vec![0xff; 100])).await.unwrap();
    let msg = third.next().await.unwrap().unwrap();
    assert!(msg.to_text().unwrap().contains("auth"), "{msg:?}");
    // An offline agent gets a clear error at once.
    agent.kill().await;
    eventually(Duration::from_secs(20), "offline", || async {
        (cp.agent(&id).await["status"] == "offline").then_some(())
    })
    .await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/agents/{id}/terminal/ticket", cp.api()))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    cp.cleanup().await;
}
