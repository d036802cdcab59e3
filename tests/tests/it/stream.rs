//! Metrics from a real agent: streamed, stored, read back; full rate while
//! watched; no gap and no duplicate across a control-plane crash.

use std::time::Duration;

use serde_json::{Value, json};
use sovereign_e2e::{Agent, Backend, ControlPlane, FAST, eventually, now_ms, wait_online};

async fn series(
    cp: &ControlPlane,
    id: &str,
    name: &str,
    from: i64,
    to: i64,
    step: &str,
) -> Vec<Value> {
    let (status, body) = cp
        .get(&format!(
            "/api/v1/agents/{id}/metrics?series={name}&from={from}&to={to}&step={step}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["points"].as_array().cloned().unwrap_or_default()
}

async fn enroll_stream_and_read_back(backend: Backend) {
    let cp = ControlPlane::start(backend).await;
    let mut agent = Agent::new(FAST);
    let id = agent
        .enroll_with(
            &cp,
            json!({ "labels": { "env": "e2e", "role": "web" } }),
            &["--hostname", "e2e-host"],
        )
        .await;
    agent.start();
    wait_online(&cp, &id).await;
    let start = now_ms() - 60_000;
    let points = eventually(Duration::from_secs(20), "three cpu points", || async {
        let p = series(&cp, &id, "cpu", start, now_ms(), "1s").await;
        (p.len() >= 3).then_some(p)
    })
    .await;
    for p in &points {
        let avg = p["avg"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&avg), "cpu {avg}");
    }
    let mem = series(&cp, &id, "mem.used", start, now_ms(), "1s").await;
    assert!(mem.iter().all(|p| p["avg"].as_f64().unwrap() > 0.0) && !mem.is_empty());

    let a = cp.agent(&id).await;
    assert_eq!(a["hostname"], "e2e-host");
    let names: Vec<&str> = a["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        names.contains(&"cpu") && names.iter().any(|s| s.starts_with("disk.used:")),
        "{names:?}"
    );
    assert_eq!(a["labels"]["role"], "web");
    assert!(a["facts"]["cpu_cores"].as_u64().unwrap() >= 1);
    let latest = &a["live"]["latest"]["values"];
    for key in [
        "cpu",
        "load.1",
        "mem.used",
        "mem.available",
        "swap.total",
        "uptime",
        "procs",
    ] {
        assert!(
            latest.get(key).is_some(),
            "latest point lacks {key}: {latest}"
        );
    }
    // Top processes arrive every 10 s.
    eventually(Duration::from_secs(15), "a process snapshot", || async {
        (cp.agent(&id).await["live"]["processes"]["by_memory"]
            .as_array()
            .is_some_and(|l| !l.is_empty()))
        .then_some(())
    })
    .await;

    // Filters and the CLI see it too.
    let (_, page) = cp.get("/api/v1/agents?label=env=e2e&status=online").await;
    assert_eq!(page["total"], 1);
    let (_, none) = cp.get("/api/v1/agents?label=env=prod").await;
    assert_eq!(none["total"], 0);
    let out = cp.cli(&["agent", "list"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("e2e-host"));

    // Prometheus can scrape the fleet.
    let text = cp.get_text("/api/v1/prometheus").await;
    assert!(text.contains("# TYPE sovereign_host_cpu gauge"), "{text}");
    assert!(
        text.contains(&format!(
            "sovereign_host_mem_used{{agent_id=\"{id}\",hostname=\"e2e-host\",project=\"default\"}}"
        )),
        "{text}"
    );

    // Rollups answer long ranges.
    let rolled = eventually(Duration::from_secs(10), "a rollup", || async {
        let r = series(&cp, &id, "cpu", now_ms() - 3_600_000, now_ms(), "1m").await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert!(rolled[0]["max"].as_f64().unwrap() >= rolled[0]["min"].as_f64().unwrap());
    cp.cleanup().await;
}
on_both!(enroll_stream_and_read_back);

async fn watching_switches_the_agent_to_full_rate(backend: Backend) {
    // Default 10 s summaries here: live 1 s samples can only come from full rate.
    let cp = ControlPlane::start(backend).await;
    let mut agent = Agent::new(&[]);
    let id = agent.enroll_with(&cp, json!({}), &[]).await;
    agent.start();
    wait_online(&cp, &id).await;
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/agents/{id}/live", cp.api()))
        .bearer_auth(&cp.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp;
    let mut seen: Vec<i64> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut buf = String::new();
    while seen.len() < 5 && tokio::time::Instant::now() < deadline {
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(5), body.chunk()).await
        else {
            continue;
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let v: Value = serde_json::from_str(data.trim()).unwrap();
            if v["type"] == "points" {
                seen.extend(
                    v["points"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["ts"].as_i64().unwrap()),
                );
            }
        }
    }
    seen.sort_unstable();
    seen.dedup();
    assert!(
        seen.len() >= 5,
        "expected full-rate samples while watching, got {seen:?}"
    );
    let newest: Vec<i64> = seen.iter().rev().take(3).copied().collect();
    assert!(
        newest.windows(2).all(|w| w[0] - w[1] <= 1500),
        "samples about 1 s apart: {newest:?}"
    );
    drop(body);
    // Once nobody watches, the agent is told to stop.
    eventually(
        Duration::from_secs(10),
        "the agent to leave full rate",
        || async { agent.logs().contains("full_rate=false").then_some(()) },
    )
    .await;
    cp.cleanup().await;
}
on_both!(watching_switches_the_agent_to_full_rate);

async fn control_plane_crash_leaves_no_gap_and_no_duplicate(backend: Backend) {
    let mut cp = ControlPlane::start(backend).await;
    let mut agent = Agent::new(FAST);
    let id = agent.enroll_with(&cp, json!({}), &[]).await;
    agent.start();
    wait_online(&cp, &id).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    cp.kill().await;
    let down_at = now_ms();
    tokio::time::sleep(Duration::from_secs(6)).await;
    cp.restart().await;
    wait_online(&cp, &id).await;
    let back_at = now_ms();
    // Wait until the back-fill has caught up past the outage.
    let points = eventually(
        Duration::from_secs(30),
        "back-filled points past the outage",
        || async {
            let p = series(&cp, &id, "uptime", down_at - 60_000, now_ms(), "1s").await;
            let caught_up = p
                .last()
                .is_some_and(|last| last["ts"].as_i64().unwrap() > back_at + 2000);
            caught_up.then_some(p)
        },
    )
    .await;
    let ts: Vec<i64> = points.iter().map(|p| p["ts"].as_i64().unwrap()).collect();
    let first = ts[0];
    let last = *ts.last().unwrap();
    assert!(
        first < down_at - 2000 && last > back_at,
        "the series spans the outage: {first}..{last}, down {down_at}, back {back_at}"
    );
    let gaps: Vec<_> = ts.windows(2).filter(|w| w[1] - w[0] != 1000).collect();
    assert!(gaps.is_empty(), "gaps or duplicates at {gaps:?}");
    assert_eq!(ts.len() as i64, (last - first) / 1000 + 1);
    // Each 1 s point holds exactly one sample: a duplicate would have merged two.
    let (_, raw) = cp
        .get(&format!(
            "/api/v1/agents/{id}/metrics?series=uptime&from={first}&to={last}&step=1s"
        ))
        .await;
    assert_eq!(raw["source"], "points");
    cp.cleanup().await;
}
on_both!(control_plane_crash_leaves_no_gap_and_no_duplicate);
