//! Process lifecycle: SIGTERM drains and exits promptly; bad configuration
//! stops both binaries with status 64 and a message naming the setting.

use std::time::Duration;

use serde_json::json;
use sovereign_e2e::{Agent, Backend, ControlPlane, FAST, bin, eventually, wait_online};

async fn sigterm_exits_within_ten_seconds(backend: Backend) {
    let mut cp = ControlPlane::start(backend).await;
    let mut agent = Agent::new(FAST);
    let id = agent.enroll_with(&cp, json!({}), &[]).await;
    agent.start();
    wait_online(&cp, &id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (took, status) = agent.terminate().await;
    assert!(took < Duration::from_secs(10), "agent took {took:?}");
    assert!(
        status.is_some_and(|s| s.success()),
        "agent exit: {status:?}\n{}",
        agent.logs()
    );
    assert!(
        agent.logs().contains("Link stopped"),
        "the agent flushed its outbox: {}",
        agent.logs()
    );

    // The control plane drains with a live agent connected.
    agent.start();
    wait_online(&cp, &id).await;
    let (took, status) = cp.terminate().await;
    assert!(
        took < Duration::from_secs(10),
        "control plane took {took:?}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "control plane exit: {status:?}\n{}",
        cp.logs()
    );
    assert!(cp.logs().contains("Stopped."));
    // The agent notices and keeps trying, without exiting.
    eventually(Duration::from_secs(10), "the agent to notice", || async {
        agent.logs().contains("retrying").then_some(())
    })
    .await;
    assert!(agent.pid().is_some());
    cp.cleanup().await;
}
on_both!(sigterm_exits_within_ten_seconds);

#[tokio::test]
async fn bad_configuration_exits_64_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    type Case<'a> = (&'a str, Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "sovereign",
            vec!["serve".into(), "--grpc-listen".into(), "nowhere".into()],
            vec![],
            "grpc.listen",
        ),
        (
            "sovereign",
            vec!["serve".into()],
            vec![("SOVEREIGN_AGENT_CERT_TTL", "3d")],
            "SOVEREIGN_AGENT_CERT_TTL",
        ),
        (
            "sovereign",
            vec!["serve".into(), "--database-url".into(), "mysql://x".into()],
            vec![],
            "--database-url",
        ),
        (
            "sovereign-agent",
            vec![
                "run".into(),
                "--state-dir".into(),
                dir.path().display().to_string(),
            ],
            vec![("SOVEREIGN_AGENT_SAMPLE_INTERVAL", "0s")],
            "metrics.sample_interval",
        ),
        (
            "sovereign-agent",
            vec![
                "run".into(),
                "--state-dir".into(),
                dir.path().display().to_string(),
            ],
            vec![("SOVEREIGN_AGENT_OUTBOX_MAX", "lots")],
            "outbox.max_bytes",
        ),
    ];
    for (binary, args, env, needle) in cases {
        let out = tokio::process::Command::new(bin(binary))
            .args(&args)
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{binary} {args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{binary} {args:?} should name {needle}: {stderr}"
        );
    }
    // A config file with an unknown key is refused too.
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[grpc]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let out = tokio::process::Command::new(bin("sovereign"))
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("grpc.lisen"));
    // An agent that is not enrolled says what to do.
    let out = tokio::process::Command::new(bin("sovereign-agent"))
        .args(["run", "--state-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sovereign-agent enroll"));
}

#[tokio::test]
async fn admin_commands_create_and_reset_users() {
    let cp = ControlPlane::start(Backend::Sqlite).await;
    assert_eq!(
        cp.admin_password.len(),
        20,
        "the first start prints the admin password"
    );
    let run = |args: Vec<String>| async move {
        let out = tokio::process::Command::new(bin("sovereign"))
            .args(&args)
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let base = |cmd: &str| {
        vec![
            "admin".to_owned(),
            cmd.to_owned(),
            "--data-dir".into(),
            cp.data_dir().display().to_string(),
            "--database-url".into(),
            cp.db.url.clone(),
        ]
    };
    let mut create = base("create");
    create.extend([
        "--username".into(),
        "Ops.Person".into(),
        "--role".into(),
        "operator".into(),
    ]);
    let (ok, text) = run(create.clone()).await;
    assert!(
        ok && text.contains("Created user ops.person (operator)"),
        "{text}"
    );
    let (ok, text) = run(create).await;
    assert!(!ok && text.contains("already exists"), "{text}");
    let mut reset = base("reset-password");
    reset.extend(["--username".into(), "admin".into()]);
    let (ok, text) = run(reset).await;
    assert!(ok && text.contains("New password for admin"), "{text}");
    let new_password = text.trim().rsplit(' ').next().unwrap().to_owned();
    let client = reqwest::Client::new();
    let login = |pw: String| {
        client
            .post(format!("{}/api/v1/auth/login", cp.api()))
            .json(&json!({ "username": "admin", "password": pw }))
            .send()
    };
    assert_eq!(
        login(cp.admin_password.clone()).await.unwrap().status(),
        401,
        "the old password no longer works"
    );
    assert_eq!(login(new_password).await.unwrap().status(), 200);
    cp.cleanup().await;
}
