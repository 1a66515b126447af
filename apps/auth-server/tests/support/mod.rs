//! Test harness: a real server on port 0 over a real, fresh database,
//! driven over HTTP.
#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::HashMap;
use std::sync::Arc;

/// Tests rotate and read the key folder through the store trait.
pub use accounts::keys::KeyStore;
use accounts::{EmailAddress, NewAccount, Password, UserStatus, Username};
use auth_server::config::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::Backend;
use storage::test_support::TestDatabase;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub settings: Settings,
    pub accounts: Arc<accounts::Accounts>,
    /// The test's own connections to the server's database, for looking
    /// behind the API.
    pub pool: storage::DbPool,
    /// Stops the server ([`TestApp::restart`] starts it again).
    pub server: actix_web::dev::ServerHandle,
    // Dropped last: removes the database and the key folder.
    pub db: TestDatabase,
}

/// Settings for a test server: port 0, the test database, keys next to it.
pub fn test_settings(db: &TestDatabase, overrides: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::from([
        ("AUTH_BIND".into(), "127.0.0.1:0".into()),
        ("AUTH_DATABASE_URL".into(), db.url_string()),
        (
            "AUTH_KEYS_DIR".into(),
            db.dir.join("keys").to_string_lossy().into_owned(),
        ),
        ("AUTH_ISSUER".into(), "http://auth.test".into()),
        ("AUTH_WORKERS".into(), "1".into()),
        ("AUTH_DB_POOL_SIZE".into(), "4".into()),
        ("AUTH_ARGON2_MAX_CONCURRENT".into(), "2".into()),
        ("AUTH_REVOCATION_POLL_MS".into(), "200".into()),
        // Existing stories act as admins without a second factor; the
        // policy itself is tested in mfa.rs with it switched on.
        ("AUTH_MFA_REQUIRED_ROLES".into(), "".into()),
        (
            "AUTH_MAIL_DIR".into(),
            db.dir.join("mail").to_string_lossy().into_owned(),
        ),
    ]);
    for (k, v) in overrides {
        env.insert((*k).into(), (*v).into());
    }
    Settings::load(None, env).expect("test settings")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    let db = tokio::task::spawn_blocking(move || TestDatabase::create(backend))
        .await
        .unwrap();
    let settings = test_settings(&db, overrides);
    let app = auth_server::start(settings.clone())
        .await
        .expect("server starts");
    let base = app.base_url();
    let server = app.server.handle();
    tokio::spawn(app.server);
    let setup = settings.clone();
    let services = tokio::task::spawn_blocking(move || auth_server::app::services(&setup, false))
        .await
        .unwrap()
        .expect("services");
    TestApp {
        base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        settings,
        accounts: services.accounts,
        pool: services.pool,
        server,
        db,
    }
}

impl TestApp {
    /// Stops the server and starts it again on the same address, database
    /// and key folder: what an operator's restart does (e.g. after `keys rotate`).
    pub async fn restart(&mut self) {
        self.server.stop(true).await;
        let address = self.base.trim_start_matches("http://").to_owned();
        let mut settings = self.settings.clone();
        settings.bind = address.parse().expect("the test server's address");
        let app = auth_server::start(settings).await.expect("server restarts");
        assert_eq!(app.base_url(), self.base, "restarted on the same address");
        self.server = app.server.handle();
        tokio::spawn(app.server);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates an active user directly through the accounts service.
    pub async fn create_user(&self, email: &str, username: Option<&str>) -> String {
        self.create_user_with_status(email, username, UserStatus::Active)
            .await
    }

    /// An active operator (`admin` role) with [`PASSWORD`].
    pub async fn create_admin(&self, email: &str) -> String {
        self.create_account(email, None, UserStatus::Active, vec!["admin".to_owned()])
            .await
    }

    pub async fn create_user_with_status(
        &self,
        email: &str,
        username: Option<&str>,
        status: UserStatus,
    ) -> String {
        self.create_account(email, username, status, Vec::new())
            .await
    }

    async fn create_account(
        &self,
        email: &str,
        username: Option<&str>,
        status: UserStatus,
        roles: Vec<String>,
    ) -> String {
        let accounts = self.accounts.clone();
        let account = NewAccount {
            email: EmailAddress::parse(email).unwrap(),
            username: username.map(|u| Username::parse(u).unwrap()),
            name: Some(accounts::DisplayName::parse("Test User").unwrap()),
            password: Some(Password::parse(PASSWORD.into()).unwrap()),
            status,
            roles,
            organization_id: None,
            locale: None,
        };
        tokio::task::spawn_blocking(move || accounts.create_user(account))
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn login(&self, login: &str) -> Value {
        let (status, body) = self
            .post_json(
                "/api/v1/auth/login",
                json!({"login": login, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login failed: {body}");
        body
    }

    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.post_json(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    pub async fn me(&self, access_token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url("/api/v1/auth/me"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn post_bearer(&self, path: &str, access_token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        read(response).await
    }
}

/// Waits for a child process to end (after a signal), at most `within`.
pub async fn exited(
    child: &mut std::process::Child,
    within: std::time::Duration,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running {within:?} after the signal"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Logs in with [`PASSWORD`] at the server at `base` (e.g. a separate
/// process); asserts it worked.
pub async fn login_at(http: &reqwest::Client, base: &str, login: &str) -> Value {
    let response = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"login": login, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// `/me` at the server at `base`.
pub async fn me_at(http: &reqwest::Client, base: &str, token: &str) -> (StatusCode, Value) {
    read(
        http.get(format!("{base}/api/v1/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Status and body (JSON, or `null` when empty). Asserts that errors are
/// problem+json and that no response is a 5xx.
pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert!(!status.is_server_error(), "server error {status}: {text}");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if status.is_client_error() {
        assert_eq!(
            content_type, "application/problem+json",
            "error without problem+json: {status} {body}"
        );
        assert_eq!(body["status"], status.as_u16(), "{body}");
        assert!(
            body["code"].is_string() && body["title"].is_string() && body["type"].is_string(),
            "{body}"
        );
    }
    (status, body)
}

/// Generates one test per backend: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(storage::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(storage::Backend::Postgres).await;
                }
            )*
        }
    };
}

pub const MAIL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A server whose mail goes over SMTP to a real listener in the test.
pub async fn app_with_smtp(
    backend: Backend,
    extra: &[(&str, &str)],
) -> (TestApp, mailer::test_smtp::SmtpSink) {
    let sink = mailer::test_smtp::SmtpSink::start().await;
    let port = sink.port().to_string();
    let mut overrides = vec![
        ("AUTH_MAIL_TRANSPORT", "smtp"),
        ("AUTH_SMTP_HOST", "127.0.0.1"),
        ("AUTH_SMTP_PORT", port.as_str()),
        ("AUTH_SMTP_SECURITY", "none"),
        ("AUTH_OUTBOX_POLL_MS", "100"),
        ("AUTH_PUBLIC_URL", "https://auth.example.com"),
    ];
    overrides.extend_from_slice(extra);
    (spawn_app_with(backend, &overrides).await, sink)
}

impl TestApp {
    pub async fn get_bearer(&self, path: &str, token: &str) -> (StatusCode, Value) {
        read(
            self.http
                .get(self.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }
}

/// The `kid` in a token's header (unverified: for assertions only).
pub fn token_kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A port nothing listens on (bound, read, released): for services that
/// must be unreachable, or for a listener started later on a known port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
pub mod browser;
pub mod own_postgres;
pub mod passkey;
pub mod totp;
pub mod visitor;

/// Each field's JSON type as a seed's response table names it (`string`,
/// `integer`/`int`/`long`, `number`, `object`/`dict`, `array`, `boolean`),
/// by JSON pointer: conformance is types too, not only names.
pub fn assert_seed_types(body: &Value, table: &[(&str, &str)]) {
    for (pointer, kind) in table {
        let value = body
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{pointer} missing in {body}"));
        let ok = match *kind {
            "string" => value.is_string(),
            "integer" | "int" | "long" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "object" | "dict" => value.is_object(),
            "array" => value.is_array(),
            "boolean" => value.is_boolean(),
            other => panic!("unknown seed type {other}"),
        };
        assert!(ok, "{pointer} should be {kind}: {value} in {body}");
    }
}
