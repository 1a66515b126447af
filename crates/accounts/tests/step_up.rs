//! Step-up at the crate boundary, on SQLite and PostgreSQL: every sensitive
//! operation (API token creation, role and permission changes, password
//! change, second-factor changes) refuses a session that authenticated too
//! long ago — or, for a user with a second factor, without it — by itself,
//! so every front-end inherits the rule; after `step_up` the same call
//! works. The operator at the command line has no session and is exempt.

mod support;

use accounts::{
    Accounts, AccountsError, Actor, AuditContext, IssuedTokens, Password, SecondFactor,
    StepUpProof, UserUpdate,
};
use secrecy::ExposeSecret;
use storage::Backend;
use support::{PASSWORD, World, origin, secret};
use totp_rs::{Algorithm, Secret, TOTP};

backend_tests!(
    sensitive_operations_refuse_a_stale_session_until_it_steps_up,
    with_a_second_factor_only_a_recent_factor_will_do,
    without_a_second_factor_the_current_password_is_the_fresh_authentication,
    the_operator_is_exempt_and_a_front_end_without_the_session_is_refused,
    an_ended_session_cannot_step_up,
);

const NEW_PASSWORD: &str = "an entirely new phrase 4411";

fn login(accounts: &Accounts, email: &str) -> IssuedTokens {
    accounts
        .login(email, &secret(PASSWORD), &origin("10.0.0.1"))
        .unwrap()
}

/// The session authenticated `secs_ago` seconds ago, with `amr`.
fn age_session(world: &World, session_id: &str, amr: &str, secs_ago: i64) {
    let mut conn = world.db.pool.get().unwrap();
    let at = (chrono::Utc::now() - chrono::TimeDelta::seconds(secs_ago)).naive_utc();
    assert!(storage::repo::sessions::set_authentication(&mut conn, session_id, amr, at).unwrap());
}

/// An actor acting through the session of `tokens`, as the front-ends
/// build it from a verified token or a browser session.
fn actor(tokens: &IssuedTokens) -> Actor {
    Actor {
        user_id: tokens.claims.sub.clone(),
        session_id: Some(tokens.claims.sid.clone()),
        roles: tokens.claims.roles.clone(),
        perms: tokens.claims.perms.clone(),
        org: tokens.claims.org.clone(),
        context: AuditContext::default(),
    }
}

fn grant(permissions: &[&str]) -> UserUpdate {
    UserUpdate {
        permissions: Some(permissions.iter().map(|p| (*p).to_owned()).collect()),
        ..UserUpdate::default()
    }
}

fn set_roles(roles: &[&str]) -> UserUpdate {
    UserUpdate {
        roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
        ..UserUpdate::default()
    }
}

fn new_password() -> Password {
    Password::parse(NEW_PASSWORD.into()).unwrap()
}

fn is_step_up_required<T>(outcome: Result<T, AccountsError>) -> bool {
    matches!(outcome, Err(AccountsError::StepUpRequired))
}

/// Enrols TOTP for the (fresh) session of `tokens`; the app's generator.
fn enrol(accounts: &Accounts, tokens: &IssuedTokens) -> TOTP {
    let (user, sid) = (&tokens.claims.sub, &tokens.claims.sid);
    let enrolment = accounts.begin_totp(user, sid).unwrap();
    let bytes = Secret::Encoded(enrolment.secret.expose_secret().to_owned())
        .to_bytes()
        .unwrap();
    let app = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes).unwrap();
    accounts
        .confirm_totp(user, sid, &code(&app, 0), &origin("10.0.0.1"))
        .unwrap();
    app
}

/// The app's code `offset` steps from now (each step is accepted once).
fn code(app: &TOTP, offset: i64) -> String {
    let step = chrono::Utc::now().timestamp() / 30 + offset;
    app.generate((step * 30) as u64)
}

/// A user without a second factor, an hour after logging in: every
/// sensitive operation is refused and changes nothing; the password again
/// (`step_up`) and the same calls work. Changes that grant no authority
/// (disabling, forcing a password change) are not sensitive.
fn sensitive_operations_refuse_a_stale_session_until_it_steps_up(backend: Backend) {
    let world = World::new(backend);
    let accounts = &world.accounts;
    let root = world.user_with_roles("root@example.com", None, vec!["admin".to_owned()]);
    let kim = world.user("kim@example.com", None);
    let tokens = login(accounts, "root@example.com");
    let sid = tokens.claims.sid.clone();
    age_session(&world, &sid, "pwd", 3600);
    let context = AuditContext::default();

    assert!(is_step_up_required(accounts.create_api_token(
        &root,
        &sid,
        "ci",
        &[],
        Some(30),
        &context
    )));
    assert!(is_step_up_required(accounts.update_user(
        &actor(&tokens),
        &kim,
        grant(&["sms:send"])
    )));
    assert!(is_step_up_required(accounts.update_user(
        &actor(&tokens),
        &kim,
        set_roles(&["org_admin"])
    )));
    assert!(is_step_up_required(accounts.begin_totp(&root, &sid)));
    let registration = accounts
        .submit_registration(
            accounts::RegistrationForm::parse(
                "Acme",
                "Park Ji-hoon",
                "park@acme.example",
                "010-1234-5678",
                "KR",
            )
            .unwrap(),
            accounts::Locale::Ko,
            &context,
        )
        .unwrap();
    let approve = || {
        accounts.approve_registration(
            &actor(&tokens),
            &registration.id,
            &["sms:send".to_owned()],
            None,
            accounts::Locale::Ko,
        )
    };
    assert!(is_step_up_required(approve()));
    // Nothing happened.
    assert!(accounts.list_api_tokens(&root).unwrap().is_empty());
    let view = accounts.user_view(&kim).unwrap().unwrap();
    assert!(view.permissions.is_empty() && view.roles.is_empty());
    assert!(!accounts.mfa_status(&root).unwrap().totp);

    // Not sensitive: no authority is granted.
    let quiet = UserUpdate {
        must_change_password: Some(true),
        ..UserUpdate::default()
    };
    accounts.update_user(&actor(&tokens), &kim, quiet).unwrap();

    accounts
        .step_up(
            &root,
            &sid,
            StepUpProof::Password(&secret(PASSWORD)),
            &origin("10.0.0.1"),
        )
        .unwrap();
    accounts
        .create_api_token(&root, &sid, "ci", &[], Some(30), &context)
        .unwrap();
    let (view, _) = accounts
        .update_user(&actor(&tokens), &kim, grant(&["sms:send"]))
        .unwrap();
    assert_eq!(view.permissions, ["sms:send"]);
    let (view, _) = accounts
        .update_user(&actor(&tokens), &kim, set_roles(&["org_admin"]))
        .unwrap();
    assert_eq!(view.roles, ["org_admin"]);
    accounts.begin_totp(&root, &sid).unwrap();
    assert_eq!(approve().unwrap().status, "approved");
}

/// A user with a second factor whose session is recent but authenticated
/// with the password alone (or with the factor, but long ago): every
/// sensitive operation is refused — the password change too, although it
/// asks for the current password — until the factor is given again.
fn with_a_second_factor_only_a_recent_factor_will_do(backend: Backend) {
    let world = World::new(backend);
    let accounts = &world.accounts;
    let root = world.user_with_roles("root@example.com", None, vec!["admin".to_owned()]);
    let kim = world.user("kim@example.com", None);
    let tokens = login(accounts, "root@example.com");
    let sid = tokens.claims.sid.clone();
    let app = enrol(accounts, &tokens);
    let context = AuditContext::default();
    let client = origin("10.0.0.1");

    for (amr, secs_ago) in [("pwd", 5), ("pwd otp mfa", 3600)] {
        age_session(&world, &sid, amr, secs_ago);
        let what = format!("{amr}, {secs_ago} s ago");
        assert!(
            is_step_up_required(accounts.create_api_token(&root, &sid, "ci", &[], None, &context)),
            "{what}"
        );
        assert!(
            is_step_up_required(accounts.update_user(&actor(&tokens), &kim, grant(&["sms:send"]))),
            "{what}"
        );
        assert!(
            is_step_up_required(accounts.update_user(
                &actor(&tokens),
                &kim,
                set_roles(&["org_admin"])
            )),
            "{what}"
        );
        assert!(
            is_step_up_required(accounts.change_password(&root, &sid, PASSWORD, &new_password())),
            "{what}"
        );
        assert!(
            is_step_up_required(accounts.regenerate_recovery_codes(&root, &sid, &client)),
            "{what}"
        );
        assert!(
            is_step_up_required(accounts.remove_totp(&root, &sid, &client)),
            "{what}"
        );
        assert!(
            is_step_up_required(accounts.begin_totp(&root, &sid)),
            "{what}"
        );
    }
    // Nothing happened: the old password still leads to the second step,
    // the factor and its codes are still there.
    assert!(matches!(
        accounts.login("root@example.com", &secret(PASSWORD), &client),
        Err(AccountsError::MfaRequired(_))
    ));
    assert!(accounts.list_api_tokens(&root).unwrap().is_empty());
    assert!(
        accounts
            .user_view(&kim)
            .unwrap()
            .unwrap()
            .permissions
            .is_empty()
    );
    let status = accounts.mfa_status(&root).unwrap();
    assert!(status.totp && status.recovery_codes_left == 10);

    accounts
        .step_up(
            &root,
            &sid,
            StepUpProof::Factor(SecondFactor::Totp(&code(&app, 1))),
            &client,
        )
        .unwrap();
    accounts
        .create_api_token(&root, &sid, "ci", &[], None, &context)
        .unwrap();
    accounts
        .update_user(&actor(&tokens), &kim, grant(&["sms:send"]))
        .unwrap();
    accounts
        .update_user(&actor(&tokens), &kim, set_roles(&["org_admin"]))
        .unwrap();
    assert_eq!(
        accounts
            .regenerate_recovery_codes(&root, &sid, &client)
            .unwrap()
            .len(),
        10
    );
    accounts
        .change_password(&root, &sid, PASSWORD, &new_password())
        .unwrap();
    accounts.remove_totp(&root, &sid, &client).unwrap();
    assert!(!accounts.mfa_status(&root).unwrap().totp);
    accounts
        .login("root@example.com", &secret(NEW_PASSWORD), &client)
        .unwrap();
}

/// The password change form asks for the current password: for a user
/// without a second factor that is a fresh authentication by the only
/// factor there is, so an old session may change the password with it
/// (a wrong one is just wrong, not a step-up). It proves that change only:
/// the session is no more recent for the next sensitive operation.
fn without_a_second_factor_the_current_password_is_the_fresh_authentication(backend: Backend) {
    let world = World::new(backend);
    let accounts = &world.accounts;
    let kim = world.user("kim@example.com", None);
    let lee = world.user("lee@example.com", None);
    let tokens = login(accounts, "kim@example.com");
    let sid = tokens.claims.sid.clone();
    age_session(&world, &sid, "pwd", 3600);

    assert!(matches!(
        accounts.change_password(&kim, &sid, "not my password", &new_password()),
        Err(AccountsError::InvalidCredentials)
    ));
    // Someone else's session proves nothing about kim.
    let other = login(accounts, "lee@example.com");
    assert!(is_step_up_required(accounts.change_password(
        &kim,
        &other.claims.sid,
        PASSWORD,
        &new_password()
    )));
    assert!(is_step_up_required(accounts.change_password(
        &lee,
        &sid,
        PASSWORD,
        &new_password()
    )));
    accounts
        .change_password(&kim, &sid, PASSWORD, &new_password())
        .unwrap();
    accounts
        .login(
            "kim@example.com",
            &secret(NEW_PASSWORD),
            &origin("10.0.0.1"),
        )
        .unwrap();
    assert!(is_step_up_required(accounts.create_api_token(
        &kim,
        &sid,
        "ci",
        &[],
        None,
        &AuditContext::default()
    )));
}

/// The operator at the command line acts without a session and needs no
/// step-up; an actor that claims a user but carries no session (a
/// front-end that forgot it) is refused rather than waved through.
fn the_operator_is_exempt_and_a_front_end_without_the_session_is_refused(backend: Backend) {
    let world = World::new(backend);
    let accounts = &world.accounts;
    world.user_with_roles("root@example.com", None, vec!["admin".to_owned()]);
    let kim = world.user("kim@example.com", None);
    let tokens = login(accounts, "root@example.com");

    let sessionless = Actor {
        session_id: None,
        ..actor(&tokens)
    };
    assert!(is_step_up_required(accounts.update_user(
        &sessionless,
        &kim,
        grant(&["sms:send"])
    )));
    // The operator's name is no pass either when a session comes with it.
    let posing = Actor {
        user_id: Actor::operator().user_id,
        ..actor(&tokens)
    };
    assert!(is_step_up_required(accounts.update_user(
        &posing,
        &kim,
        grant(&["sms:send"])
    )));
    assert!(
        accounts
            .user_view(&kim)
            .unwrap()
            .unwrap()
            .permissions
            .is_empty()
    );

    let (view, _) = accounts
        .update_user(&Actor::operator(), &kim, grant(&["sms:send"]))
        .unwrap();
    assert_eq!(view.permissions, ["sms:send"]);
    let (view, _) = accounts
        .update_user(&Actor::operator(), &kim, set_roles(&["org_admin"]))
        .unwrap();
    assert_eq!(view.roles, ["org_admin"]);
}

/// Review finding (2026-12-04): step-up checked only that the session was
/// not revoked, so a session past its end (within the verifier's leeway)
/// stepped up and got an access token; now that access tokens end with
/// their session, that token would even have expired before it was issued.
fn an_ended_session_cannot_step_up(backend: Backend) {
    use diesel::prelude::*;
    use storage::schema::sessions;

    let world = World::new(backend);
    world.user("kim@example.com", None);
    let tokens = login(&world.accounts, "kim@example.com");
    let ended = (chrono::Utc::now() - chrono::TimeDelta::seconds(5)).naive_utc();
    diesel::update(sessions::table.find(&tokens.claims.sid))
        .set(sessions::expires_at.eq(ended))
        .execute(&mut world.db.pool.get().unwrap())
        .unwrap();
    let stepped = world.accounts.step_up(
        &tokens.claims.sub,
        &tokens.claims.sid,
        StepUpProof::Password(&secret(PASSWORD)),
        &origin("10.0.0.1"),
    );
    assert!(
        matches!(stepped, Err(AccountsError::SessionNotFound)),
        "{stepped:?}"
    );
}
