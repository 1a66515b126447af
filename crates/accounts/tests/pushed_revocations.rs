//! PostgreSQL pushes revocations: an instance whose poll would next run in
//! an hour still learns of a logout on another instance, because its
//! listening connection hears the notice the commit sends.

mod support;

use std::time::{Duration, Instant};

use accounts::AuditContext;
use accounts::background::{BackgroundConfig, start};
use storage::{Backend, DatabaseUrl};
use support::{PASSWORD, World, origin, secret};

/// Waits (up to a generous deadline that only guards against a hang) until
/// `seen` holds.
async fn until(what: &str, seen: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen() {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_reaches_a_listening_instance_without_its_poll() {
    let world = World::new(Backend::Postgres);
    world.user("kim@example.com", None);
    let here = world.accounts.clone();
    let there = world.second_instance();
    let url = DatabaseUrl::parse(&world.db.db.url_string()).unwrap();
    let background = start(
        there.clone(),
        BackgroundConfig {
            // Only the push can bring the news within this test.
            revocation_poll: Duration::from_secs(3600),
            revocation_push: Some(url),
            ..BackgroundConfig::default()
        },
    )
    .await
    .unwrap();
    let login = || {
        let here = here.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                here.login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.1"))
                    .unwrap()
                    .claims
            })
            .await
            .unwrap()
        }
    };
    let logout = |claims: &auth_core::AccessClaims| {
        let (here, sub, sid) = (here.clone(), claims.sub.clone(), claims.sid.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                here.logout(&sub, &sid, &AuditContext::default()).unwrap()
            })
            .await
            .unwrap();
        }
    };
    // The first one may arrive with the listener's own start (it wakes the
    // poll when it connects); once it has, the listener is up.
    let first = login().await;
    let second = login().await;
    logout(&first).await;
    until("the first logout reaching the other instance", || {
        there
            .verifier()
            .revocations()
            .is_revoked(&first.sid, &first.jti)
    })
    .await;
    // Now only a notice can bring the second one.
    assert!(
        !there
            .verifier()
            .revocations()
            .is_revoked(&second.sid, &second.jti)
    );
    logout(&second).await;
    until("the second logout reaching the other instance", || {
        there
            .verifier()
            .revocations()
            .is_revoked(&second.sid, &second.jti)
    })
    .await;
    background.stop();
}
