//! Tests of the spawn wrapper: the clean environment, the user switch, and
//! that dropping a child kills its group.

use super::*;

fn base() -> BaseEnv {
    BaseEnv::capture(&|k| match k {
        "PATH" => Some("/usr/bin:/bin".into()),
        "HOME" => Some("/root".into()),
        "SOVEREIGN_JOIN_TOKEN" => Some("secret".into()),
        _ => None,
    })
}

#[test]
fn children_start_from_a_clean_environment() {
    let spec = Spec {
        program: "env".into(),
        env: vec![
            ("EXTRA".into(), "1".into()),
            ("PATH".into(), "/opt/bin".into()),
        ],
        cwd: Some("/tmp".into()),
        ..Spec::default()
    };
    let p = prepare(&spec, &base()).unwrap();
    assert_eq!(p.program, "env");
    assert!(p.env.contains(&("EXTRA".into(), "1".into())));
    assert!(p.env.contains(&("PATH".into(), "/opt/bin".into())));
    assert!(!p.env.iter().any(|(k, _)| k == "SOVEREIGN_JOIN_TOKEN"));
    assert_eq!(p.cwd, PathBuf::from("/tmp"));
    let missing = Spec {
        cwd: Some("/nonexistent/dir".into()),
        ..spec
    };
    assert!(matches!(
        prepare(&missing, &base()),
        Err(SpawnError::Cwd(_))
    ));
}

#[test]
fn run_as_wraps_the_command_in_setpriv() {
    if !nix::unistd::geteuid().is_root() {
        let err = prepare(
            &Spec {
                program: "id".into(),
                user: Some("root".into()),
                ..Spec::default()
            },
            &base(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("root"), "{err}");
        println!("SKIPPED the setpriv half of run_as_wraps_the_command_in_setpriv: not root");
        return;
    }
    let spec = Spec {
        program: "id".into(),
        args: vec!["-u".into()],
        user: Some("nobody".into()),
        ..Spec::default()
    };
    let p = prepare(&spec, &base()).unwrap();
    assert!(p.program.ends_with("setpriv"), "{p:?}");
    assert_eq!(&p.args[p.args.len() - 3..], ["--", "id", "-u"]);
    assert!(p.env.contains(&("USER".into(), "nobody".into())));
    let err = prepare(
        &Spec {
            user: Some("no-such-user-here".into()),
            ..spec
        },
        &base(),
    )
    .unwrap_err();
    assert!(matches!(err, SpawnError::NoSuchUser(_)), "{err}");
}

#[tokio::test]
async fn dropping_a_child_kills_its_group() {
    use tokio::io::AsyncBufReadExt;
    let spec = Spec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "sleep 1000 & echo $!; sleep 1000".into()],
        ..Spec::default()
    };
    let mut child = spawn(&spec, &base()).unwrap();
    let leader = child.id().unwrap();
    let mut lines = tokio::io::BufReader::new(child.take_stdout().unwrap()).lines();
    let bg: u32 = lines.next_line().await.unwrap().unwrap().parse().unwrap();
    drop(child);
    let gone = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    };
    let t = std::time::Instant::now();
    while !(gone(bg) && gone(leader)) {
        assert!(t.elapsed().as_secs() < 10, "the group outlived its handle");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
