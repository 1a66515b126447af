//! Refresh-token rotations written together (group commit), on SQLite and
//! PostgreSQL: rotations that arrive at once each get their own answer, and
//! every answer holds only what was committed. Which rotations share a batch
//! depends on timing; these properties must hold however they are grouped.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use accounts::{AccountsError, IssuedTokens};
use secrecy::{ExposeSecret, SecretString};
use storage::Backend;
use support::{PASSWORD, World, origin, secret};

backend_tests!(
    rotations_arriving_together_each_get_their_own_answer,
    two_instances_rotating_the_same_tokens_leave_one_chain_each,
);

enum Ask {
    /// The token's own rotation.
    Rotate(SecretString),
    /// The token presented with another session: refused, not spent.
    WrongSession(SecretString, String),
    Unknown,
}

fn rotations_arriving_together_each_get_their_own_answer(backend: Backend) {
    let world = World::new(backend);
    for name in ["ann", "bob", "cho"] {
        world.user(&format!("{name}@example.com"), None);
    }
    let accounts = &world.accounts;
    let logins: Vec<IssuedTokens> = (0..24)
        .map(|i| {
            let email = ["ann", "bob", "cho"][i % 3];
            accounts
                .login(
                    &format!("{email}@example.com"),
                    &secret(PASSWORD),
                    &origin("10.9.0.1"),
                )
                .unwrap()
        })
        .collect();
    let mut asks: Vec<Ask> = logins[..20]
        .iter()
        .map(|t| Ask::Rotate(t.refresh_token.clone()))
        .collect();
    // The same token twice at once: within the grace window both succeed.
    asks.push(Ask::Rotate(logins[0].refresh_token.clone()));
    asks.push(Ask::WrongSession(
        logins[20].refresh_token.clone(),
        logins[21].claims.sid.clone(),
    ));
    asks.push(Ask::Unknown);

    let barrier = Arc::new(Barrier::new(asks.len()));
    let answers: Vec<Result<IssuedTokens, AccountsError>> = std::thread::scope(|scope| {
        let running: Vec<_> = asks
            .iter()
            .map(|ask| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    let from = origin("10.9.0.2");
                    match ask {
                        Ask::Rotate(token) => accounts.refresh(token, &from),
                        Ask::WrongSession(token, sid) => {
                            accounts.refresh_in_session(token, Some(sid), &from)
                        }
                        Ask::Unknown => accounts.refresh(&secret("no-such-token"), &from),
                    }
                })
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });

    let mut fresh = HashSet::new();
    for (i, (ask, answer)) in asks.iter().zip(&answers).enumerate() {
        match ask {
            Ask::Rotate(_) => {
                let tokens = answer.as_ref().unwrap_or_else(|e| panic!("{i}: {e}"));
                let session = if i < 20 { i } else { 0 };
                assert_eq!(tokens.claims.sid, logins[session].claims.sid, "{i}");
                assert_eq!(tokens.claims.sub, logins[session].claims.sub, "{i}");
                assert!(fresh.insert(tokens.refresh_token.expose_secret().to_owned()));
                let verified = accounts.verifier().access(&tokens.access_token, now());
                assert!(verified.is_ok(), "{i}: {verified:?}");
            }
            Ask::WrongSession(..) | Ask::Unknown => {
                assert!(
                    matches!(answer, Err(AccountsError::InvalidRefreshToken)),
                    "{i}: {answer:?}"
                );
            }
        }
    }
    // Every answer was committed: each new token rotates once more.
    for tokens in answers.iter().flatten() {
        accounts
            .refresh(&tokens.refresh_token, &origin("10.9.0.3"))
            .unwrap();
    }
    // The token presented with the wrong session was not spent.
    let kept = accounts
        .refresh(&logins[20].refresh_token, &origin("10.9.0.3"))
        .unwrap();
    assert_eq!(kept.claims.sid, logins[20].claims.sid);
}

/// Two instances (two writers) rotating the same tokens at the same time:
/// the database decides the race, within the grace window both answers are
/// siblings, and every token handed out is live exactly once.
fn two_instances_rotating_the_same_tokens_leave_one_chain_each(backend: Backend) {
    let world = World::new(backend);
    world.user("dee@example.com", None);
    let one = world.accounts.clone();
    let two = world.second_instance();
    let logins: Vec<IssuedTokens> = (0..8)
        .map(|_| {
            one.login("dee@example.com", &secret(PASSWORD), &origin("10.9.1.1"))
                .unwrap()
        })
        .collect();
    let barrier = Arc::new(Barrier::new(2 * logins.len()));
    let answers: Vec<IssuedTokens> = std::thread::scope(|scope| {
        let running: Vec<_> = logins
            .iter()
            .flat_map(|login| [(&one, login), (&two, login)])
            .map(|(instance, login)| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    instance
                        .refresh(&login.refresh_token, &origin("10.9.1.2"))
                        .unwrap()
                })
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let distinct: HashSet<&str> = answers
        .iter()
        .map(|t| t.refresh_token.expose_secret())
        .collect();
    assert_eq!(distinct.len(), answers.len());
    for tokens in &answers {
        two.refresh(&tokens.refresh_token, &origin("10.9.1.3"))
            .unwrap();
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
