//! The web pages over plain HTTP, on both backends: what a browser test
//! can't see or shouldn't have to — headers, cookie flags, CSRF refusals,
//! redirects that must stay on this site, the session cookie dying with its
//! session — plus the native endpoints the dashboard relies on
//! (`/api/v1/auth/sessions`, `/api/v1/auth/activation/preview`).

mod support;

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;
use storage::Backend;
use support::visitor::Visitor;
use support::*;

backend_tests!(
    pages_send_a_strict_policy_and_cookie_flags,
    forms_without_the_csrf_token_change_nothing,
    login_sends_you_back_only_to_this_site,
    the_session_cookie_dies_with_its_session,
    language_follows_header_then_choice,
    sessions_can_be_listed_and_ended_one_by_one,
    activation_links_can_be_looked_at_without_spending_them,
    forms_answer_in_place_and_keep_what_was_typed,
    a_login_renews_the_csrf_token,
    organization_admins_edit_only_what_they_may,
    a_browser_session_slides_while_used,
    a_session_cookie_used_elsewhere_ends_the_session,
    a_second_factor_is_enrolled_and_used_through_the_pages,
    admins_without_a_second_factor_are_led_to_its_enrolment,
    sensitive_forms_ask_to_confirm_it_is_you_and_then_carry_on,
);

async fn pages_send_a_strict_policy_and_cookie_flags(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_PUBLIC_URL", "https://auth.example.com")]).await;
    app.create_user("kim@example.com", None).await;
    for path in ["/", "/login", "/register", "/signup", "/forgot-password"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let csp = response.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("<script>") && !body.contains("style=\""),
            "{path}"
        );
    }
    let mut visitor = Visitor::new();
    let response = visitor.log_in(&app, "kim@example.com").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let session = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-auth_session="))
        .expect("a __Host- session cookie");
    // https public URL: Secure (and the __Host- prefix, which browsers
    // accept only with Secure, Path=/ and no Domain); always HttpOnly and
    // SameSite=Lax.
    for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    let (status, body) = visitor.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("kim@example.com"));
}

async fn forms_without_the_csrf_token_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let mut visitor = Visitor::new();
    visitor.get(&app, "/login").await;
    // No token, a wrong token, and another browser's token.
    let mut other = Visitor::new();
    other.get(&app, "/login").await;
    for csrf in ["", "forged", other.csrf.as_str()] {
        let response = visitor
            .post(
                &app,
                "/login",
                &[
                    ("csrf", csrf),
                    ("login", "kim@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "csrf {csrf:?}");
        assert!(
            !visitor.header().contains("auth_session"),
            "no session without a valid token"
        );
    }
    // Signed in, a forged "sign out everywhere" leaves the session alone.
    let response = visitor.log_in(&app, "kim@example.com").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = visitor
        .post(&app, "/dashboard/sessions/end-all", &[("csrf", "forged")])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (status, _) = visitor.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::OK);
}

async fn login_sends_you_back_only_to_this_site(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    // A page that needs a login sends you to it and remembers where you were.
    let response = app
        .http
        .get(app.url("/admin/users?q=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[LOCATION],
        "/login?next=%2Fadmin%2Fusers%3Fq%3Dx"
    );
    for (next, expected) in [
        ("/dashboard#tokens", "/dashboard#tokens"),
        ("//evil.example/x", "/dashboard"),
        ("https://evil.example/", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        // Browsers drop tabs in URLs: this would be //evil.example.
        ("/\t/evil.example", "/dashboard"),
    ] {
        let mut visitor = Visitor::new();
        visitor.get(&app, "/login").await;
        let csrf = visitor.csrf.clone();
        let response = visitor
            .post(
                &app,
                "/login",
                &[
                    ("csrf", &csrf),
                    ("login", "kim@example.com"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(response.headers()[LOCATION], expected, "{next}");
    }
}

async fn the_session_cookie_dies_with_its_session(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let mut browser = Visitor::new();
    browser.log_in(&app, "kim@example.com").await;
    assert_eq!(browser.get(&app, "/dashboard").await.0, StatusCode::OK);
    // "Sign out everywhere" through the API (another device) ends the
    // browser's session too.
    let api = app.login("kim@example.com").await;
    let access = api["access_token"].as_str().unwrap();
    let (status, _) = app.post_bearer("/api/v1/auth/logout/all", access).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = browser.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

async fn language_follows_header_then_choice(backend: Backend) {
    let app = spawn_app(backend).await;
    let korean = app.http.get(app.url("/login")).send().await.unwrap();
    assert!(korean.text().await.unwrap().contains("<h1>로그인</h1>"));
    let english = app
        .http
        .get(app.url("/login"))
        .header("accept-language", "en-US,en;q=0.9,ko;q=0.5")
        .send()
        .await
        .unwrap();
    assert!(english.text().await.unwrap().contains("<h1>Log in</h1>"));
    // The switch wins over the header, and only redirects within the site.
    let mut visitor = Visitor::new();
    let response = app
        .http
        .get(app.url("/lang/ko?next=//evil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[LOCATION], "/");
    visitor.keep(&response);
    let page = app
        .http
        .get(app.url("/login"))
        .header("accept-language", "en")
        .header("cookie", visitor.header())
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("<h1>로그인</h1>"));
}

async fn sessions_can_be_listed_and_ended_one_by_one(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    app.create_user("lee@example.com", None).await;
    let phone = app.login("kim@example.com").await;
    let laptop = app.login("kim@example.com").await;
    let other = app.login("lee@example.com").await;
    let laptop_access = laptop["access_token"].as_str().unwrap();
    let (status, list) = app.get_bearer("/api/v1/auth/sessions", laptop_access).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "only kim's live sessions: {list}");
    let current: Vec<_> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop["session_id"]);

    // Another user's session is not yours to end (and not revealed).
    let path = format!(
        "/api/v1/auth/sessions/{}",
        other["session_id"].as_str().unwrap()
    );
    let (status, body) = app
        .send_json(Method::DELETE, &path, Some(laptop_access), json!({}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = app.me(other["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    // Ending the phone's session: its tokens stop at once, the laptop's don't.
    let path = format!(
        "/api/v1/auth/sessions/{}",
        phone["session_id"].as_str().unwrap()
    );
    let (status, _) = app
        .send_json(Method::DELETE, &path, Some(laptop_access), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.me(phone["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_revoked"))
    );
    let (status, _) = app.refresh(phone["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.me(laptop_access).await;
    assert_eq!(status, StatusCode::OK);
    // Twice is not found.
    let (status, _) = app
        .send_json(Method::DELETE, &path, Some(laptop_access), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn activation_links_can_be_looked_at_without_spending_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let accounts = app.accounts.clone();
    let created = tokio::task::spawn_blocking(move || {
        let email = accounts::EmailAddress::parse("new-ops@example.com").unwrap();
        accounts.create_admin(&email, None).unwrap()
    })
    .await
    .unwrap();
    let link = created.activation_link.expect("an invitation link");
    let token = link.split("token=").nth(1).unwrap();
    for _ in 0..2 {
        let (status, body) = app
            .post_json("/api/v1/auth/activation/preview", json!({"token": token}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email"], "new-ops@example.com");
    }
    // The page shows the same without spending it either.
    let page = app
        .http
        .get(app.url(&format!("/activate?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("new-ops@example.com"));
    let (status, body) = app
        .post_json(
            "/api/v1/auth/activate",
            json!({"token": token, "password": "a long enough passphrase"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Spent: the preview refuses it now, as do unknown tokens.
    for token in [token, "unknown", &"x".repeat(300)] {
        let (status, body) = app
            .post_json("/api/v1/auth/activation/preview", json!({"token": token}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_activation_token"))
        );
    }
}

async fn forms_answer_in_place_and_keep_what_was_typed(backend: Backend) {
    let app = spawn_app(backend).await;
    let user_id = app.create_user("kim@example.com", None).await;
    let accounts = app.accounts.clone();
    tokio::task::spawn_blocking(move || {
        let operator = accounts::Actor::operator();
        let update = accounts::UserUpdate {
            roles: Some(vec!["admin".into()]),
            permissions: Some(vec!["sms:send".into()]),
            ..Default::default()
        };
        accounts.update_user(&operator, &user_id, update).unwrap();
    })
    .await
    .unwrap();
    let other_device = app.login("kim@example.com").await;
    let mut browser = Visitor::new();
    browser.log_in(&app, "kim@example.com").await;
    browser.get(&app, "/dashboard").await;
    let csrf = browser.csrf.clone();

    // A token with a permission the user does not hold: refused next to the
    // permissions, the name kept.
    let response = browser
        .post(
            &app,
            "/dashboard/tokens",
            &[
                ("csrf", &csrf),
                ("name", "deploy bot"),
                ("permissions", "fame:write"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("value=\"deploy bot\""), "name kept");
    assert!(page.contains("부여할 수 없는 권한"), "error shown");

    // Password change: a wrong current password is about that field, a
    // mismatch about the confirmation; success says so, keeps this browser
    // signed in and ends the other device's session.
    let new = "violet skies over busan";
    for (current, confirm, status, shown) in [
        (
            "not my password",
            new,
            StatusCode::UNPROCESSABLE_ENTITY,
            "현재 비밀번호가 맞지 않습니다",
        ),
        (
            PASSWORD,
            "violet skies over seoul",
            StatusCode::UNPROCESSABLE_ENTITY,
            "새 비밀번호가 서로 다릅니다",
        ),
        (PASSWORD, new, StatusCode::OK, "id=\"notice\""),
    ] {
        let form = [
            ("csrf", csrf.as_str()),
            ("current_password", current),
            ("new_password", new),
            ("new_password_confirm", confirm),
        ];
        let response = browser.post(&app, "/dashboard/password", &form).await;
        assert_eq!(response.status(), status, "{current} / {confirm}");
        assert!(response.text().await.unwrap().contains(shown), "{shown}");
    }
    let (status, _) = app.me(other_device["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(browser.get(&app, "/dashboard").await.0, StatusCode::OK);

    // An operator's refused approval keeps the note and the ticked boxes.
    let (_, registration) = app
        .post_json(
            "/api/v1/registrations",
            json!({"company_name": "Acme", "contact_name": "Hong", "contact_email": "hong@acme.example", "contact_phone": "010-1234-5678"}),
        )
        .await;
    let id = registration["registration_id"].as_str().unwrap();
    let response = browser
        .post(
            &app,
            &format!("/admin/registrations/{id}/approve"),
            &[
                ("csrf", &csrf),
                ("permissions", "sms:send"),
                ("permissions", "nope:nothing"),
                ("note", "checked by phone"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("value=\"checked by phone\""), "note kept");
    assert!(
        page.contains("value=\"sms:send\" checked"),
        "ticked box kept"
    );
}

async fn a_login_renews_the_csrf_token(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let mut browser = Visitor::new();
    browser.get(&app, "/login").await;
    let before_login = browser.csrf.clone();
    let response = browser.log_in(&app, "kim@example.com").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // A token from before the login (one an attacker could have planted
    // with its cookie) no longer passes.
    let response = browser
        .post(
            &app,
            "/dashboard/sessions/end-all",
            &[("csrf", &before_login)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // The token of a page shown after the login does.
    browser.get(&app, "/dashboard").await;
    assert_ne!(browser.csrf, before_login);
    let csrf = browser.csrf.clone();
    let response = browser.post(&app, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        browser.get(&app, "/dashboard").await.0,
        StatusCode::SEE_OTHER
    );
}

async fn organization_admins_edit_only_what_they_may(backend: Backend) {
    let app = spawn_app(backend).await;
    let accounts = app.accounts.clone();
    let (member, outsider) = tokio::task::spawn_blocking(move || {
        let org = accounts
            .create_organization("Acme", None, &[], false)
            .unwrap()
            .id;
        let create = |email: &str, roles: &[&str], org: Option<String>| {
            accounts
                .create_user(accounts::NewAccount {
                    email: accounts::EmailAddress::parse(email).unwrap(),
                    username: None,
                    name: None,
                    password: Some(accounts::Password::parse(PASSWORD.into()).unwrap()),
                    status: accounts::UserStatus::Active,
                    roles: roles.iter().map(|r| r.to_string()).collect(),
                    organization_id: org,
                    locale: None,
                })
                .unwrap()
        };
        create("boss@acme.example", &["org_admin"], Some(org.clone()));
        let member = create("member@acme.example", &["member"], Some(org));
        let outsider = create("ops@operator.example", &["admin"], None);
        // The operator gave the member a permission the org admin lacks.
        let update = accounts::UserUpdate {
            permissions: Some(vec!["fame:write".into()]),
            ..Default::default()
        };
        accounts
            .update_user(&accounts::Actor::operator(), &member, update)
            .unwrap();
        (member, outsider)
    })
    .await
    .unwrap();
    let mut boss = Visitor::new();
    boss.log_in(&app, "boss@acme.example").await;
    // Users of no organization (the operator) are not the org admin's.
    let (status, _) = boss.get(&app, &format!("/admin/users/{outsider}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = boss.get(&app, "/admin/registrations").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Disabling the member leaves the permission alone, so it needs no
    // authority over it; the page sends back what is ticked.
    let (status, _) = boss.get(&app, &format!("/admin/users/{member}")).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = boss.csrf.clone();
    let path = format!("/admin/users/{member}");
    let response = boss
        .post(
            &app,
            &path,
            &[
                ("csrf", &csrf),
                ("roles", "member"),
                ("permissions", "fame:write"),
                ("disabled", "1"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let accounts = app.accounts.clone();
    let stored = tokio::task::spawn_blocking(move || accounts.user_view(&member).unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!(stored.status, "disabled");
    assert_eq!(stored.permissions, ["fame:write"]);
    // Granting what the org admin lacks is refused, with the boxes as ticked.
    let response = boss
        .post(
            &app,
            &path,
            &[
                ("csrf", &csrf),
                ("roles", "member"),
                ("permissions", "fame:write"),
                ("permissions", "fame:read"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("value=\"fame:read\" checked"),
        "ticked box kept"
    );
}

async fn a_browser_session_slides_while_used(backend: Backend) {
    use diesel::prelude::*;
    use storage::schema::refresh_tokens;
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let mut browser = Visitor::new();
    browser.log_in(&app, "kim@example.com").await;
    let session_cookie = |browser: &Visitor| {
        browser
            .cookies
            .iter()
            .find(|(k, _)| k == "auth_session")
            .map(|(_, v)| v.clone())
            .expect("a session cookie")
    };
    let token = session_cookie(&browser);
    let set_cookies = |response: &reqwest::Response| -> Vec<String> {
        response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .filter(|c| c.starts_with("auth_session="))
            .collect()
    };
    // A fresh session: nothing to renew.
    let fresh = app
        .http
        .get(app.url("/dashboard"))
        .header("cookie", browser.header())
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert!(set_cookies(&fresh).is_empty());

    // Past half its idle life (here: a minute left of 4 h) …
    let hash = accounts::secrets::token_hash(&token);
    let pool = app.pool.clone();
    let soon = chrono::Utc::now().naive_utc() + chrono::TimeDelta::seconds(60);
    let deadline = {
        let (pool, hash) = (pool.clone(), hash.clone());
        move || -> chrono::NaiveDateTime {
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(&hash))
                .select(refresh_tokens::expires_at)
                .first(&mut pool.get().unwrap())
                .unwrap()
        }
    };
    {
        let (pool, hash) = (pool.clone(), hash.clone());
        tokio::task::spawn_blocking(move || {
            diesel::update(refresh_tokens::table.filter(refresh_tokens::token_hash.eq(&hash)))
                .set(refresh_tokens::expires_at.eq(soon))
                .execute(&mut pool.get().unwrap())
                .unwrap();
        })
        .await
        .unwrap();
    }
    // … a page view gives the same token a new idle deadline and sends the
    // cookie again with it; no rotation, so other tabs keep working.
    let used = app
        .http
        .get(app.url("/dashboard"))
        .header("cookie", browser.header())
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), StatusCode::OK);
    let renewed = set_cookies(&used);
    assert_eq!(renewed.len(), 1, "{renewed:?}");
    assert!(renewed[0].starts_with(&format!("auth_session={token};")));
    let max_age: i64 = renewed[0]
        .split("Max-Age=")
        .nth(1)
        .and_then(|v| v.split(';').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 14_000, "{max_age}");
    let now_deadline = tokio::task::spawn_blocking(deadline).await.unwrap();
    assert!(now_deadline > soon + chrono::TimeDelta::seconds(13_000));
}

/// The cookie's refresh token, rotated by someone else (a stolen copy used
/// at the refresh endpoint), ends the session at the victim's next page
/// view, as a reuse at the refresh endpoint does: 401, the cookie cleared,
/// and the thief's tokens dead.
async fn a_session_cookie_used_elsewhere_ends_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let mut victim = Visitor::new();
    victim.log_in(&app, "kim@example.com").await;
    let stolen = victim
        .cookies
        .iter()
        .find(|(k, _)| k == "auth_session")
        .map(|(_, v)| v.clone())
        .expect("a session cookie");
    let (status, thief) = app.refresh(&stolen).await;
    assert_eq!(status, StatusCode::OK, "{thief}");

    let response = app
        .http
        .get(app.url("/dashboard"))
        .header("cookie", victim.header())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let cleared = response.headers().get_all(SET_COOKIE).iter().any(|v| {
        v.to_str().unwrap().starts_with("auth_session=;")
            && v.to_str().unwrap().contains("Max-Age=0")
    });
    assert!(cleared, "the session cookie is cleared");
    victim.keep(&response);

    let (status, body) = app.refresh(thief["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = app.me(thief["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = victim.get(&app, "/dashboard").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "signed out: sent to the login page"
    );
}

/// The text between `start` and the next `end` in `body`.
fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let from = body
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {body}"))
        + start.len();
    let rest = &body[from..];
    &rest[..rest.find(end).unwrap()]
}

async fn a_second_factor_is_enrolled_and_used_through_the_pages(backend: Backend) {
    use totp_rs::{Algorithm, Secret, TOTP};
    let app = spawn_app(backend).await;
    app.create_user("kim@example.com", None).await;
    let mut visitor = Visitor::new();
    let response = visitor.log_in(&app, "kim@example.com").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, page) = visitor.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/dashboard/mfa"), "{page}");
    let (status, page) = visitor.get(&app, "/dashboard/mfa").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"enrol\""), "{page}");

    // The secret as a QR code drawn on the server, and as text.
    let csrf = visitor.csrf.clone();
    let response = visitor
        .post(&app, "/dashboard/mfa/totp", &[("csrf", &csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<svg ") && page.contains("role=\"img\""),
        "{page}"
    );
    // No inline script: the only script is the site's own file.
    assert_eq!(
        page.matches("<script").count(),
        page.matches("<script src=").count()
    );
    let secret = between(&page, "<code id=\"secret\">", "<").to_owned();
    let uri = between(&page, "name=\"otpauth_uri\" value=\"", "\"").to_owned();
    let app_code = |offset: i64| {
        let bytes = Secret::Encoded(secret.clone()).to_bytes().unwrap();
        let step = chrono::Utc::now().timestamp() / 30 + offset;
        TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes)
            .unwrap()
            .generate((step * 30) as u64)
    };
    let now_code = app_code(0);
    let response = visitor
        .post(
            &app,
            "/dashboard/mfa/totp/confirm",
            &[
                ("csrf", &csrf),
                ("secret", &secret),
                ("otpauth_uri", &uri),
                ("code", &now_code),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("download=\"recovery-codes.txt\""), "{page}");
    assert!(
        page.contains("href=\"data:text/plain;charset=utf-8,"),
        "{page}"
    );
    let list = between(&page, "<ul id=\"recovery-codes\">", "</ul>");
    let codes: Vec<String> = list
        .split("<code>")
        .skip(1)
        .map(|c| c[..c.find('<').unwrap()].to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{page}");
    let (_, page) = visitor.get(&app, "/dashboard/mfa").await;
    assert!(page.contains(": 10"), "{page}");

    // Log out; the password now leads to the second step.
    let csrf = visitor.csrf.clone();
    visitor.post(&app, "/logout", &[("csrf", &csrf)]).await;
    let mut visitor = Visitor::new();
    let response = visitor.log_in(&app, "kim@example.com").await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("action=\"/login/mfa\""), "{page}");
    let token = between(&page, "name=\"mfa_token\" value=\"", "\"").to_owned();
    let csrf = visitor.csrf.clone();
    let wrong = visitor
        .post(
            &app,
            "/login/mfa",
            &[
                ("csrf", &csrf),
                ("mfa_token", &token),
                ("method", "totp"),
                ("code", "0000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let next_code = app_code(1);
    let right = visitor
        .post(
            &app,
            "/login/mfa",
            &[
                ("csrf", &csrf),
                ("mfa_token", &token),
                ("method", "totp"),
                ("code", &next_code),
            ],
        )
        .await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()[LOCATION], "/dashboard");
    let (status, _) = visitor.get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::OK);

    // A recovery code instead of the app, once.
    let mut visitor = Visitor::new();
    let page = visitor
        .log_in(&app, "kim@example.com")
        .await
        .text()
        .await
        .unwrap();
    let token = between(&page, "name=\"mfa_token\" value=\"", "\"").to_owned();
    let csrf = visitor.csrf.clone();
    let response = visitor
        .post(
            &app,
            "/login/mfa",
            &[
                ("csrf", &csrf),
                ("mfa_token", &token),
                ("method", "recovery_code"),
                ("recovery_code", &codes[0]),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

async fn admins_without_a_second_factor_are_led_to_its_enrolment(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_MFA_REQUIRED_ROLES", "admin")]).await;
    app.create_admin("root@example.com").await;
    let mut visitor = Visitor::new();
    visitor.log_in(&app, "root@example.com").await;
    for path in ["/dashboard", "/admin/users"] {
        let response = app
            .http
            .get(app.url(path))
            .header("cookie", visitor.header())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[LOCATION], "/dashboard/mfa", "{path}");
    }
    let (status, page) = visitor.get(&app, "/dashboard/mfa").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"enrol\""), "{page}");
}

/// Every session of `email` authenticated (with the password) an hour ago.
fn age_sessions_of(app: &TestApp, email: &str) {
    let mut conn = app.pool.get().unwrap();
    let at = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).naive_utc();
    let user = app
        .accounts
        .user_by_email(&accounts::EmailAddress::parse(email).unwrap())
        .unwrap()
        .unwrap();
    for session in app.accounts.sessions_of(&user.id).unwrap() {
        storage::repo::sessions::set_authentication(&mut conn, &session.id, "pwd", at).unwrap();
    }
}

async fn sensitive_forms_ask_to_confirm_it_is_you_and_then_carry_on(backend: Backend) {
    let app = spawn_app(backend).await;
    let kim = app.create_user("kim@example.com", None).await;
    let mut visitor = Visitor::new();
    visitor.log_in(&app, "kim@example.com").await;
    let (_, _) = visitor.get(&app, "/dashboard").await;
    // The browser session authenticated an hour ago.
    age_sessions_of(&app, "kim@example.com");
    let csrf = visitor.csrf.clone();
    let token = [
        ("csrf", csrf.as_str()),
        ("name", "ci"),
        ("expires_in_days", ""),
    ];
    let refused = visitor.post(&app, "/dashboard/tokens", &token).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("id=\"step-up-link\" href=\"/step-up?next=&#x2f;dashboard\""),
        "{page}"
    );
    let (status, page) = visitor.get(&app, "/step-up?next=/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("name=\"password\""), "{page}");
    let csrf = visitor.csrf.clone();
    let wrong = visitor
        .post(
            &app,
            "/step-up",
            &[
                ("csrf", &csrf),
                ("next", "/dashboard"),
                ("password", "nope nope"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let right = visitor
        .post(
            &app,
            "/step-up",
            &[
                ("csrf", &csrf),
                ("next", "/dashboard"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()[LOCATION], "/dashboard");
    let created = visitor.post(&app, "/dashboard/tokens", &token).await;
    assert_eq!(created.status(), StatusCode::CREATED);

    // An operator granting a permission on a user's page: asked too, and
    // brought back to that page.
    app.create_admin("root@example.com").await;
    let mut root = Visitor::new();
    root.log_in(&app, "root@example.com").await;
    let page_path = format!("/admin/users/{kim}");
    let (status, _) = root.get(&app, &page_path).await;
    assert_eq!(status, StatusCode::OK);
    age_sessions_of(&app, "root@example.com");
    let csrf = root.csrf.clone();
    let grant = [("csrf", csrf.as_str()), ("permissions", "sms:send")];
    let refused = root.post(&app, &page_path, &grant).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let page = refused.text().await.unwrap();
    // (`/` is HTML-escaped in the attribute; the browser reads `next=/admin/…`.)
    let link = format!("href=\"/step-up?next=&#x2f;admin&#x2f;users&#x2f;{kim}\"");
    assert!(page.contains(&link), "{page}");
    let stepped = root
        .post(
            &app,
            "/step-up",
            &[
                ("csrf", &csrf),
                ("next", &page_path),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(stepped.status(), StatusCode::SEE_OTHER);
    assert_eq!(stepped.headers()[LOCATION], page_path.as_str());
    let saved = root.post(&app, &page_path, &grant).await;
    assert_eq!(saved.status(), StatusCode::OK);
    let accounts = app.accounts.clone();
    let stored = tokio::task::spawn_blocking(move || accounts.user_view(&kim).unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!(stored.permissions, ["sms:send"]);
}
