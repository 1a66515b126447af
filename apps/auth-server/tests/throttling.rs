//! Rate limits shared through the database: failed logins per login name
//! and per IP, code attempts, mail-sending requests; `429` with
//! `Retry-After`; one budget for every instance; client IPs from trusted
//! proxies only. On both backends.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::Backend;
use support::*;

backend_tests!(
    failed_logins_are_limited_per_login_name_whether_or_not_it_exists,
    instances_on_one_database_share_the_budget,
    mail_requests_are_limited_per_address_and_per_ip,
    code_attempts_are_limited_per_ip,
    forwarded_addresses_count_only_from_trusted_proxies,
    parallel_wrong_second_factor_codes_on_two_instances_count_exactly,
);

async fn attempt(
    base: &str,
    http: &reqwest::Client,
    login: &str,
    password: &str,
) -> reqwest::Response {
    http.post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"login": login, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn login_status(app: &TestApp, login: &str, password: &str) -> (StatusCode, Value) {
    read(attempt(&app.base, &app.http, login, password).await).await
}

fn assert_throttled(response: &reqwest::Response) -> u64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    retry_after
}

async fn failed_logins_are_limited_per_login_name_whether_or_not_it_exists(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("ada@example.test", Some("ada")).await;
    app.create_user("bob@example.test", Some("bob")).await;

    for login in ["ada@example.test", "ghost@example.test"] {
        for n in 0..5 {
            let (status, body) = login_status(&app, login, "wrong password").await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_credentials")),
                "{login} attempt {n}"
            );
        }
        // The sixth attempt is refused before the password is looked at —
        // even the right one — and the same for a login name nobody has.
        let refused = attempt(&app.base, &app.http, login, PASSWORD).await;
        let retry_after = assert_throttled(&refused);
        assert!(
            retry_after <= 180,
            "one more attempt per 3 min: {retry_after}"
        );
        let (_, body) = read(refused).await;
        assert_eq!(body["code"], "too_many_attempts");
    }
    // The login name as typed, case and spaces aside, is what counts.
    let refused = attempt(&app.base, &app.http, " ADA@example.test ", PASSWORD).await;
    assert_throttled(&refused);
    // Others from the same address are not locked out.
    app.login("bob").await;
}

async fn instances_on_one_database_share_the_budget(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("ada@example.test", Some("ada")).await;
    let second = auth_server::start(app.settings.clone()).await.unwrap();
    let second_base = second.base_url();
    tokio::spawn(second.server);

    for n in 0..5 {
        let base = if n % 2 == 0 { &app.base } else { &second_base };
        let response = attempt(base, &app.http, "ada", "wrong password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    assert_throttled(&attempt(&app.base, &app.http, "ada", PASSWORD).await);
    assert_throttled(&attempt(&second_base, &app.http, "ada", PASSWORD).await);
}

async fn mail_requests_are_limited_per_address_and_per_ip(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_THROTTLE_MAIL_IP", "8/1h")]).await;
    let forgot = |email: &'static str| {
        app.http
            .post(app.url("/api/v1/auth/password/forgot"))
            .json(&json!({ "email": email }))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(
            forgot("ada@example.test").await.unwrap().status(),
            StatusCode::ACCEPTED
        );
    }
    // Per address: the sixth is refused (and sends nothing).
    assert_throttled(&forgot("ada@example.test").await.unwrap());
    // Another address still works, until the IP's own budget (8) runs out.
    for _ in 0..3 {
        assert_eq!(
            forgot("bob@example.test").await.unwrap().status(),
            StatusCode::ACCEPTED
        );
    }
    assert_throttled(&forgot("carol@example.test").await.unwrap());
    // Signup and organization codes draw on the same budgets.
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "dave@example.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts"))
    );
}

async fn code_attempts_are_limited_per_ip(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_THROTTLE_CODE_IP", "3/1h")]).await;
    for n in 0..3 {
        let (status, body) = app
            .post_json(
                "/api/v1/auth/email/verify",
                json!({"email": format!("user{n}@example.test"), "code": "123456"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, body) = app
        .post_json(
            "/api/v1/auth/password/reset",
            json!({"email": "x@example.test", "code": "123456", "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts"))
    );
}

async fn forwarded_addresses_count_only_from_trusted_proxies(backend: Backend) {
    let limits = [
        ("AUTH_THROTTLE_LOGIN_ACCOUNT", "off"),
        ("AUTH_THROTTLE_LOGIN_IP", "2/1h"),
    ];
    let fail_from = |app: &TestApp, forwarded_for: &'static str| {
        app.http
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({"login": "nobody", "password": "wrong"}))
            .send()
    };

    // Not trusted: the header is the client's own claim and changes nothing.
    let app = spawn_app_with(backend, &limits).await;
    for spoofed in ["192.0.2.1", "192.0.2.2"] {
        assert_eq!(
            fail_from(&app, spoofed).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_throttled(&fail_from(&app, "192.0.2.3").await.unwrap());

    // Behind a trusted proxy: each client address has its own budget, and
    // the proxy's own hops are skipped.
    let mut trusted = limits.to_vec();
    trusted.push(("AUTH_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8"));
    let app = spawn_app_with(backend, &trusted).await;
    for _ in 0..2 {
        let response = fail_from(&app, "198.51.100.7, 10.1.2.3").await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_throttled(&fail_from(&app, "198.51.100.7").await.unwrap());
    let response = fail_from(&app, "198.51.100.8").await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "another client, another budget"
    );
    // A `Forwarded` header the client sent itself (which such a proxy passes
    // through) names nobody: only the configured header counts.
    for i in 0..3 {
        let response = app
            .http
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", "198.51.100.9")
            .header("forwarded", format!("for=203.0.113.{i}"))
            .json(&json!({"login": "nobody", "password": "wrong"}))
            .send()
            .await
            .unwrap();
        if i < 2 {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        } else {
            assert_throttled(&response);
        }
    }
}

/// 200 wrong codes at once for one `mfa_token`, half to each of two
/// instances on one database: exactly the account's budget (20) gets past
/// the limit, and of those exactly five are counted as wrong codes before
/// the token dies.
async fn parallel_wrong_second_factor_codes_on_two_instances_count_exactly(backend: Backend) {
    use totp_rs::{Algorithm, Secret, TOTP};
    let app = spawn_app_with(backend, &[("AUTH_THROTTLE_MFA_ACCOUNT", "20/1h")]).await;
    app.create_user("ada@example.test", Some("ada")).await;
    let first = app.login("ada").await;
    let access = first["access_token"].as_str().unwrap();
    let (status, enrolment) = app.post_bearer("/api/v1/auth/mfa/totp", access).await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let secret = Secret::Encoded(enrolment["secret"].as_str().unwrap().to_owned())
        .to_bytes()
        .unwrap();
    let code = TOTP::new(Algorithm::SHA1, 6, 1, 30, secret)
        .unwrap()
        .generate(chrono::Utc::now().timestamp() as u64);
    let (status, body) = app
        .send_json(
            reqwest::Method::POST,
            "/api/v1/auth/mfa/totp/confirm",
            Some(access),
            json!({ "code": code }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, challenge) = login_status(&app, "ada", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let token = challenge["mfa_token"].as_str().unwrap().to_owned();

    let second = auth_server::start(app.settings.clone()).await.unwrap();
    let second_base = second.base_url();
    tokio::spawn(second.server);
    let mut burst = tokio::task::JoinSet::new();
    for n in 0..200 {
        let base = if n % 2 == 0 {
            app.base.clone()
        } else {
            second_base.clone()
        };
        let (http, token) = (app.http.clone(), token.clone());
        burst.spawn(async move {
            let response = http
                .post(format!("{base}/api/v1/auth/mfa/verify"))
                // Seven digits: never a right code.
                .json(&json!({"mfa_token": token, "method": "totp", "code": "0000000"}))
                .send()
                .await
                .unwrap();
            let (status, body) = read(response).await;
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        });
    }
    let mut answers = std::collections::BTreeMap::<(u16, String), usize>::new();
    while let Some(answer) = burst.join_next().await {
        let (status, code) = answer.unwrap();
        *answers.entry((status.as_u16(), code)).or_default() += 1;
    }
    let expected = std::collections::BTreeMap::from([
        ((401, "invalid_code".to_owned()), 5),
        ((401, "invalid_mfa_token".to_owned()), 15),
        ((429, "too_many_attempts".to_owned()), 180),
    ]);
    assert_eq!(answers, expected);
}
