//! The security rules at the crate boundary, on SQLite and PostgreSQL: what
//! every front-end (native API, profiles, pages, OAuth) inherits by calling
//! these operations. Each test names the defect it guards against.

mod support;

use std::time::Duration;

use accounts::{
    AccountsError, Actor, AuditContext, ClientTokenState, EmailAddress, Locale, Password, Rate,
    SignupRequest, ThrottleRates, TokenInfo, UserUpdate, Username, VouchedUser,
};
use auth_core::{CLIENT_TOKEN_TYP, ClientTokenClaims, ClientTokenKind};
use secrecy::ExposeSecret;
use storage::Backend;
use support::{PASSWORD, World, off, origin, secret};

backend_tests!(
    renewal_spends_a_token_once_even_when_expired,
    failed_logins_count_per_account_whatever_the_spelling,
    every_token_we_issue_is_introspectable_and_revocable,
    client_sessions_never_rotate_natively_and_their_users_get_no_api_tokens,
    password_reset_applies_the_one_strength_rule,
    a_spent_browser_session_token_ends_the_session,
    every_mail_sending_operation_counts_against_the_mail_limits,
    accepted_addresses_are_deliverable,
    parallel_guesses_are_cut_off_at_the_limit,
    a_refresh_token_still_accepted_is_active_and_revocable,
    client_users_never_get_a_password_and_die_with_their_client,
    the_last_active_admin_stays,
    wrong_current_passwords_count_like_failed_logins,
    no_access_token_outlives_its_session,
    sessions_are_forgotten_a_week_after_their_end_and_answer_as_before,
);

fn rate(limit: u32) -> Rate {
    Rate {
        limit,
        period: Duration::from_secs(3600),
    }
}

/// Defect 1: an expired company-portal token renewed forever.
fn renewal_spends_a_token_once_even_when_expired(backend: Backend) {
    let world = World::new(backend);
    world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let tokens = accounts
        .login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.1"))
        .unwrap();

    // A live token renews once; the second renewal is refused.
    let renewed = accounts.renew_access(&tokens.claims).unwrap();
    assert_eq!(renewed.claims.sid, tokens.claims.sid);
    assert!(matches!(
        accounts.renew_access(&tokens.claims),
        Err(AccountsError::TokenRevoked)
    ));

    // An expired one (the front-end has checked its signature) likewise,
    // and another instance on the same database agrees at once.
    let mut expired = renewed.claims.clone();
    expired.exp -= 7200;
    expired.iat -= 7200;
    let from_expired = accounts.renew_access(&expired).unwrap();
    assert!(matches!(
        accounts.renew_access(&expired),
        Err(AccountsError::TokenRevoked)
    ));
    assert!(matches!(
        world.second_instance().renew_access(&expired),
        Err(AccountsError::TokenRevoked)
    ));

    // Revoking an expired token that could still renew ends its session
    // (introspection calls it inactive, but it is not harmless).
    let mut leaked = fresh_claims(accounts);
    leaked.exp -= 7200;
    leaked.iat -= 7200;
    let leaked_token = world.sign(auth_core::ACCESS_TOKEN_TYP, &leaked);
    assert!(accounts.introspect(&leaked_token).unwrap().is_none());
    assert!(
        accounts
            .revoke_token(&leaked_token, &AuditContext::default())
            .unwrap()
    );
    assert!(matches!(
        accounts.renew_access(&leaked),
        Err(AccountsError::TokenRevoked)
    ));

    // After logout nothing of the session renews.
    let fresh = accounts.renew_access(&from_expired.claims).unwrap();
    let logout = || {
        accounts
            .logout(
                &tokens.claims.sub,
                &tokens.claims.sid,
                &AuditContext::default(),
            )
            .unwrap()
    };
    assert!(logout().is_some());
    assert!(matches!(
        accounts.renew_access(&fresh.claims),
        Err(AccountsError::TokenRevoked)
    ));
    // A second logout (buzzbook's refresh JWT can come back after the
    // revocation list has forgotten the session) ends nothing and says so,
    // and writes no second logout to the audit log.
    let logouts = || {
        use diesel::prelude::*;
        use storage::schema::audit_log;
        audit_log::table
            .filter(audit_log::event.eq("logout"))
            .count()
            .get_result::<i64>(&mut world.db.pool.get().unwrap())
            .unwrap()
    };
    let before = logouts();
    assert!(logout().is_none());
    assert_eq!(logouts(), before);
}

/// The claims of a new session's access token.
fn fresh_claims(accounts: &accounts::Accounts) -> auth_core::AccessClaims {
    accounts
        .login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.2"))
        .unwrap()
        .claims
}

/// Defect 2: the per-account login limit was keyed on the string as typed.
fn failed_logins_count_per_account_whatever_the_spelling(backend: Backend) {
    let world = World::with_rates(
        backend,
        ThrottleRates {
            login_failures_per_account: rate(3),
            ..off()
        },
    );
    world.user("kim@example.com", Some("kimminjun"));
    let accounts = &world.accounts;
    let wrong = secret("not the password at all");
    // Three spellings of one account, each from another IP.
    for (i, spelling) in [
        "kim@example.com",
        "KIM@exam\u{AD}ple.com",
        "kim@ｅｘａｍｐｌｅ.com",
    ]
    .iter()
    .enumerate()
    {
        let refused = accounts.login(spelling, &wrong, &origin(&format!("10.0.1.{i}")));
        assert!(
            matches!(refused, Err(AccountsError::InvalidCredentials)),
            "{spelling}: {refused:?}"
        );
    }
    // The right password, by username from a fresh IP: the account's budget is spent.
    for login in ["kimminjun", "Kim@Example.com"] {
        let refused = accounts.login(login, &secret(PASSWORD), &origin("10.0.2.1"));
        assert!(
            matches!(refused, Err(AccountsError::Throttled { .. })),
            "{login}: {refused:?}"
        );
    }
    // Unknown logins share one counter per normalised name too.
    for spelling in [
        "nobody@example.com",
        "NOBODY@example.com",
        "nobody@EXAMPLE.com",
    ] {
        let _ = accounts.login(spelling, &wrong, &origin("10.0.3.1"));
    }
    assert!(matches!(
        accounts.login("nobody@example.com", &wrong, &origin("10.0.3.2")),
        Err(AccountsError::Throttled { .. })
    ));
    // Another account is not affected.
    world.user("lee@example.com", None);
    accounts
        .login("lee@example.com", &secret(PASSWORD), &origin("10.0.2.1"))
        .unwrap();
}

/// Defect 3: revocation skipped one token kind (the buzzbook profile's).
fn every_token_we_issue_is_introspectable_and_revocable(backend: Backend) {
    let world = World::new(backend);
    let user = world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let context = AuditContext::default();
    let login = || {
        accounts
            .login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.1"))
            .unwrap()
    };

    // Native access and refresh tokens.
    let tokens = login();
    assert!(matches!(
        accounts.introspect(&tokens.access_token).unwrap(),
        Some(TokenInfo::Access(_))
    ));
    let refresh = tokens.refresh_token.expose_secret().to_owned();
    assert!(matches!(
        accounts.introspect(&refresh).unwrap(),
        Some(TokenInfo::Refresh(_))
    ));
    assert!(accounts.revoke_token(&refresh, &context).unwrap());
    assert_eq!(accounts.introspect(&tokens.access_token).unwrap(), None);
    assert_eq!(accounts.introspect(&refresh).unwrap(), None);

    // API tokens.
    let api = accounts
        .create_api_token(&user, &login().claims.sid, "ci", &[], Some(30), &context)
        .unwrap();
    let api_token = api.token.expose_secret().to_owned();
    assert!(matches!(
        accounts.introspect(&api_token).unwrap(),
        Some(TokenInfo::Api(_))
    ));
    assert!(accounts.revoke_token(&api_token, &context).unwrap());
    assert_eq!(accounts.introspect(&api_token).unwrap(), None);

    // A client's pair: both introspect, either revokes the session, and
    // another instance agrees at once.
    let client = accounts.create_client("buzzbook backend").unwrap();
    let client = accounts
        .authenticate_client(
            &client.client_id,
            client.client_secret.as_ref().unwrap().expose_secret(),
        )
        .unwrap();
    let vouched = VouchedUser {
        external_id: "42".into(),
        login_id: "reader01".into(),
        role: "USER".into(),
    };
    for revoke_with_refresh in [true, false] {
        let pair = accounts
            .client_vouched_login(&client, &vouched, &origin("10.0.0.2"))
            .unwrap();
        assert!(matches!(
            accounts.introspect(&pair.access).unwrap(),
            Some(TokenInfo::ClientAccess(_))
        ));
        assert!(matches!(
            accounts.introspect(&pair.refresh).unwrap(),
            Some(TokenInfo::ClientRefresh { .. })
        ));
        let revoke = if revoke_with_refresh {
            &pair.refresh
        } else {
            &pair.access
        };
        assert!(accounts.revoke_token(revoke, &context).unwrap());
        for token in [&pair.access, &pair.refresh] {
            assert_eq!(accounts.introspect(token).unwrap(), None);
            assert_eq!(world.second_instance().introspect(token).unwrap(), None);
        }
        assert_eq!(
            accounts.check_client_token(&pair.access, ClientTokenKind::Access),
            Err(auth_core::TokenError::Revoked)
        );
    }
    // Garbage of every shape is simply inactive.
    for junk in ["", "abc", "a.b.c", &"x".repeat(20_000)] {
        assert_eq!(accounts.introspect(junk).unwrap(), None);
        assert!(!accounts.revoke_token(junk, &context).unwrap());
    }
}

/// Defect 4: the client refresh token carried the native refresh token in
/// clear, and the account behind it could get native tokens and API tokens.
fn client_sessions_never_rotate_natively_and_their_users_get_no_api_tokens(backend: Backend) {
    let world = World::new(backend);
    let accounts = &world.accounts;
    let client = accounts.create_client("buzzbook backend").unwrap();
    let client = accounts
        .authenticate_client(
            &client.client_id,
            client.client_secret.as_ref().unwrap().expose_secret(),
        )
        .unwrap();
    let vouched = VouchedUser {
        external_id: "7".into(),
        login_id: "reader07".into(),
        role: "USER".into(),
    };
    let pair = accounts
        .client_vouched_login(&client, &vouched, &origin("10.0.0.3"))
        .unwrap();
    let claims: ClientTokenClaims = accounts
        .keys()
        .verify(&pair.refresh, CLIENT_TOKEN_TYP)
        .unwrap();
    let sealed = claims
        .rt
        .clone()
        .expect("a refresh token carries its credential");
    // What the holder can read is useless natively.
    assert!(matches!(
        accounts.refresh(&secret(&sealed), &origin("10.0.0.3")),
        Err(AccountsError::InvalidRefreshToken)
    ));
    // Even the plain credential (unsealed with the server's key) is refused
    // natively, and refusing it spends nothing.
    let key = accounts::SealingKey::from_bytes(&support::SEALING_KEY).unwrap();
    let plain = key
        .open(
            &format!("client refresh token for session {}", claims.sid),
            &sealed,
        )
        .map(|p| String::from_utf8(p).unwrap())
        .expect("sealed under the server's key");
    assert!(!pair.refresh.contains(&plain));
    assert!(matches!(
        accounts.refresh(&secret(&plain), &origin("10.0.0.3")),
        Err(AccountsError::InvalidRefreshToken)
    ));
    let renewed = accounts
        .client_refresh(&claims, &origin("10.0.0.3"))
        .unwrap();
    assert!(matches!(
        accounts.check_client_token(&renewed.access, ClientTokenKind::Access),
        Ok(ClientTokenState::Valid(_))
    ));
    // A native refresh token never rotates as a client's.
    let user = world.user("kim@example.com", None);
    let native = accounts
        .login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.4"))
        .unwrap();
    let mut forged = claims.clone();
    forged.sid = native.claims.sid.clone();
    forged.rt = Some(key.seal(
        &format!("client refresh token for session {}", native.claims.sid),
        native.refresh_token.expose_secret().as_bytes(),
    ));
    assert!(matches!(
        accounts.client_refresh(&forged, &origin("10.0.0.4")),
        Err(AccountsError::InvalidRefreshToken)
    ));
    accounts
        .refresh(&native.refresh_token, &origin("10.0.0.4"))
        .expect("the refused attempt spent nothing");
    // The client's user can't hold API tokens.
    assert!(matches!(
        accounts.create_api_token(
            &renewed.access_claims.user_id,
            &renewed.access_claims.sid,
            "escape",
            &[],
            Some(365),
            &AuditContext::default()
        ),
        Err(AccountsError::Forbidden)
    ));
    accounts
        .create_api_token(
            &user,
            &native.claims.sid,
            "mine",
            &[],
            Some(30),
            &AuditContext::default(),
        )
        .unwrap();
}

/// Defect 5: password reset accepted the username as the new password.
fn password_reset_applies_the_one_strength_rule(backend: Backend) {
    let world = World::new(backend);
    world.user("kim@example.com", Some("kimminjun2026"));
    let accounts = &world.accounts;
    let email = EmailAddress::parse("kim@example.com").unwrap();
    accounts
        .forgot_password(&email, Locale::En, &origin("10.0.0.5"))
        .unwrap();
    let code = world.code_mailed_to("kim@example.com");
    for weak in ["kimminjun2026", "KimMinjun2026", "kim@example.com"] {
        let refused = accounts.reset_password(
            &email,
            &code,
            &Password::parse(weak.into()).unwrap(),
            &origin("10.0.0.5"),
        );
        assert!(
            matches!(refused, Err(AccountsError::WeakPassword(_))),
            "{weak}: {refused:?}"
        );
    }
    // The refusals spent nothing: the code still resets.
    accounts
        .reset_password(
            &email,
            &code,
            &Password::parse("a brand new private phrase".into()).unwrap(),
            &origin("10.0.0.5"),
        )
        .unwrap();
    // Change and signup apply the same rule.
    let tokens = accounts
        .login(
            "kimminjun2026",
            &secret("a brand new private phrase"),
            &origin("10.0.0.5"),
        )
        .unwrap();
    assert!(matches!(
        accounts.change_password(
            &tokens.claims.sub,
            &tokens.claims.sid,
            "a brand new private phrase",
            &Password::parse("kimminjun2026".into()).unwrap()
        ),
        Err(AccountsError::WeakPassword(_))
    ));
    let signup = accounts.signup(
        SignupRequest {
            email: EmailAddress::parse("lee@example.com").unwrap(),
            password: Password::parse("leejihoon2026".into()).unwrap(),
            username: Some(Username::parse("leejihoon2026").unwrap()),
            name: None,
            organization_id: None,
            locale: Locale::En,
        },
        &origin("10.0.0.5"),
    );
    assert!(matches!(signup, Err(AccountsError::WeakPassword(_))));
}

/// Defect 6: a browser session whose refresh token was rotated elsewhere
/// (stolen and used) was silently signed out, and the thief's session lived.
fn a_spent_browser_session_token_ends_the_session(backend: Backend) {
    let world = World::new(backend);
    world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let browser = accounts
        .login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.6"))
        .unwrap();
    let cookie = browser.refresh_token.expose_secret().to_owned();
    let seen = accounts
        .browser_session(&cookie, &origin("10.0.0.6"))
        .unwrap()
        .expect("signed in");
    assert_eq!(seen.session_id, browser.claims.sid);
    // The thief refreshes with a copy of the cookie's token.
    let thief = accounts
        .refresh(&browser.refresh_token, &origin("10.6.6.6"))
        .unwrap();
    // The victim's next page view ends the session, as a reuse at refresh does.
    assert!(matches!(
        accounts.browser_session(&cookie, &origin("10.0.0.6")),
        Err(AccountsError::RefreshTokenReused(Some(_)))
    ));
    assert!(accounts.revocations().is_revoked(&browser.claims.sid, ""));
    assert!(matches!(
        accounts.refresh(&thief.refresh_token, &origin("10.6.6.6")),
        Err(AccountsError::InvalidRefreshToken)
    ));
    assert_eq!(accounts.introspect(&thief.access_token).unwrap(), None);
    // Afterwards the cookie simply signs nobody in.
    assert_eq!(
        accounts
            .browser_session(&cookie, &origin("10.0.0.6"))
            .unwrap(),
        None
    );
}

/// Defect 7: one front-end (campus signup) skipped the mail limits. They
/// are now each mailing operation's own.
fn every_mail_sending_operation_counts_against_the_mail_limits(backend: Backend) {
    let world = World::with_rates(
        backend,
        ThrottleRates {
            mail_per_address: rate(1),
            ..off()
        },
    );
    let accounts = &world.accounts;
    let org = accounts
        .create_organization(
            "Seoul National University",
            None,
            &[accounts::Domain::parse("snu.ac.kr").unwrap()],
            false,
        )
        .unwrap();
    let address = |s: &str| EmailAddress::parse(s).unwrap();
    let signup = |email: &str| {
        accounts.signup(
            SignupRequest {
                email: address(email),
                password: Password::parse(PASSWORD.into()).unwrap(),
                username: None,
                name: None,
                organization_id: None,
                locale: Locale::En,
            },
            &origin("10.0.0.7"),
        )
    };
    let registration = |email: &str| {
        accounts.submit_registration(
            accounts::RegistrationForm::parse("ACME", "Kim", email, "010-1234-5678", "KR").unwrap(),
            Locale::En,
            &AuditContext::default(),
        )
    };
    type Op<'a> = Box<dyn Fn(&str) -> Result<(), AccountsError> + 'a>;
    let operations: Vec<(&str, Op)> = vec![
        ("signup", Box::new(|e| signup(e).map(|_| ()))),
        (
            "forgot_password",
            Box::new(|e| accounts.forgot_password(&address(e), Locale::En, &origin("10.0.0.7"))),
        ),
        (
            "request_organization_code",
            Box::new(|e| {
                accounts.request_organization_code(
                    &org.id,
                    &address(e),
                    Locale::En,
                    &origin("10.0.0.7"),
                )
            }),
        ),
        (
            "submit_registration",
            Box::new(|e| registration(e).map(|_| ())),
        ),
        (
            "resend_activation",
            Box::new(|e| accounts.resend_activation(&address(e), Locale::En, &origin("10.0.0.7"))),
        ),
    ];
    for (i, (name, operation)) in operations.iter().enumerate() {
        let email = format!("user{i}@snu.ac.kr");
        operation(&email).unwrap_or_else(|e| panic!("{name}: first request refused: {e:?}"));
        let again = operation(&email);
        assert!(
            matches!(again, Err(AccountsError::Throttled { .. })),
            "{name}: second request within the limit's period: {again:?}"
        );
    }
    // Per IP too.
    let world = World::with_rates(
        backend,
        ThrottleRates {
            mail_per_ip: rate(2),
            ..off()
        },
    );
    let accounts = &world.accounts;
    for i in 0..2 {
        accounts
            .forgot_password(
                &address(&format!("a{i}@example.com")),
                Locale::En,
                &origin("10.9.9.9"),
            )
            .unwrap();
    }
    assert!(matches!(
        accounts.forgot_password(&address("b@example.com"), Locale::En, &origin("10.9.9.9")),
        Err(AccountsError::Throttled { .. })
    ));
}

/// Defect 8: an address the mailer refuses (a quoted local part) was
/// accepted at the edge and failed with a 500 when mailed.
fn accepted_addresses_are_deliverable(backend: Backend) {
    let world = World::new(backend);
    let accounts = &world.accounts;
    let org = accounts
        .create_organization(
            "ACME",
            None,
            &[accounts::Domain::parse("acme.example").unwrap()],
            false,
        )
        .unwrap();
    let inputs = [
        "\"x@evil.com\"@acme.example",
        "\"x\"@acme.example",
        "x(comment)@acme.example",
        "x\\@y@acme.example",
        "김@acme.example",
        "x..y@acme.example",
        "Kim <kim@acme.example>",
        "kim@acme.example",
        "kim+tag@acme.example",
        "o'brien@acme.example",
        "k.i.m@ACME.example",
    ];
    for input in inputs {
        let Ok(address) = EmailAddress::parse(input) else {
            continue;
        };
        mailer::check_recipient(address.as_str())
            .unwrap_or_else(|e| panic!("{input:?} accepted but not deliverable: {e}"));
        accounts
            .request_organization_code(&org.id, &address, Locale::En, &origin("10.0.0.8"))
            .unwrap_or_else(|e| panic!("{input:?}: {e:?}"));
    }
    assert!(EmailAddress::parse("\"x@evil.com\"@acme.example").is_err());
}

/// Review finding: parallel guesses all passed a check made before any was
/// counted. Each attempt now takes its place first.
fn parallel_guesses_are_cut_off_at_the_limit(backend: Backend) {
    let world = World::with_rates(
        backend,
        ThrottleRates {
            login_failures_per_account: rate(3),
            ..off()
        },
    );
    world.user("kim@example.com", None);
    let accounts = world.accounts.clone();
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let accounts = accounts.clone();
                scope.spawn(move || {
                    let password = if i == 23 {
                        PASSWORD.to_owned()
                    } else {
                        format!("wrong guess {i}")
                    };
                    accounts.login(
                        "kim@example.com",
                        &secret(&password),
                        &origin(&format!("10.1.{i}.1")),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Every attempt took its place before its password was checked; the one
    // right password gave its place back, so at most the budget failed.
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, Err(AccountsError::InvalidCredentials)))
        .count();
    assert!(
        failed <= 3,
        "{failed} wrong passwords checked with a budget of 3: {outcomes:?}"
    );
    // A right password gives its place back: with a fresh budget, a
    // correct login does not use it up.
    let world = World::with_rates(
        backend,
        ThrottleRates {
            login_failures_per_account: rate(2),
            ..off()
        },
    );
    world.user("lee@example.com", None);
    for _ in 0..5 {
        world
            .accounts
            .login("lee@example.com", &secret(PASSWORD), &origin("10.2.0.1"))
            .unwrap();
    }
}

/// Review finding: a refresh token rotated moments ago (still accepted
/// within the grace window) was called inactive and could not be revoked.
fn a_refresh_token_still_accepted_is_active_and_revocable(backend: Backend) {
    let world = World::new(backend);
    world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let first = accounts
        .login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.9"))
        .unwrap();
    let second = accounts
        .refresh(&first.refresh_token, &origin("10.0.0.9"))
        .unwrap();
    let spent = first.refresh_token.expose_secret();
    assert!(matches!(
        accounts.introspect(spent).unwrap(),
        Some(TokenInfo::Refresh(_))
    ));
    assert!(
        accounts
            .revoke_token(spent, &AuditContext::default())
            .unwrap()
    );
    for token in [&first.refresh_token, &second.refresh_token] {
        assert!(accounts.refresh(token, &origin("10.0.0.9")).is_err());
    }
}

/// Review findings: an account that exists only for a client could be given
/// a password by the reset flow, and removing a client left its sessions.
fn client_users_never_get_a_password_and_die_with_their_client(backend: Backend) {
    let world = World::new(backend);
    let accounts = &world.accounts;
    let created = accounts.create_client("buzzbook backend").unwrap();
    let client = accounts
        .authenticate_client(
            &created.client_id,
            created.client_secret.as_ref().unwrap().expose_secret(),
        )
        .unwrap();
    let vouched = VouchedUser {
        external_id: "5".into(),
        login_id: "reader05".into(),
        role: "USER".into(),
    };
    let pair = accounts
        .client_vouched_login(&client, &vouched, &origin("10.0.0.10"))
        .unwrap();
    let shadow = format!("u5@{}.clients.invalid", created.client_id);
    // Its address is refused at the edge: nobody signs up with it or asks
    // for its reset code.
    assert!(EmailAddress::parse(&shadow).is_err());
    // Ids that differ only in case are different people, each with an
    // account of their own (no "address taken" for the second).
    let mut users = Vec::new();
    for external_id in ["Zed1", "zed1", "ZED1"] {
        let vouched = VouchedUser {
            external_id: external_id.into(),
            login_id: "zed".into(),
            role: "USER".into(),
        };
        let pair = accounts
            .client_vouched_login(&client, &vouched, &origin("10.0.0.10"))
            .unwrap_or_else(|e| panic!("{external_id}: {e:?}"));
        match accounts.introspect(&pair.access).unwrap() {
            Some(TokenInfo::ClientAccess(claims)) => users.push(claims.user_id),
            other => panic!("{external_id}: {other:?}"),
        }
    }
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 3);
    // Removing the client ends the sessions it started.
    assert!(
        accounts
            .remove_client(&created.client_id, &Default::default())
            .unwrap()
    );
    assert_eq!(
        accounts.check_client_token(&pair.access, ClientTokenKind::Access),
        Err(auth_core::TokenError::Revoked)
    );
    assert_eq!(accounts.introspect(&pair.refresh).unwrap(), None);
    assert!(matches!(
        world.second_instance().authenticate_client(
            &created.client_id,
            created.client_secret.as_ref().unwrap().expose_secret()
        ),
        Err(AccountsError::InvalidClient)
    ));
}

/// An admin who disables or demotes themselves (or the last other admin)
/// would leave nobody to run the server from the API or the pages.
fn the_last_active_admin_stays(backend: Backend) {
    let world = World::new(backend);
    let admin = || vec!["admin".to_owned()];
    let a = world.user_with_roles("a@example.com", None, admin());
    let b = world.user_with_roles("b@example.com", None, admin());
    let accounts = &world.accounts;
    let session_of = |email: &str| {
        accounts
            .login(email, &secret(PASSWORD), &origin("10.0.0.1"))
            .unwrap()
            .claims
            .sid
    };
    // Admins act through a (fresh) session of theirs.
    let acting = |id: &str, session: &str| Actor {
        user_id: id.to_owned(),
        session_id: Some(session.to_owned()),
        roles: admin(),
        perms: Vec::new(),
        org: None,
        context: AuditContext::default(),
    };
    let disable = |flag| UserUpdate {
        disabled: Some(flag),
        ..UserUpdate::default()
    };
    let demote = || UserUpdate {
        roles: Some(Vec::new()),
        ..UserUpdate::default()
    };
    let a_acting = acting(&a, &session_of("a@example.com"));
    accounts.update_user(&a_acting, &b, disable(true)).unwrap();
    for update in [disable(true), demote()] {
        assert!(matches!(
            accounts.update_user(&a_acting, &a, update),
            Err(AccountsError::LastAdmin)
        ));
    }
    accounts.update_user(&a_acting, &b, disable(false)).unwrap();
    let b_acting = acting(&b, &session_of("b@example.com"));
    // Two admins demoting each other at once: one of them stays.
    let outcomes = std::thread::scope(|scope| {
        let one = scope.spawn(|| accounts.update_user(&a_acting, &b, demote()));
        let other = scope.spawn(|| accounts.update_user(&b_acting, &a, demote()));
        [one.join().unwrap(), other.join().unwrap()]
    });
    // The loser is refused by the last-admin lock — or, if the winner
    // committed before the loser's step-up check read its session, by the
    // end of that session (a demotion ends the demoted admin's sessions).
    let refused = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Err(AccountsError::LastAdmin | AccountsError::StepUpRequired)
            )
        })
        .count();
    assert_eq!(refused, 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    // The operator at the command line can always act (and make a new admin).
    let last = if outcomes[0].is_ok() { &a } else { &b };
    accounts
        .update_user(&Actor::operator(), last, disable(true))
        .unwrap();
}

/// A stolen access token or cookie gave unlimited guesses at the current
/// password through password change; they now share the login budget.
fn wrong_current_passwords_count_like_failed_logins(backend: Backend) {
    let world = World::with_rates(
        backend,
        ThrottleRates {
            login_failures_per_account: rate(3),
            ..off()
        },
    );
    world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let session = accounts
        .login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.1"))
        .unwrap()
        .claims;
    let new = Password::parse("an entirely new phrase 4411".into()).unwrap();
    let change =
        |current: &str| accounts.change_password(&session.sub, &session.sid, current, &new);
    for i in 0..3 {
        assert!(
            matches!(
                change(&format!("guess {i}")),
                Err(AccountsError::InvalidCredentials)
            ),
            "guess {i}"
        );
    }
    assert!(matches!(
        change("guess 4"),
        Err(AccountsError::Throttled { .. })
    ));
    assert!(matches!(
        change(PASSWORD),
        Err(AccountsError::Throttled { .. })
    ));
    assert!(matches!(
        accounts.login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.9")),
        Err(AccountsError::Throttled { .. })
    ));
}

/// Black-box finding (2026-12-04): a refresh a minute before the session's
/// absolute end gave an access token valid for a full access TTL past it.
fn no_access_token_outlives_its_session(backend: Backend) {
    use diesel::prelude::*;
    use storage::schema::sessions;

    let world = World::new(backend);
    world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let tokens = accounts
        .login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.1"))
        .unwrap();
    // A fresh session ends long after its first access token.
    assert!(tokens.claims.exp - tokens.claims.iat > 60);

    // The session now ends in 60 s.
    let end = chrono::Utc::now().timestamp() + 60;
    let end_at = chrono::DateTime::from_timestamp(end, 0)
        .unwrap()
        .naive_utc();
    let conn = &mut world.db.pool.get().unwrap();
    diesel::update(sessions::table.find(&tokens.claims.sid))
        .set(sessions::expires_at.eq(end_at))
        .execute(conn)
        .unwrap();

    let refreshed = accounts
        .refresh(&tokens.refresh_token, &origin("10.0.0.1"))
        .unwrap();
    assert_eq!(refreshed.claims.exp, end, "capped at the session's end");
    assert!(refreshed.claims.exp - refreshed.claims.iat <= 60);
    assert!(refreshed.refresh_expires_in <= 60);
}

/// Sessions (and their refresh tokens) are deleted a week after their
/// absolute end, so the tables don't keep every session ever started;
/// nothing that can still matter goes, and a deleted session's token is
/// refused as it was before.
fn sessions_are_forgotten_a_week_after_their_end_and_answer_as_before(backend: Backend) {
    use diesel::prelude::*;
    use storage::schema::{refresh_tokens, sessions};

    let world = World::new(backend);
    world.user("kim@example.com", None);
    let accounts = &world.accounts;
    let login = || {
        accounts
            .login("kim@example.com", &secret(PASSWORD), &origin("10.0.0.1"))
            .unwrap()
    };
    let (old, recent, live) = (login(), login(), login());
    // The old session rotated once: a parent and a child token.
    let old_refreshed = accounts
        .refresh(&old.refresh_token, &origin("10.0.0.1"))
        .unwrap();
    // …and was logged out before it ended.
    accounts
        .logout(&old.claims.sub, &old.claims.sid, &AuditContext::default())
        .unwrap();
    let conn = &mut world.db.pool.get().unwrap();
    let ended = |days: i64| (chrono::Utc::now() - chrono::TimeDelta::days(days)).naive_utc();
    for (sid, end) in [(&old.claims.sid, ended(8)), (&recent.claims.sid, ended(6))] {
        diesel::update(sessions::table.find(sid))
            .set(sessions::expires_at.eq(end))
            .execute(conn)
            .unwrap();
    }
    let tokens_of = |conn: &mut _, sid: &str| -> i64 {
        refresh_tokens::table
            .filter(refresh_tokens::session_id.eq(sid))
            .count()
            .get_result(conn)
            .unwrap()
    };
    assert_eq!(tokens_of(conn, &old.claims.sid), 2);
    // Its refresh token, and renewing its access token (seed 000's
    // contract), are refused as an ended session's — not as a revoked
    // one's, since that is what they answer once it is forgotten.
    let answers_as_ended = || {
        let refused = accounts.refresh(&old_refreshed.refresh_token, &origin("10.0.0.1"));
        assert!(
            matches!(refused, Err(AccountsError::InvalidRefreshToken)),
            "{refused:?}"
        );
        let renewed = accounts.renew_access(&old_refreshed.claims);
        assert!(
            matches!(renewed, Err(AccountsError::InvalidRefreshToken)),
            "{renewed:?}"
        );
    };
    answers_as_ended();

    assert_eq!(accounts.forget_ended_sessions().unwrap(), 1);
    let left: Vec<String> = sessions::table
        .select(sessions::id)
        .order(sessions::id)
        .load(conn)
        .unwrap();
    let mut expected = vec![recent.claims.sid.clone(), live.claims.sid.clone()];
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(tokens_of(conn, &old.claims.sid), 0);
    assert_eq!(tokens_of(conn, &recent.claims.sid), 1);
    // Refused as before, and nothing else changed.
    answers_as_ended();
    accounts
        .refresh(&live.refresh_token, &origin("10.0.0.1"))
        .unwrap();
    assert_eq!(accounts.forget_ended_sessions().unwrap(), 0);
}
