//! The embedding example over HTTP, on both databases: an application that
//! mounts the auth surface in-process signs a user up with a mailed code
//! (delivered over real SMTP), logs in, uses its own protected route, logs
//! out (refused there at once) and limits failed logins.

use std::time::Duration;

use embedded_auth::{Config, start};
use mailer::test_smtp::{SmtpSink, six_digit_code};
use serde_json::{Value, json};
use storage::Backend;
use storage::test_support::TestDatabase;

const PASSWORD: &str = "a long and private phrase";

#[tokio::test]
async fn sqlite_signup_login_logout_and_limits() {
    story(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_signup_login_logout_and_limits() {
    story(Backend::Postgres).await;
}

async fn story(backend: Backend) {
    let db = tokio::task::spawn_blocking(move || TestDatabase::create(backend))
        .await
        .unwrap();
    let sink = SmtpSink::start().await;
    let running = start(Config {
        database_url: db.url_string(),
        keys_dir: db.dir.join("keys"),
        mail: mailer::TransportConfig::Smtp {
            host: "127.0.0.1".into(),
            port: sink.port(),
            security: mailer::SmtpSecurity::None,
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
        },
        mail_from: "Example <no-reply@example.com>".into(),
        bind: "127.0.0.1:0".into(),
    })
    .await
    .expect("the example starts");
    let base = running.base_url.clone();
    tokio::spawn(running.server);
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();

    // The application's own page, next to the auth surface.
    let home = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert_eq!(
        http.get(format!("{base}/auth/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Sign up, verify with the mailed code.
    let signup = post(
        "/auth/api/v1/auth/signup",
        json!({"email": "lee@example.com", "password": PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(signup.status(), 201);
    let mail = sink
        .wait_for("lee@example.com", Duration::from_secs(10))
        .await
        .expect("the code is mailed");
    let code = six_digit_code(&mail.text_body()).expect("a code in the mail");
    let verified = post(
        "/auth/api/v1/auth/email/verify",
        json!({"email": "lee@example.com", "code": code}),
    )
    .await
    .unwrap();
    assert_eq!(verified.status(), 200);

    // Log in; the application's own API accepts the token.
    let login = post(
        "/auth/api/v1/auth/login",
        json!({"login": "lee@example.com", "password": PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(login.status(), 200);
    let tokens: Value = login.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let whoami = || {
        http.get(format!("{base}/api/whoami"))
            .bearer_auth(&access)
            .send()
    };
    let me = whoami().await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(
        me.json::<Value>().await.unwrap()["email"],
        "lee@example.com"
    );

    // Logout: refused by the application at once.
    let logout = http
        .post(format!("{base}/auth/api/v1/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let refused = whoami().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "token_revoked"
    );

    // Failed logins are limited (5 per account by default): the sixth
    // attempt is refused before its password is checked.
    for _ in 0..5 {
        let wrong = post(
            "/auth/api/v1/auth/login",
            json!({"login": "lee@example.com", "password": "not the password at all"}),
        )
        .await
        .unwrap();
        assert_eq!(wrong.status(), 401);
    }
    let limited = post(
        "/auth/api/v1/auth/login",
        json!({"login": "lee@example.com", "password": PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
}
