//! Tests for exec specs and targets.

use super::*;
use crate::fleet::HostFacts;

fn spec() -> Spec {
    Spec {
        argv: vec!["uptime".into()],
        script: String::new(),
        env: BTreeMap::new(),
        cwd: String::new(),
        timeout_ms: 30_000,
        run_as: String::new(),
        max_output_bytes: 1 << 20,
    }
}

fn agent(project: &str, labels: &[&str], revoked: bool) -> AgentRecord {
    AgentRecord {
        id: AgentId::new(),
        project: ProjectId::parse(project).unwrap(),
        machine_id: String::new(),
        facts: HostFacts::default(),
        labels: Labels::parse_pairs(labels.iter().copied()).unwrap(),
        agent_version: String::new(),
        enrolled_at_ms: 0,
        last_seen_ms: None,
        revoked_at_ms: revoked.then_some(1),
        acked_seq: 0,
    }
}

#[test]
fn specs_are_validated() {
    assert!(spec().validate().is_ok());
    let both = Spec {
        script: "echo".into(),
        ..spec()
    };
    assert!(both.validate().is_err());
    let neither = Spec {
        argv: vec![],
        ..spec()
    };
    assert!(neither.validate().is_err());
    assert!(
        Spec {
            timeout_ms: 10,
            ..spec()
        }
        .validate()
        .is_err()
    );
    assert!(
        Spec {
            argv: vec!["a\0b".into()],
            ..spec()
        }
        .validate()
        .is_err()
    );
    let mut env = BTreeMap::new();
    env.insert("BAD-NAME".to_owned(), "x".to_owned());
    assert!(Spec { env, ..spec() }.validate().is_err());
    assert!(
        Spec {
            run_as: "root; rm".into(),
            ..spec()
        }
        .validate()
        .is_err()
    );
    assert_eq!(
        Spec {
            argv: vec![],
            script: "set -e\necho hi".into(),
            ..spec()
        }
        .summary(),
        "set -e"
    );
}

#[test]
fn targets_resolve_without_revoked_agents() {
    let fleet = vec![
        agent("default", &["env=prod"], false),
        agent("default", &["env=dev"], false),
        agent("web", &["env=prod"], false),
        agent("default", &["env=prod"], true),
    ];
    let by_label = Target {
        labels: Labels::parse_pairs(["env=prod"]).unwrap(),
        ..Target::default()
    };
    assert_eq!(by_label.resolve(fleet.clone()).unwrap().len(), 2);
    let by_project = Target {
        project: Some(ProjectId::parse("web").unwrap()),
        ..Target::default()
    };
    assert_eq!(by_project.resolve(fleet.clone()).unwrap().len(), 1);
    let by_id = Target {
        ids: vec![fleet[1].id.clone(), fleet[1].id.clone()],
        ..Target::default()
    };
    assert_eq!(
        by_id.resolve(fleet.clone()).unwrap().len(),
        1,
        "duplicates collapse"
    );
    let revoked = Target {
        ids: vec![fleet[3].id.clone()],
        ..Target::default()
    };
    assert!(matches!(
        revoked.resolve(fleet.clone()),
        Err(ExecError::UnknownAgent(_))
    ));
    assert!(matches!(
        Target::default().resolve(fleet.clone()),
        Err(ExecError::Invalid(_))
    ));
    let none = Target {
        labels: Labels::parse_pairs(["env=nope"]).unwrap(),
        ..Target::default()
    };
    assert!(matches!(none.resolve(fleet), Err(ExecError::NoTargets)));
}
