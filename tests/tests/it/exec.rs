//! Remote exec through real agents: ordered output and exit codes on
//! several hosts, exactly-once under re-sending, timeouts that kill whole
//! process groups, and clear errors for offline agents.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sovereign_e2e::{Agent, Backend, ControlPlane, FAST, eventually, wait_online};

async fn start_agents(cp: &ControlPlane, n: usize, labels: Value) -> (Vec<Agent>, Vec<String>) {
    let mut agents = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let mut a = Agent::new(FAST);
        let id = a
            .enroll_with(
                cp,
                json!({ "labels": labels }),
                &["--hostname", &format!("exec-host-{i}")],
            )
            .await;
        a.start();
        wait_online(cp, &id).await;
        agents.push(a);
        ids.push(id);
    }
    (agents, ids)
}

fn stdout_of(run: &Value) -> String {
    run["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["stream"] == "stdout")
        .map(|o| o["data"].as_str().unwrap())
        .collect()
}

async fn exec_on_three_agents(backend: Backend) {
    let cp = ControlPlane::start(backend).await;
    let (_agents, ids) = start_agents(&cp, 3, json!({ "role": "exec-test" })).await;
    let (status, started) = cp
        .post(
            "/api/v1/exec",
            json!({ "target": { "labels": { "role": "exec-test" } }, "script": "for i in 1 2 3 4 5; do echo line-$i; done; echo oops >&2; exit 3", "concurrency": 2 }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["agents"], 3);
    let job = cp.wait_exec(started["id"].as_str().unwrap()).await;
    let runs = job["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for run in runs {
        assert!(ids.contains(&run["agent_id"].as_str().unwrap().to_owned()));
        assert_eq!(run["state"], "done", "{run}");
        assert_eq!(run["exit_code"], 3, "{run}");
        assert_eq!(
            stdout_of(run),
            "line-1\nline-2\nline-3\nline-4\nline-5\n",
            "ordered output: {run}"
        );
        let seqs: Vec<u64> = run["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["seq"].as_u64().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert!(
            run["output"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["stream"] == "stderr" && o["data"] == "oops\n"),
            "{run}"
        );
    }
    // The CLI streams per-host output and fails when a host fails.
    let out = cp
        .cli(&[
            "exec",
            "--label",
            "role=exec-test",
            "--",
            "echo",
            "hello from cli",
        ])
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..3 {
        assert!(
            stdout.contains(&format!("exec-host-{i} | hello from cli")),
            "{stdout}"
        );
    }
    let out = cp
        .cli(&["exec", "--label", "role=exec-test", "--", "false"])
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 ok, 3 failed"));
    // Every start and finish is in the audit log, and the chain holds.
    let actions = cp.audit_actions(100).await;
    assert!(
        actions.iter().filter(|a| *a == "exec.start").count() >= 3,
        "{actions:?}"
    );
    assert!(
        actions.iter().filter(|a| *a == "exec.finish").count() >= 9,
        "{actions:?}"
    );
    let (_, verify) = cp.get("/api/v1/audit/verify").await;
    assert_eq!(verify["intact"], true, "{verify}");
    cp.cleanup().await;
}
on_both!(exec_on_three_agents);

async fn a_resent_command_runs_once(backend: Backend) {
    let cp = ControlPlane::start(backend).await;
    let (mut agents, ids) = start_agents(&cp, 1, json!({})).await;
    let marker = tempfile::tempdir().unwrap();
    let file = marker.path().join("ran");
    let script = format!("echo ran >> {0}; sleep 4; echo finished", file.display());
    let (status, started) = cp
        .post(
            "/api/v1/exec",
            json!({ "target": { "ids": ids }, "script": script, "timeout": "60s" }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    eventually(Duration::from_secs(15), "the command to start", || async {
        file.exists().then_some(())
    })
    .await;
    // The agent dies and comes back while the command runs: the control
    // plane re-sends the same exec id on the new stream.
    agents[0].kill().await;
    agents[0].start();
    let job = cp.wait_exec(started["id"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let runs = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        runs.lines().count(),
        1,
        "the command ran more than once: {runs:?}; job {job}"
    );
    cp.cleanup().await;
}
on_both!(a_resent_command_runs_once);

async fn timeouts_kill_the_process_group(backend: Backend) {
    let cp = ControlPlane::start(backend).await;
    let (_agents, ids) = start_agents(&cp, 1, json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!(
        "sleep 1000 & echo $! >> {0}; (sleep 1000 & echo $! >> {0}; wait) & sleep 1000; echo never",
        pids.display()
    );
    let (_, started) = cp
        .post(
            "/api/v1/exec",
            json!({ "target": { "ids": ids }, "script": script, "timeout": "2s" }),
        )
        .await;
    let job = cp.wait_exec(started["id"].as_str().unwrap()).await;
    let run = &job["runs"][0];
    assert_eq!(run["timed_out"], true, "{run}");
    assert!(!stdout_of(run).contains("never"));
    let children: Vec<String> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(children.len(), 2);
    eventually(
        Duration::from_secs(5),
        "the forked children to be gone",
        || async {
            children
                .iter()
                .all(|pid| {
                    !std::path::Path::new(&format!("/proc/{pid}")).exists()
                        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                            .unwrap_or_default()
                            .contains(") Z ")
                })
                .then_some(())
        },
    )
    .await;
    cp.cleanup().await;
}
on_both!(timeouts_kill_the_process_group);

#[tokio::test]
async fn offline_and_unknown_agents_fail_at_once() {
    let cp = ControlPlane::start(Backend::Sqlite).await;
    let (mut agents, ids) = start_agents(&cp, 1, json!({})).await;
    agents[0].kill().await;
    eventually(
        Duration::from_secs(20),
        "the agent to go offline",
        || async { (cp.agent(&ids[0]).await["status"] == "offline").then_some(()) },
    )
    .await;
    let t0 = Instant::now();
    let (status, started) = cp
        .post(
            "/api/v1/exec",
            json!({ "target": { "ids": ids }, "argv": ["uptime"] }),
        )
        .await;
    assert_eq!(status, 201);
    let job = cp.wait_exec(started["id"].as_str().unwrap()).await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "no hang on an offline agent"
    );
    assert_eq!(job["runs"][0]["state"], "offline");
    assert!(
        job["runs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("offline")
    );
    let (status, body) = cp.post("/api/v1/exec", json!({ "target": { "ids": ["00000000-0000-7000-8000-000000000000"] }, "argv": ["uptime"] })).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown")
    );
    let (status, _) = cp
        .post("/api/v1/exec", json!({ "target": {}, "argv": ["uptime"] }))
        .await;
    assert_eq!(status, 400);
    cp.cleanup().await;
}
