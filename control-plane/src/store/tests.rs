//! Store tests, each run against a fresh SQLite file and a fresh PostgreSQL
//! database (on `SOVEREIGN_TEST_PG`, default the local server).

use std::future::Future;
use std::time::Duration;

use super::{Store, StoreError};
use crate::enroll::{EnrollError, NewToken, RedeemError, TokenSecret};
use crate::fleet::{AgentId, HostFacts};
use crate::labels::Labels;
use crate::metrics::{Point, Stat};
use crate::pki::{Authority, IssuedCert, PkiError, now_ms};
use crate::projects::ProjectId;
use crate::store::{BatchRef, CertCheck};

pub fn pg_admin_url() -> String {
    std::env::var("SOVEREIGN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh SQLite store in a temp dir (kept as long as the dir lives).
pub async fn temp_sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    (dir, store)
}

/// Runs `body` on SQLite, then on PostgreSQL.
pub async fn on_both<F, Fut>(body: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let (_dir, store) = temp_sqlite().await;
    body(store).await;

    if std::env::var("SOVEREIGN_TEST_SKIP_PG").is_ok() {
        eprintln!("NOTE: PostgreSQL half of this test skipped (SOVEREIGN_TEST_SKIP_PG is set)");
        return;
    }
    let admin_url = pg_admin_url();
    let name = format!("sov_t_{}", hex::encode(rand::random::<[u8; 6]>()));
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required for this test ({e}); set SOVEREIGN_TEST_SKIP_PG=1 to skip"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap();
    let store = Store::open(&format!("{base}/{name}")).await.unwrap();
    body(store.clone()).await;
    store.close().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
}

fn new_token(uses: u32, ttl: Duration) -> NewToken {
    NewToken {
        project: ProjectId::default_project(),
        ttl,
        uses,
        labels: Labels::parse_pairs(["env=test"]).unwrap(),
        description: String::new(),
    }
}

fn csr() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec()
}

fn signer<'a>(
    ca: &'a Authority,
    csr: &'a [u8],
) -> impl FnOnce(&AgentId) -> Result<IssuedCert, PkiError> + 'a {
    move |id| ca.sign_agent(id, csr, Duration::from_secs(3600))
}

#[tokio::test]
async fn tokens_redeem_atomically_and_explain_refusals() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Authority::load_or_create(pki.path(), &[]).unwrap();
    on_both(|store| {
        let ca = &ca;
        async move {
            let csr = csr();
            let secret = TokenSecret::generate();
            store
                .create_token(
                    &new_token(1, Duration::from_secs(3600)),
                    &secret.hash(),
                    now_ms(),
                )
                .await
                .unwrap();
            let facts = HostFacts {
                hostname: "web-1".into(),
                ..HostFacts::default()
            };
            let ok = store
                .enroll(&secret.hash(), "m-1", &facts, "0.1.0", signer(ca, &csr))
                .await
                .unwrap();
            assert!(!ok.reenrolled);
            assert_eq!(ok.labels.get("env"), Some("test"));
            let again = store
                .enroll(&secret.hash(), "m-2", &facts, "0.1.0", signer(ca, &csr))
                .await;
            assert!(
                matches!(again, Err(EnrollError::Token(RedeemError::UsedUp))),
                "{again:?}"
            );
            let unknown = store
                .enroll(
                    &TokenSecret::generate().hash(),
                    "m-2",
                    &facts,
                    "",
                    signer(ca, &csr),
                )
                .await;
            assert!(matches!(
                unknown,
                Err(EnrollError::Token(RedeemError::Unknown))
            ));

            // Expired: created with a past expiry.
            let old = TokenSecret::generate();
            store
                .create_token(
                    &new_token(5, Duration::from_secs(60)),
                    &old.hash(),
                    now_ms() - 120_000,
                )
                .await
                .unwrap();
            let expired = store
                .enroll(&old.hash(), "m-3", &facts, "", signer(ca, &csr))
                .await;
            assert!(matches!(
                expired,
                Err(EnrollError::Token(RedeemError::Expired))
            ));

            // Revoked.
            let rev = TokenSecret::generate();
            let t = store
                .create_token(
                    &new_token(5, Duration::from_secs(3600)),
                    &rev.hash(),
                    now_ms(),
                )
                .await
                .unwrap();
            assert!(store.revoke_token(&t.id, now_ms()).await.unwrap());
            let revoked = store
                .enroll(&rev.hash(), "m-3", &facts, "", signer(ca, &csr))
                .await;
            assert!(matches!(
                revoked,
                Err(EnrollError::Token(RedeemError::Revoked))
            ));
        }
    })
    .await;
}

#[tokio::test]
async fn one_use_token_race_has_exactly_one_winner() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Authority::load_or_create(pki.path(), &[]).unwrap();
    on_both(|store| {
        let ca = &ca;
        async move {
            let secret = TokenSecret::generate();
            store
                .create_token(
                    &new_token(1, Duration::from_secs(3600)),
                    &secret.hash(),
                    now_ms(),
                )
                .await
                .unwrap();
            let csr = csr();
            let attempts = (0..100).map(|i| {
                let store = store.clone();
                let hash = secret.hash();
                let csr = csr.clone();
                async move {
                    let facts = HostFacts::default();
                    store
                        .enroll(&hash, &format!("race-{i}"), &facts, "", |id| {
                            ca.sign_agent(id, &csr, Duration::from_secs(60))
                        })
                        .await
                }
            });
            let results = futures::future::join_all(attempts).await;
            let wins = results.iter().filter(|r| r.is_ok()).count();
            let used_up = results
                .iter()
                .filter(|r| matches!(r, Err(EnrollError::Token(RedeemError::UsedUp))))
                .count();
            assert_eq!(
                wins,
                1,
                "{:?}",
                results
                    .iter()
                    .filter_map(|r| r.as_ref().err())
                    .take(3)
                    .collect::<Vec<_>>()
            );
            assert_eq!(used_up, 99);
            assert_eq!(store.list_agents().await.unwrap().len(), 1);
        }
    })
    .await;
}

#[tokio::test]
async fn reenrolling_a_machine_keeps_its_id_and_revokes_old_certs() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Authority::load_or_create(pki.path(), &[]).unwrap();
    on_both(|store| {
        let ca = &ca;
        async move {
            let secret = TokenSecret::generate();
            store
                .create_token(
                    &new_token(3, Duration::from_secs(3600)),
                    &secret.hash(),
                    now_ms(),
                )
                .await
                .unwrap();
            let csr = csr();
            let facts = HostFacts::default();
            let first = store
                .enroll(&secret.hash(), "same", &facts, "", signer(ca, &csr))
                .await
                .unwrap();
            let first_serial = crate::pki::peer_identity(&first.certificate_der)
                .unwrap()
                .serial;
            let second = store
                .enroll(&secret.hash(), "same", &facts, "", signer(ca, &csr))
                .await
                .unwrap();
            assert!(second.reenrolled);
            assert_eq!(first.agent_id, second.agent_id);
            assert_eq!(store.list_agents().await.unwrap().len(), 1);
            let second_serial = crate::pki::peer_identity(&second.certificate_der)
                .unwrap()
                .serial;
            assert_eq!(
                store
                    .check_cert(&first.agent_id, &first_serial)
                    .await
                    .unwrap(),
                CertCheck::CertRevoked
            );
            assert_eq!(
                store
                    .check_cert(&first.agent_id, &second_serial)
                    .await
                    .unwrap(),
                CertCheck::Valid { acked_seq: 0 }
            );

            // Another project's token cannot take the machine over.
            let other = ProjectId::parse("other").unwrap();
            store.create_project(&other, now_ms()).await.unwrap();
            let foreign = TokenSecret::generate();
            store
                .create_token(
                    &NewToken {
                        project: other,
                        ..new_token(1, Duration::from_secs(3600))
                    },
                    &foreign.hash(),
                    now_ms(),
                )
                .await
                .unwrap();
            let refused = store
                .enroll(&foreign.hash(), "same", &facts, "", signer(ca, &csr))
                .await;
            assert!(
                matches!(refused, Err(EnrollError::WrongProject { .. })),
                "{refused:?}"
            );
            // ...and the refused attempt did not consume the token.
            let t = store
                .list_tokens()
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.project.as_str() == "other")
                .unwrap();
            assert_eq!(t.uses_left, 1);

            // Revocation covers the agent and its certificates.
            store
                .revoke_agent(&first.agent_id, now_ms())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                store
                    .check_cert(&first.agent_id, &second_serial)
                    .await
                    .unwrap(),
                CertCheck::AgentRevoked
            );
        }
    })
    .await;
}

#[tokio::test]
async fn bad_csr_costs_no_token_use() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Authority::load_or_create(pki.path(), &[]).unwrap();
    on_both(|store| {
        let ca = &ca;
        async move {
            let secret = TokenSecret::generate();
            store
                .create_token(
                    &new_token(1, Duration::from_secs(3600)),
                    &secret.hash(),
                    now_ms(),
                )
                .await
                .unwrap();
            let r = crate::enroll::enroll(
                &store,
                ca,
                Duration::from_secs(60),
                crate::enroll::EnrollRequest {
                    token: secret.clone(),
                    csr_der: b"not a csr",
                    machine_id: "m".into(),
                    facts: HostFacts::default(),
                    agent_version: String::new(),
                },
            )
            .await;
            assert!(matches!(r, Err(EnrollError::Csr(_))));
            assert_eq!(store.list_tokens().await.unwrap()[0].uses_left, 1);
            assert!(store.list_agents().await.unwrap().is_empty());
        }
    })
    .await;
}

fn point(ts: i64, cpu: f64) -> Point {
    Point {
        ts_ms: ts,
        interval_ms: 10_000,
        stats: vec![Stat {
            series: "cpu".into(),
            min: cpu,
            avg: cpu,
            max: cpu,
            weight: 10_000.0,
        }],
    }
}

#[tokio::test]
async fn metrics_are_deduplicated_and_rolled_up() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Authority::load_or_create(pki.path(), &[]).unwrap();
    on_both(|store| {
        let ca = &ca;
        async move {
            let secret = TokenSecret::generate();
            store
                .create_token(
                    &new_token(1, Duration::from_secs(3600)),
                    &secret.hash(),
                    now_ms(),
                )
                .await
                .unwrap();
            let csr = csr();
            let agent = store
                .enroll(
                    &secret.hash(),
                    "m",
                    &HostFacts::default(),
                    "",
                    signer(ca, &csr),
                )
                .await
                .unwrap()
                .agent_id;
            let base = 1_800_000_000_000; // a minute boundary
            let first: Vec<Point> = (1..=3)
                .map(|i| point(base + i * 10_000, i as f64))
                .collect();
            assert_eq!(
                store
                    .ingest(&[BatchRef {
                        agent: &agent,
                        seq: 1,
                        points: &first
                    }])
                    .await
                    .unwrap(),
                3
            );
            // The same batch again (a lost ack) plus new points: only new ones count.
            let second: Vec<Point> = (1..=5)
                .map(|i| point(base + i * 10_000, i as f64))
                .collect();
            assert_eq!(
                store
                    .ingest(&[BatchRef {
                        agent: &agent,
                        seq: 2,
                        points: &second
                    }])
                    .await
                    .unwrap(),
                2
            );
            let points = store.points(&agent, base, base + 60_000).await.unwrap();
            assert_eq!(points.len(), 5);
            let rollups = store.rollups(&agent, base, base + 60_000).await.unwrap();
            assert_eq!(rollups.len(), 1);
            let cpu = &rollups[0].1[0];
            assert_eq!((cpu.min, cpu.max, cpu.weight), (1.0, 5.0, 50_000.0));
            assert!((cpu.avg - 3.0).abs() < 1e-9);
            assert_eq!(store.get_agent(&agent).await.unwrap().unwrap().acked_seq, 2);
            let (p, r) = store.prune_metrics(base + 30_000, base).await.unwrap();
            assert_eq!((p, r), (2, 0));
        }
    })
    .await;
}

/// A part like the recorder's: distinct bytes, starting as a zstd frame does.
fn recording_part(n: u8, len: usize) -> Vec<u8> {
    let mut part = vec![0x28, 0xb5, 0x2f, 0xfd];
    part.extend(std::iter::repeat_n(n, len));
    part
}

async fn parts_in_table(store: &Store, session: &str) -> i64 {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM terminal_recordings WHERE session_id = $1")
            .bind(session)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    n
}

#[tokio::test]
async fn recording_parts_come_back_in_order_from_files_on_sqlite_and_rows_on_postgres() {
    on_both(|store| async move {
        let agent = AgentId::new();
        store
            .open_terminal_session("rec-1", &agent, "admin", 1_000, 80, 24)
            .await
            .unwrap();
        let state = store.recording_state("rec-1").await.unwrap();
        assert!(!state.has_parts && state.recorded_upto == 0);
        assert!(store.recording_parts("rec-1").await.unwrap().is_empty());

        let parts: Vec<Vec<u8>> = (1..=3)
            .map(|n| recording_part(n, 1000 * n as usize))
            .collect();
        for (i, part) in parts.iter().enumerate() {
            store
                .append_recording("rec-1", vec![part.clone()], 100 * (i as u64 + 1))
                .await
                .unwrap();
        }
        assert_eq!(store.recording_parts("rec-1").await.unwrap(), parts);
        let state = store.recording_state("rec-1").await.unwrap();
        assert!(state.has_parts);
        assert_eq!(state.recorded_upto, 300);
        // A re-attached recorder that stores after the old one's last part
        // does not move the recorded offset back.
        let late = recording_part(4, 10);
        store
            .append_recording("rec-1", vec![late.clone()], 250)
            .await
            .unwrap();
        assert_eq!(
            store.recording_state("rec-1").await.unwrap().recorded_upto,
            300
        );
        let mut all = parts.clone();
        all.push(late);
        assert_eq!(store.recording_parts("rec-1").await.unwrap(), all);

        // Parts that queued up are stored together, in order; none is a no-op.
        let batch = vec![recording_part(5, 2000), recording_part(6, 10)];
        store
            .append_recording("rec-1", batch.clone(), 400)
            .await
            .unwrap();
        store
            .append_recording("rec-1", Vec::new(), 999)
            .await
            .unwrap();
        all.extend(batch);
        assert_eq!(store.recording_parts("rec-1").await.unwrap(), all);
        assert_eq!(
            store.recording_state("rec-1").await.unwrap().recorded_upto,
            400
        );
        // A batch with an empty part (it would not decode) stores nothing.
        let refused = store
            .append_recording("rec-1", vec![recording_part(7, 10), Vec::new()], 500)
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
        assert_eq!(store.recording_parts("rec-1").await.unwrap(), all);
        assert_eq!(
            store.recording_state("rec-1").await.unwrap().recorded_upto,
            400
        );

        // A part for a session that does not exist is refused and kept nowhere.
        let refused = store
            .append_recording("nobody", vec![recording_part(9, 10)], 10)
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotFound(_))),
            "{refused:?}"
        );
        assert!(store.recording_parts("nobody").await.unwrap().is_empty());

        match store.backend() {
            super::Backend::Sqlite => {
                // Each byte once, in a file beside the database; none in the table.
                assert_eq!(parts_in_table(&store, "rec-1").await, 0);
                let dir = store.recordings_dir().expect("a recordings directory");
                let file = dir.join("rec-1.rec");
                let on_disk: usize = all.iter().map(|p| p.len() + 4).sum();
                assert_eq!(std::fs::metadata(&file).unwrap().len(), on_disk as u64);
                assert!(!dir.join("nobody.rec").exists());
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = |p: &std::path::Path| {
                        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
                    };
                    assert_eq!(mode(dir), 0o700);
                    assert_eq!(mode(&file), 0o600);
                }
            }
            super::Backend::Postgres => {
                assert!(store.recordings_dir().is_none());
                assert_eq!(parts_in_table(&store, "rec-1").await, all.len() as i64);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_recording_file_survives_a_crash_mid_append_and_a_lost_tail() {
    let (_dir, store) = temp_sqlite().await;
    store
        .open_terminal_session("rec-2", &AgentId::new(), "admin", 1_000, 80, 24)
        .await
        .unwrap();
    let p = |n: u8| recording_part(n, 5000);
    let append = |n: u8| {
        let store = &store;
        async move {
            store
                .append_recording("rec-2", vec![p(n)], u64::from(n))
                .await
                .unwrap();
        }
    };
    append(1).await;
    append(2).await;
    let stored = || async { store.recording_parts("rec-2").await.unwrap() };
    let file = store.recordings_dir().unwrap().join("rec-2.rec");
    let committed = std::fs::metadata(&file).unwrap().len();

    // A crash after writing a part but before the row moved: the tail is
    // never read, and the next part replaces it.
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    std::io::Write::write_all(&mut torn, &[0xff; 3000]).unwrap();
    assert_eq!(stored().await, vec![p(1), p(2)]);
    append(3).await;
    assert_eq!(stored().await, vec![p(1), p(2), p(3)]);
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        committed + 5008,
        "the torn tail is gone"
    );

    // A file that ends inside its last part (an older copy restored, say):
    // the whole parts still play, and recording continues after them.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(committed + 100)
        .unwrap();
    assert_eq!(stored().await, vec![p(1), p(2)]);
    append(4).await;
    assert_eq!(stored().await, vec![p(1), p(2), p(4)]);

    // A file someone deleted: nothing to play, no error, and recording
    // starts it again.
    std::fs::remove_file(&file).unwrap();
    assert!(stored().await.is_empty());
    append(6).await;
    assert_eq!(stored().await, vec![p(6)]);

    // A session id that could leave the directory is refused.
    store
        .open_terminal_session("../escape", &AgentId::new(), "admin", 1_000, 80, 24)
        .await
        .unwrap();
    let refused = store.append_recording("../escape", vec![p(5)], 5).await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("not a terminal session id")),
        "{refused:?}"
    );
    assert!(!_dir.path().join("escape.rec").exists());
}

#[tokio::test]
async fn parts_stored_in_the_table_by_earlier_versions_play_before_those_in_a_file() {
    let (_dir, store) = temp_sqlite().await;
    store
        .open_terminal_session("rec-3", &AgentId::new(), "admin", 1_000, 80, 24)
        .await
        .unwrap();
    sqlx::query("INSERT INTO terminal_recordings (session_id, part, data) VALUES ($1, 0, $2)")
        .bind("rec-3")
        .bind(recording_part(1, 10))
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(store.recording_state("rec-3").await.unwrap().has_parts);
    store
        .append_recording("rec-3", vec![recording_part(2, 10)], 20)
        .await
        .unwrap();
    assert_eq!(
        store.recording_parts("rec-3").await.unwrap(),
        vec![recording_part(1, 10), recording_part(2, 10)]
    );
}
