//! Refresh-token rotations written together (group commit), on SQLite and
//! PostgreSQL: rotations that arrive at once each get their own answer, and
//! every answer holds only what was committed. Which rotations share a batch
//! depends on timing; these properties must hold however they are grouped.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use accounts::{Accounts, AccountsError, IssuedTokens};
use secrecy::{ExposeSecret, SecretString};
use storage::Backend;
use support::{PASSWORD, World, origin, secret};

backend_tests!(
    rotations_arriving_together_each_get_their_own_answer,
    two_instances_rotating_the_same_tokens_leave_one_chain_each,
    siblings_rotated_on_two_instances_at_once_end_as_one_chain,
    siblings_rotated_on_two_instances_after_the_window_are_reuse,
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
    let answers = rotate_at_once(
        logins
            .iter()
            .flat_map(|login| [(&one, login), (&two, login)])
            .collect(),
    );
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

/// Forked sessions (two siblings from one token within the grace window)
/// whose siblings are rotated at the same moment on two instances: however
/// the two writers interleave (one spends the other's token first, or the
/// two wait on each other and PostgreSQL ends one, which is then written
/// again and finds its token spent within the window), a session left with
/// more than one live token stays marked forked, so its next rotations
/// leave exactly one live token and clear the mark.
fn siblings_rotated_on_two_instances_at_once_end_as_one_chain(backend: Backend) {
    let world = World::new(backend);
    let (sessions, siblings) = forked_sessions(&world);
    let one = world.accounts.clone();
    let two = world.second_instance();
    let answers = rotate_at_once(one_on_each(&siblings, &one, &two));
    for sid in &sessions {
        let (live, forked) = chains(&world, sid);
        assert!(live == 1 || forked, "{sid}: {live} live tokens, unmarked");
    }
    // Two more rotations of each session leave one chain: the first may
    // itself get a sibling (its token spent by the other instance's
    // rotation moments ago), the second claims a live token.
    for pair in answers.chunks(2) {
        let next = one
            .refresh(&pair[0].refresh_token, &origin("10.9.2.3"))
            .unwrap();
        one.refresh(&next.refresh_token, &origin("10.9.2.3"))
            .unwrap();
    }
    for sid in &sessions {
        assert_eq!(chains(&world, sid), (1, false), "{sid}");
    }
}

/// The same, after the grace window of each fork: the two siblings of a
/// session rotated at the same instant on two instances are what one
/// instance would make of them — one rotates (or neither), the other is
/// reuse, and the session ends. Neither instance may skip the other's
/// branch because it is busy with it and so leave two chains.
fn siblings_rotated_on_two_instances_after_the_window_are_reuse(backend: Backend) {
    let world = World::new(backend);
    let (sessions, siblings) = forked_sessions(&world);
    {
        // A minute ago: every fork's window is over.
        use diesel::prelude::*;
        use storage::schema::refresh_tokens;
        let conn = &mut world.db.pool.get().unwrap();
        let earlier = (chrono::Utc::now() - chrono::TimeDelta::seconds(60)).naive_utc();
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::session_id.eq_any(&sessions))
                .filter(refresh_tokens::used_at.is_not_null()),
        )
        .set(refresh_tokens::used_at.eq(earlier))
        .execute(conn)
        .unwrap();
    }
    let one = world.accounts.clone();
    let two = world.second_instance();
    let answers = try_rotate_at_once(one_on_each(&siblings, &one, &two));
    for (sid, pair) in sessions.iter().zip(answers.chunks(2)) {
        assert!(
            pair.iter()
                .any(|r| matches!(r, Err(AccountsError::RefreshTokenReused(_)))),
            "{sid}: {pair:?}"
        );
        for tokens in pair.iter().flatten() {
            assert!(
                one.refresh(&tokens.refresh_token, &origin("10.9.2.4"))
                    .is_err(),
                "{sid}: a chain outlived the reuse"
            );
        }
    }
}

/// Each pair of siblings split between the instances: the first to `one`,
/// the second to `two`.
fn one_on_each<'a>(
    siblings: &'a [(IssuedTokens, IssuedTokens)],
    one: &'a Arc<Accounts>,
    two: &'a Arc<Accounts>,
) -> Vec<(&'a Arc<Accounts>, &'a IssuedTokens)> {
    siblings
        .iter()
        .flat_map(|(a, b)| [(one, a), (two, b)])
        .collect()
}

/// Each refresh token rotated on its instance, all at the same moment (one
/// thread each, released together); the answers in order, all successful.
fn rotate_at_once(asks: Vec<(&Arc<Accounts>, &IssuedTokens)>) -> Vec<IssuedTokens> {
    try_rotate_at_once(asks)
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// [`rotate_at_once`], the answers as they came.
fn try_rotate_at_once(
    asks: Vec<(&Arc<Accounts>, &IssuedTokens)>,
) -> Vec<Result<IssuedTokens, AccountsError>> {
    let barrier = Arc::new(Barrier::new(asks.len()));
    std::thread::scope(|scope| {
        let running: Vec<_> = asks
            .into_iter()
            .map(|(instance, tokens)| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    instance.refresh(&tokens.refresh_token, &origin("10.9.1.2"))
                })
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// Eight sessions of a new user, each forked: its login token refreshed
/// twice. Returns the session ids and each session's two siblings.
fn forked_sessions(world: &World) -> (Vec<String>, Vec<(IssuedTokens, IssuedTokens)>) {
    world.user("eve@example.com", None);
    let accounts = &world.accounts;
    let from = origin("10.9.2.1");
    let logins: Vec<IssuedTokens> = (0..8)
        .map(|_| {
            accounts
                .login("eve@example.com", &secret(PASSWORD), &from)
                .unwrap()
        })
        .collect();
    let siblings: Vec<(IssuedTokens, IssuedTokens)> = logins
        .iter()
        .map(|login| {
            let a = accounts.refresh(&login.refresh_token, &from).unwrap();
            let b = accounts.refresh(&login.refresh_token, &from).unwrap();
            (a, b)
        })
        .collect();
    let sessions: Vec<String> = logins.iter().map(|l| l.claims.sid.clone()).collect();
    for sid in &sessions {
        assert_eq!(chains(world, sid), (2, true), "{sid}");
    }
    (sessions, siblings)
}

/// A session's unspent refresh tokens, and whether it is marked forked.
fn chains(world: &World, session_id: &str) -> (i64, bool) {
    use diesel::prelude::*;
    use storage::schema::{refresh_tokens, sessions};
    let conn = &mut world.db.pool.get().unwrap();
    let live = refresh_tokens::table
        .filter(refresh_tokens::session_id.eq(session_id))
        .filter(refresh_tokens::used_at.is_null())
        .count()
        .get_result(conn)
        .unwrap();
    let forked: Option<chrono::NaiveDateTime> = sessions::table
        .find(session_id)
        .select(sessions::forked_at)
        .first(conn)
        .unwrap();
    (live, forked.is_some())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
