//! An authenticator app for tests: TOTP enrolment over the API, and codes
//! made from the secret the enrolment showed, as an app would make them.

use reqwest::{Method, StatusCode};
use serde_json::json;
use totp_rs::{Algorithm, Secret, TOTP};

use super::TestApp;

/// An authenticator app holding the enrolment's secret.
pub struct App(TOTP);

impl App {
    pub fn new(secret: &str) -> App {
        let bytes = Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
        App(TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes).unwrap())
    }

    pub fn step_now() -> i64 {
        chrono::Utc::now().timestamp() / 30
    }

    pub fn code(&self, step: i64) -> String {
        self.0.generate((step * 30) as u64)
    }
}

/// Enrols TOTP for the session of `access`; the app and the recovery codes.
pub async fn enrol(app: &TestApp, access: &str) -> (App, Vec<String>) {
    let (status, enrolment) = app.post_bearer("/api/v1/auth/mfa/totp", access).await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    let secret = enrolment["secret"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let authenticator = App::new(secret);
    let (status, body) = app
        .send_json(
            Method::POST,
            "/api/v1/auth/mfa/totp/confirm",
            Some(access),
            json!({"code": authenticator.code(App::step_now())}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (authenticator, codes)
}
