//! Second factors at the crate boundary, on SQLite and PostgreSQL: TOTP
//! enrolment and the login's second step, replay and drift, recovery codes
//! used once, the `mfa_token`'s death after five wrong codes (also under
//! parallel guesses on two instances), step-up and the enrolment policy.
//! Codes are computed here with `totp-rs` from the secret the enrolment
//! showed, as an authenticator app would.

mod support;

use std::sync::Arc;
use std::time::Duration;

use accounts::{
    Accounts, AccountsError, AuditContext, AuditQuery, EmailAddress, IssuedTokens, Rate,
    SecondFactor, StepUpProof, ThrottleRates,
};
use secrecy::{ExposeSecret, SecretString};
use storage::Backend;
use support::{PASSWORD, World, off, origin, secret};
use totp_rs::{Algorithm, Secret, TOTP};

backend_tests!(
    totp_enrolment_and_login_with_a_code,
    a_code_is_accepted_once_and_older_steps_never_after_it,
    recovery_codes_work_once_and_die_with_their_set,
    the_mfa_token_dies_after_five_wrong_codes,
    parallel_wrong_codes_on_two_instances_count_exactly,
    sensitive_operations_need_a_recent_authentication,
    required_roles_must_enrol_and_enrolment_satisfies_the_policy,
    operator_reset_removes_factors_and_ends_sessions,
    users_without_a_second_factor_log_in_as_before,
);

/// An authenticator app holding the secret shown at enrolment.
struct App(TOTP);

impl App {
    fn new(secret_base32: &SecretString) -> App {
        let bytes = Secret::Encoded(secret_base32.expose_secret().to_owned())
            .to_bytes()
            .unwrap();
        App(TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes).unwrap())
    }

    fn step_now() -> i64 {
        chrono::Utc::now().timestamp() / 30
    }

    /// The code of time step `step`.
    fn code(&self, step: i64) -> String {
        self.0.generate((step * 30) as u64)
    }
}

fn login(accounts: &Accounts, email: &str) -> IssuedTokens {
    accounts
        .login(email, &secret(PASSWORD), &origin("10.0.0.1"))
        .unwrap()
}

/// Password → the `mfa_token` (the account has a second factor).
fn mfa_token(accounts: &Accounts, email: &str) -> (SecretString, Vec<&'static str>) {
    match accounts.login(email, &secret(PASSWORD), &origin("10.0.0.1")) {
        Err(AccountsError::MfaRequired(challenge)) => (
            challenge.mfa_token,
            challenge.methods.iter().map(|m| m.as_str()).collect(),
        ),
        other => panic!("expected mfa_required, got {other:?}"),
    }
}

/// Enrols TOTP for the session of `tokens`; returns the app and the
/// recovery codes.
fn enrol(accounts: &Accounts, tokens: &IssuedTokens) -> (App, Vec<SecretString>, i64) {
    let user = &tokens.claims.sub;
    let enrolment = accounts.begin_totp(user, &tokens.claims.sid).unwrap();
    assert!(
        enrolment
            .otpauth_uri
            .expose_secret()
            .starts_with("otpauth://totp/")
    );
    assert!(
        enrolment
            .otpauth_uri
            .expose_secret()
            .contains(&format!("secret={}", enrolment.secret.expose_secret()))
    );
    let app = App::new(&enrolment.secret);
    let step = App::step_now();
    let codes = accounts
        .confirm_totp(
            user,
            &tokens.claims.sid,
            &app.code(step),
            &origin("10.0.0.1"),
        )
        .unwrap();
    (app, codes, step)
}

fn events(accounts: &Accounts, event: &str, subject: &str) -> usize {
    accounts
        .audit_log(
            &AuditQuery {
                event: Some(event.to_owned()),
                subject: Some(subject.to_owned()),
                ..AuditQuery::default()
            },
            None,
            1000,
        )
        .unwrap()
        .len()
}

fn totp_enrolment_and_login_with_a_code(backend: Backend) {
    let world = World::new(backend);
    let user = world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let first = login(accounts, "kim@example.com");
    assert_eq!(first.claims.amr, ["pwd"]);
    assert!(first.claims.auth_time.is_some());

    let enrolment = accounts.begin_totp(&user, &first.claims.sid).unwrap();
    let app = App::new(&enrolment.secret);
    // A wrong first code confirms nothing (and is audited).
    let wrong = format!(
        "{:06}",
        (app.code(App::step_now()).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    assert!(matches!(
        accounts.confirm_totp(&user, &first.claims.sid, &wrong, &origin("10.0.0.1")),
        Err(AccountsError::InvalidSecondFactor)
    ));
    assert!(!accounts.mfa_status(&user).unwrap().totp);
    let codes = accounts
        .confirm_totp(
            &user,
            &first.claims.sid,
            &app.code(App::step_now()),
            &origin("10.0.0.1"),
        )
        .unwrap();
    assert_eq!(codes.len(), 10);
    let status = accounts.mfa_status(&user).unwrap();
    assert!(status.totp);
    assert_eq!(status.recovery_codes_left, 10);
    // Once confirmed, a second enrolment is refused.
    assert!(matches!(
        accounts.begin_totp(&user, &first.claims.sid),
        Err(AccountsError::AlreadyEnrolled)
    ));
    // The enrolling session now counts as authenticated with it.
    let refreshed = accounts
        .refresh(&first.refresh_token, &origin("10.0.0.1"))
        .unwrap();
    assert!(refreshed.claims.has_second_factor());

    // The password alone no longer logs in.
    let (token, methods) = mfa_token(accounts, "kim@example.com");
    assert_eq!(methods, ["totp", "recovery_code"]);
    let tokens = accounts
        .verify_mfa(
            &token,
            SecondFactor::Totp(&app.code(App::step_now() + 1)),
            &origin("10.0.0.1"),
        )
        .unwrap();
    assert_eq!(tokens.claims.amr, ["pwd", "otp", "mfa"]);
    assert!(tokens.claims.auth_time.unwrap() >= first.claims.auth_time.unwrap());
    // The token is spent.
    assert!(matches!(
        accounts.verify_mfa(
            &token,
            SecondFactor::Totp(&app.code(App::step_now())),
            &origin("10.0.0.1")
        ),
        Err(AccountsError::InvalidMfaToken)
    ));
    assert_eq!(events(accounts, "mfa.enrolled", &user), 1);
    assert_eq!(events(accounts, "mfa.failed", &user), 1);
}

fn a_code_is_accepted_once_and_older_steps_never_after_it(backend: Backend) {
    let world = World::new(backend);
    world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let (app, _, enrolled_step) = enrol(accounts, &login(accounts, "kim@example.com"));

    // The enrolment's own code was spent by the confirmation.
    let (token, _) = mfa_token(accounts, "kim@example.com");
    assert!(matches!(
        accounts.verify_mfa(
            &token,
            SecondFactor::Totp(&app.code(enrolled_step)),
            &origin("10.0.0.1")
        ),
        Err(AccountsError::InvalidSecondFactor)
    ));
    // One step ahead (drift) is accepted…
    let ahead = app.code(enrolled_step + 1);
    accounts
        .verify_mfa(&token, SecondFactor::Totp(&ahead), &origin("10.0.0.1"))
        .unwrap();
    // …once: the same code again, or the step before it, is a replay.
    for replay in [ahead.clone(), app.code(enrolled_step)] {
        let (token, _) = mfa_token(accounts, "kim@example.com");
        assert!(matches!(
            accounts.verify_mfa(&token, SecondFactor::Totp(&replay), &origin("10.0.0.1")),
            Err(AccountsError::InvalidSecondFactor)
        ));
    }
    // Two steps ahead is beyond the allowed drift.
    let (token, _) = mfa_token(accounts, "kim@example.com");
    let far = app.code(App::step_now() + 3);
    assert!(matches!(
        accounts.verify_mfa(&token, SecondFactor::Totp(&far), &origin("10.0.0.1")),
        Err(AccountsError::InvalidSecondFactor)
    ));
    // Garbage is just a wrong code.
    for junk in ["", "12345", "1234567", "abcdef", "１２３４５６"] {
        let (token, _) = mfa_token(accounts, "kim@example.com");
        assert!(matches!(
            accounts.verify_mfa(&token, SecondFactor::Totp(junk), &origin("10.0.0.1")),
            Err(AccountsError::InvalidSecondFactor)
        ));
    }
}

fn recovery_codes_work_once_and_die_with_their_set(backend: Backend) {
    let world = World::new(backend);
    let user = world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let first = login(accounts, "kim@example.com");
    let (_, codes, _) = enrol(accounts, &first);

    // Typed loosely (upper case, spaces): still the code.
    let typed = codes[0].expose_secret().to_uppercase().replace('-', " - ");
    let (token, _) = mfa_token(accounts, "kim@example.com");
    let tokens = accounts
        .verify_mfa(
            &token,
            SecondFactor::RecoveryCode(&typed),
            &origin("10.0.0.1"),
        )
        .unwrap();
    assert!(tokens.claims.has_second_factor());
    assert_eq!(accounts.mfa_status(&user).unwrap().recovery_codes_left, 9);
    assert_eq!(events(accounts, "mfa.recovery_code_used", &user), 1);

    // Once only.
    let (token, _) = mfa_token(accounts, "kim@example.com");
    assert!(matches!(
        accounts.verify_mfa(
            &token,
            SecondFactor::RecoveryCode(codes[0].expose_secret()),
            &origin("10.0.0.1")
        ),
        Err(AccountsError::InvalidSecondFactor)
    ));

    // A new set kills the old one (this session just used a second factor).
    let fresh = accounts
        .regenerate_recovery_codes(&user, &tokens.claims.sid, &origin("10.0.0.1"))
        .unwrap();
    assert_eq!(fresh.len(), 10);
    assert_eq!(accounts.mfa_status(&user).unwrap().recovery_codes_left, 10);
    let (token, _) = mfa_token(accounts, "kim@example.com");
    assert!(matches!(
        accounts.verify_mfa(
            &token,
            SecondFactor::RecoveryCode(codes[1].expose_secret()),
            &origin("10.0.0.1")
        ),
        Err(AccountsError::InvalidSecondFactor)
    ));
    accounts
        .verify_mfa(
            &token,
            SecondFactor::RecoveryCode(fresh[9].expose_secret()),
            &origin("10.0.0.1"),
        )
        .unwrap();
    // Codes are stored hashed: no row holds a code as shown.
    let mut conn = world.db.pool.get().unwrap();
    use diesel::prelude::*;
    let stored: Vec<String> = storage::schema::recovery_codes::table
        .select(storage::schema::recovery_codes::code_hash)
        .load(&mut conn)
        .unwrap();
    for code in &fresh {
        let plain = code.expose_secret().replace('-', "");
        assert!(stored.iter().all(|h| !h.contains(&plain)));
    }
}

fn the_mfa_token_dies_after_five_wrong_codes(backend: Backend) {
    let world = World::new(backend);
    let user = world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let (app, codes, _) = enrol(accounts, &login(accounts, "kim@example.com"));
    let (token, _) = mfa_token(accounts, "kim@example.com");
    let right = app.code(App::step_now() + 1);
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..5 {
        assert!(matches!(
            accounts.verify_mfa(&token, SecondFactor::Totp(wrong), &origin("10.0.0.1")),
            Err(AccountsError::InvalidSecondFactor)
        ));
    }
    // Dead now: even right codes are refused, and spend nothing.
    assert!(matches!(
        accounts.verify_mfa(&token, SecondFactor::Totp(&right), &origin("10.0.0.1")),
        Err(AccountsError::InvalidMfaToken)
    ));
    assert!(matches!(
        accounts.verify_mfa(
            &token,
            SecondFactor::RecoveryCode(codes[0].expose_secret()),
            &origin("10.0.0.1")
        ),
        Err(AccountsError::InvalidMfaToken)
    ));
    assert_eq!(accounts.mfa_status(&user).unwrap().recovery_codes_left, 10);
    assert_eq!(events(accounts, "mfa.failed", &user), 5);
    // A new login gets a new token, and the unspent code works.
    let (token, _) = mfa_token(accounts, "kim@example.com");
    accounts
        .verify_mfa(&token, SecondFactor::Totp(&right), &origin("10.0.0.1"))
        .unwrap();
    // Unknown tokens are simply invalid.
    assert!(matches!(
        accounts.verify_mfa(
            &secret("no-such-token"),
            SecondFactor::Totp(&right),
            &origin("10.0.0.1")
        ),
        Err(AccountsError::InvalidMfaToken)
    ));
}

fn parallel_wrong_codes_on_two_instances_count_exactly(backend: Backend) {
    let budget = 12;
    let world = World::with_rates(
        backend,
        ThrottleRates {
            mfa_attempts_per_account: Rate {
                limit: budget,
                period: Duration::from_secs(3600),
            },
            ..off()
        },
    );
    let user = world.user("kim@example.com", None);
    let accounts = &world.accounts;
    enrol(accounts, &login(accounts, "kim@example.com"));
    let (token, _) = mfa_token(accounts, "kim@example.com");
    let instances: [Arc<Accounts>; 2] = [world.accounts.clone(), world.second_instance()];
    let tries = 60;
    let answers: Vec<&'static str> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..tries)
            .map(|i| {
                let accounts = instances[i % 2].clone();
                let token = token.clone();
                scope.spawn(move || {
                    // Never a valid code: seven digits.
                    match accounts.verify_mfa(
                        &token,
                        SecondFactor::Totp("0000000"),
                        &origin(&format!("10.0.{}.1", i % 250)),
                    ) {
                        Err(AccountsError::InvalidSecondFactor) => "invalid_code",
                        Err(AccountsError::InvalidMfaToken) => "invalid_mfa_token",
                        Err(AccountsError::Throttled { .. }) => "throttled",
                        other => panic!("unexpected {other:?}"),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let count = |what: &str| answers.iter().filter(|a| **a == what).count();
    assert_eq!(count("invalid_code"), 5, "{answers:?}");
    assert_eq!(
        count("invalid_mfa_token"),
        budget as usize - 5,
        "{answers:?}"
    );
    assert_eq!(count("throttled"), tries - budget as usize, "{answers:?}");
    assert_eq!(events(accounts, "mfa.failed", &user), 5);
}

/// Puts the session's last authentication `secs_ago` in the past, with `amr`.
fn age_session(world: &World, session_id: &str, amr: &str, secs_ago: i64) {
    let mut conn = world.db.pool.get().unwrap();
    let at = (chrono::Utc::now() - chrono::TimeDelta::seconds(secs_ago)).naive_utc();
    assert!(storage::repo::sessions::set_authentication(&mut conn, session_id, amr, at).unwrap());
}

fn sensitive_operations_need_a_recent_authentication(backend: Backend) {
    let world = World::new(backend);
    let user = world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let tokens = login(accounts, "kim@example.com");
    let sid = &tokens.claims.sid;
    // Fresh: allowed. Old: refused until the password is given again.
    accounts.check_step_up(&user, sid).unwrap();
    age_session(&world, sid, "pwd", 3600);
    assert!(matches!(
        accounts.check_step_up(&user, sid),
        Err(AccountsError::StepUpRequired)
    ));
    assert!(matches!(
        accounts.begin_totp(&user, sid),
        Err(AccountsError::StepUpRequired)
    ));
    assert!(matches!(
        accounts.step_up(
            &user,
            sid,
            StepUpProof::Password(&secret("wrong")),
            &origin("10.0.0.1")
        ),
        Err(AccountsError::InvalidCredentials)
    ));
    let stepped = accounts
        .step_up(
            &user,
            sid,
            StepUpProof::Password(&secret(PASSWORD)),
            &origin("10.0.0.1"),
        )
        .unwrap();
    assert_eq!(stepped.claims.sid, *sid);
    assert!(stepped.claims.auth_time.unwrap() > chrono::Utc::now().timestamp() - 60);
    accounts.check_step_up(&user, sid).unwrap();

    // With a second factor, the password is not enough, and a session
    // authenticated without the factor is not recent enough.
    let (app, _, _) = enrol(accounts, &tokens);
    age_session(&world, sid, "pwd", 5);
    assert!(matches!(
        accounts.check_step_up(&user, sid),
        Err(AccountsError::StepUpRequired)
    ));
    assert!(matches!(
        accounts.step_up(
            &user,
            sid,
            StepUpProof::Password(&secret(PASSWORD)),
            &origin("10.0.0.1")
        ),
        Err(AccountsError::StepUpRequired)
    ));
    assert!(matches!(
        accounts.step_up(
            &user,
            sid,
            StepUpProof::Factor(SecondFactor::Totp("0000000")),
            &origin("10.0.0.1")
        ),
        Err(AccountsError::InvalidSecondFactor)
    ));
    let stepped = accounts
        .step_up(
            &user,
            sid,
            StepUpProof::Factor(SecondFactor::Totp(&app.code(App::step_now() + 1))),
            &origin("10.0.0.1"),
        )
        .unwrap();
    assert!(stepped.claims.has_second_factor());
    accounts.check_step_up(&user, sid).unwrap();
    // Removing the factor is itself sensitive.
    age_session(&world, sid, "pwd otp mfa", 3600);
    assert!(matches!(
        accounts.remove_totp(&user, sid, &origin("10.0.0.1")),
        Err(AccountsError::StepUpRequired)
    ));
    age_session(&world, sid, "pwd otp mfa", 0);
    accounts
        .remove_totp(&user, sid, &origin("10.0.0.1"))
        .unwrap();
    assert_eq!(
        accounts.mfa_status(&user).unwrap(),
        accounts::MfaStatus {
            totp: false,
            recovery_codes_left: 0,
            passkeys: Vec::new(),
        }
    );
    assert_eq!(events(accounts, "mfa.removed", &user), 1);
    login(accounts, "kim@example.com");
}

fn required_roles_must_enrol_and_enrolment_satisfies_the_policy(backend: Backend) {
    let world = World::new(backend);
    let admin = world.user_with_roles("root@example.com", None, vec!["admin".to_owned()]);
    world.user("kim@example.com", None);
    let accounts = &world.accounts;
    assert!(!accounts.must_enrol(&login(accounts, "kim@example.com").claims));
    let tokens = login(accounts, "root@example.com");
    assert!(accounts.must_enrol(&tokens.claims));
    assert!(
        accounts
            .session_must_enrol(&admin, &tokens.claims.sid)
            .unwrap()
    );
    let (app, _, _) = enrol(accounts, &tokens);
    assert!(
        !accounts
            .session_must_enrol(&admin, &tokens.claims.sid)
            .unwrap()
    );
    let refreshed = accounts
        .refresh(&tokens.refresh_token, &origin("10.0.0.1"))
        .unwrap();
    assert!(!accounts.must_enrol(&refreshed.claims));
    let (token, _) = mfa_token(accounts, "root@example.com");
    let tokens = accounts
        .verify_mfa(
            &token,
            SecondFactor::Totp(&app.code(App::step_now() + 1)),
            &origin("10.0.0.1"),
        )
        .unwrap();
    assert!(!accounts.must_enrol(&tokens.claims));
}

fn operator_reset_removes_factors_and_ends_sessions(backend: Backend) {
    let world = World::new(backend);
    let user = world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let tokens = login(accounts, "kim@example.com");
    enrol(accounts, &tokens);
    let (pending, _) = mfa_token(accounts, "kim@example.com");
    let revoked = accounts
        .reset_mfa(
            &EmailAddress::parse("kim@example.com").unwrap(),
            &AuditContext::default(),
        )
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert!(matches!(
        accounts.refresh(&tokens.refresh_token, &origin("10.0.0.1")),
        Err(AccountsError::InvalidRefreshToken)
    ));
    assert!(matches!(
        accounts.verify_mfa(&pending, SecondFactor::Totp("000000"), &origin("10.0.0.1")),
        Err(AccountsError::InvalidMfaToken)
    ));
    assert_eq!(
        accounts.mfa_status(&user).unwrap(),
        accounts::MfaStatus {
            totp: false,
            recovery_codes_left: 0,
            passkeys: Vec::new(),
        }
    );
    assert_eq!(events(accounts, "mfa.reset", &user), 1);
    assert_eq!(login(accounts, "kim@example.com").claims.amr, ["pwd"]);
}

fn users_without_a_second_factor_log_in_as_before(backend: Backend) {
    let world = World::new(backend);
    world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let tokens = login(accounts, "kim@example.com");
    assert_eq!(tokens.claims.amr, ["pwd"]);
    let refreshed = accounts
        .refresh(&tokens.refresh_token, &origin("10.0.0.1"))
        .unwrap();
    assert_eq!(refreshed.claims.amr, ["pwd"]);
    assert_eq!(refreshed.claims.auth_time, tokens.claims.auth_time);
    assert!(matches!(
        accounts.regenerate_recovery_codes(
            &tokens.claims.sub,
            &tokens.claims.sid,
            &origin("1.1.1.1")
        ),
        Err(AccountsError::NotEnrolled)
    ));
}
