//! The web pages in a real browser (headless Chromium over WebDriver), on
//! SQLite; the API stories run the same logic on both backends.
//!
//! 1. A company registers (form → review → submitted), an operator approves
//!    it in the admin pages, the contact activates from the mailed link,
//!    creates an API token with one permission, the token works as a
//!    bearer, is revoked in the dashboard, and is then refused.
//! 2. Seed 004: a student signs up with the organization's email domain,
//!    the mailed code and a username, with JavaScript off.
//! 3. A forgotten password is reset from the mailed link, on a phone-wide
//!    window.
//! 4. Single sign-on pages: a third-party application's consent page (and
//!    the way back to it after the form, past the CSP), the device code
//!    pages, the dashboard's connected applications, the admin's clients.
//!
//! Screenshots of every page land in `target/tmp/screenshots/<test>/`, and
//! each page photographed is then checked with axe-core (WCAG 2.1 AA and best practice):
//! any violation fails the test.

mod support;

use accounts::Domain;
use reqwest::StatusCode;
use storage::Backend;
use support::browser::{Browser, Options};
use support::*;

/// Whether the page's own script ran (it marks `<html>`). WebDriver's
/// scripts run even when the page's are off, so this asks the page.
const SCRIPTS_RAN: &str = "return document.documentElement.classList.contains('js')";

/// The path and query of the first link in `text` that contains `marker`
/// (mails carry the configured public URL; the test server has its own).
fn link_path(text: &str, marker: &str) -> String {
    let start = text.find(marker).expect("link in mail");
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

/// The first operator, made as the README says: `auth-server admin create`
/// with the password on stdin, against the test server's database.
fn create_admin_with_the_cli(app: &TestApp, email: &str) {
    use std::io::Write;
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_auth-server"))
        .args(["admin", "create", "--email", email])
        .env("AUTH_DATABASE_URL", app.db.url_string())
        .env("AUTH_KEYS_DIR", app.db.dir.join("keys"))
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(cli.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let output = cli.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn log_in(browser: &Browser, app: &TestApp, login: &str, password: &str) {
    browser.goto(&app.url("/login")).await;
    browser.check_accessibility("login").await;
    browser.fill("#f-login", login).await;
    browser.fill("#f-password", password).await;
    browser.click("#submit").await;
    browser.wait_for("#profile-email").await;
}

#[tokio::test]
async fn company_onboarding_in_the_browser() {
    let (app, sink) = app_with_smtp(Backend::Sqlite, &[]).await;
    create_admin_with_the_cli(&app, "ops@operator.test");
    let visitor = Browser::start("company_onboarding", Options::default()).await;

    // Korean by default; every string from the catalog.
    visitor.goto(&app.url("/")).await;
    assert_eq!(visitor.text("h1").await, "인증 센터");
    assert_eq!(visitor.script(SCRIPTS_RAN).await, serde_json::json!(true));
    visitor.screenshot("home").await;

    // Registration: the form, an invalid address shown next to its field
    // with every other value kept, the review step, the confirmation.
    visitor.goto(&app.url("/register")).await;
    visitor.fill("#f-company_name", "Acme Korea").await;
    visitor.fill("#f-contact_name", "홍길동").await;
    visitor.fill("#f-contact_email", "not-an-address").await;
    visitor.fill("#f-contact_phone", "010-1234-5678").await;
    visitor.click("#submit").await;
    visitor.wait_for(".field.invalid #f-contact_email").await;
    assert!(!visitor.text("#e-contact_email").await.is_empty());
    assert_eq!(visitor.value("#f-company_name").await, "Acme Korea");
    visitor.screenshot("register-invalid").await;
    visitor.fill("#f-contact_email", "hong@acme.co.kr").await;
    visitor.click("#submit").await;
    assert_eq!(
        visitor.text("#review-contact_email").await,
        "hong@acme.co.kr"
    );
    visitor.screenshot("register-review").await;
    visitor.click("#confirm").await;
    visitor.wait_for("#notice").await;
    assert!(visitor.url().await.ends_with("/register/done"));
    visitor.screenshot("register-done").await;

    // The operator approves with one permission, in the admin pages.
    let operator = Browser::start("company_onboarding_operator", Options::default()).await;
    log_in(&operator, &app, "ops@operator.test", PASSWORD).await;
    operator.screenshot("operator-dashboard").await;
    operator.goto(&app.url("/admin")).await;
    operator.wait_for("#registrations").await;
    operator.screenshot("registration-queue").await;
    operator.click("a.registration-link").await;
    operator
        .click("input[name=permissions][value='sms:send']")
        .await;
    operator.screenshot("registration-detail").await;
    operator.click("#approve").await;
    operator.wait_for("#registration-status").await;
    assert_eq!(operator.text("#registration-status").await, "승인됨");
    operator.screenshot("registration-approved").await;

    // The activation link from the mail: the account is shown, nothing is
    // spent until the form is sent; mismatched passwords are refused.
    let mail = sink
        .wait_for("hong@acme.co.kr", MAIL_WAIT)
        .await
        .expect("activation mail");
    let link = link_path(&mail.text_body(), "/activate?token=");
    visitor.goto(&app.url(&link)).await;
    assert_eq!(visitor.text("#account-email").await, "hong@acme.co.kr");
    assert_eq!(visitor.text("#account-organization").await, "Acme Korea");
    visitor.screenshot("activate").await;
    let new_password = "purple elephant dances quietly";
    visitor.fill("#f-password", new_password).await;
    visitor
        .fill("#f-password_confirm", "something else entirely")
        .await;
    visitor.click("#submit").await;
    visitor.wait_for(".field.invalid #f-password_confirm").await;
    visitor.screenshot("activate-mismatch").await;
    visitor.fill("#f-password", new_password).await;
    visitor.fill("#f-password_confirm", new_password).await;
    visitor.click("#submit").await;
    visitor.wait_for("#profile-email").await;
    assert_eq!(visitor.text("#profile-permissions").await, "sms:send");
    visitor.screenshot("dashboard").await;

    // An API token with the one permission; shown once, with a copy button
    // (JavaScript is on here).
    visitor.fill("#f-name", "ci deploy").await;
    visitor
        .click("input[name=permissions][value='sms:send']")
        .await;
    visitor.click("#create-token").await;
    let token = visitor.value("#token-value").await;
    assert!(token.len() > 20, "token shown: {token:?}");
    assert!(
        visitor
            .script("return !document.querySelector('button.copy').hidden")
            .await
            .as_bool()
            .unwrap(),
        "the copy button is shown when scripts run"
    );
    visitor.screenshot("token-created").await;

    // It works as a bearer token, carrying the permission …
    let (status, me) = app.get_bearer("/api/v1/auth/me", &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["permissions"], serde_json::json!(["sms:send"]));

    // … until it is revoked in the dashboard.
    visitor.click("#back").await;
    visitor.wait_for("#token-list").await;
    assert_eq!(visitor.text("tr.token .token-name").await, "ci deploy");
    visitor.screenshot("dashboard-token").await;
    visitor.click("tr.token button.danger").await;
    visitor.wait_for("#no-tokens").await;
    let (status, body) = app.get_bearer("/api/v1/auth/me", &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_revoked"))
    );

    // English by switch; the operator sees it all in the audit log.
    visitor.click("#lang-en").await;
    visitor.wait_for("#lang-ko").await;
    assert_eq!(visitor.text("h1").await, "Dashboard");
    visitor.screenshot("dashboard-en").await;
    operator
        .goto(&app.url("/admin/audit?event=api_token.revoked"))
        .await;
    operator.wait_for("#audit td.event").await;
    assert_eq!(operator.text("#audit td.event").await, "api_token.revoked");
    operator.screenshot("audit").await;
    operator.goto(&app.url("/admin/users?q=acme")).await;
    operator.wait_for("a.user-link").await;
    operator.screenshot("users").await;
    operator.click("a.user-link").await;
    operator.wait_for("#f-disabled").await;
    operator.screenshot("user").await;

    // Logging out ends the browser's session.
    visitor.click("#logout").await;
    visitor.wait_for("#f-login").await;
    visitor.goto(&app.url("/dashboard")).await;
    visitor.wait_for("#f-login").await;
    assert!(visitor.url().await.contains("/login?next="));
    visitor.close().await;
    operator.close().await;
}

#[tokio::test]
async fn organization_signup_in_the_browser_without_javascript() {
    let (app, sink) = app_with_smtp(Backend::Sqlite, &[]).await;
    let accounts = app.accounts.clone();
    tokio::task::spawn_blocking(move || {
        let domain = Domain::parse("hanbit.ac.kr").unwrap();
        accounts
            .create_organization("한빛대학교", Some("KR"), &[domain], false)
            .unwrap();
    })
    .await
    .unwrap();
    let student = Browser::start(
        "organization_signup",
        Options {
            javascript: false,
            ..Options::default()
        },
    )
    .await;

    student.goto(&app.url("/signup")).await;
    assert_eq!(
        student.script(SCRIPTS_RAN).await,
        serde_json::json!(false),
        "the page's scripts are off in this browser"
    );
    student.screenshot("signup-organization").await;
    student
        .click("#f-organization_id option:nth-child(2)")
        .await;
    // An address outside the organization's domains is refused at its field.
    student.fill("#f-email", "kim@gmail.com").await;
    student.click("#submit").await;
    student.wait_for(".field.invalid #f-email").await;
    student.screenshot("signup-wrong-domain").await;
    student.fill("#f-email", "kim@hanbit.ac.kr").await;
    student.click("#submit").await;
    student.wait_for("#f-code").await;
    student.screenshot("signup-code").await;

    let mail = sink
        .wait_for("kim@hanbit.ac.kr", MAIL_WAIT)
        .await
        .expect("code mail");
    let code = mailer::test_smtp::six_digit_code(&mail.text_body()).expect("a code");
    student.fill("#f-code", &code).await;
    student.click("#submit").await;
    student.wait_for("#f-username").await;
    student.screenshot("signup-account").await;

    student.fill("#f-username", "kim_hanbit").await;
    student.fill("#f-password", "maple leaves in autumn").await;
    student
        .fill("#f-password_confirm", "maple leaves in autumn")
        .await;
    student.click("#submit").await;
    student.wait_for("#notice").await;
    student.screenshot("signup-done").await;

    log_in(&student, &app, "kim_hanbit", "maple leaves in autumn").await;
    assert_eq!(student.text("#profile-email").await, "kim@hanbit.ac.kr");
    student.screenshot("dashboard").await;
    student.close().await;
}

#[tokio::test]
async fn password_reset_in_the_browser_on_a_phone() {
    let (app, sink) = app_with_smtp(Backend::Sqlite, &[]).await;
    app.create_user("lee@example.com", Some("lee")).await;
    let browser = Browser::start(
        "password_reset",
        Options {
            languages: "en-US,en",
            ..Options::default()
        },
    )
    .await;
    browser.resize(390, 844).await;

    // English from Accept-Language; nothing wider than the phone.
    browser.goto(&app.url("/login")).await;
    assert_eq!(browser.text("h1").await, "Log in");
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth";
    assert_eq!(browser.script(fits).await, serde_json::json!(true));
    browser.screenshot("login-phone").await;

    browser.click("a[href$='/forgot-password']").await;
    browser.fill("#f-email", "lee@example.com").await;
    browser.screenshot("forgot").await;
    browser.click("#submit").await;
    browser.wait_for("#notice").await;
    browser.screenshot("reset-sent").await;

    let mail = sink
        .wait_for("lee@example.com", MAIL_WAIT)
        .await
        .expect("reset mail");
    let link = link_path(&mail.text_body(), "/reset-password?");
    browser.goto(&app.url(&link)).await;
    assert_eq!(browser.value("#f-email").await, "lee@example.com");
    assert_eq!(browser.value("#f-code").await.len(), 6);
    assert_eq!(browser.script(fits).await, serde_json::json!(true));
    browser
        .fill("#f-password", "a brand new secret phrase")
        .await;
    browser
        .fill("#f-password_confirm", "a brand new secret phrase")
        .await;
    browser.screenshot("reset").await;
    browser.click("#submit").await;
    browser.wait_for("#notice").await;
    browser.screenshot("reset-done").await;

    log_in(
        &browser,
        &app,
        "lee@example.com",
        "a brand new secret phrase",
    )
    .await;
    assert_eq!(browser.script(fits).await, serde_json::json!(true));
    browser.screenshot("dashboard-phone").await;
    browser.close().await;
}

/// 4. An authenticator app is enrolled from the page (its QR code drawn by
///    the server, the key read off the page as a person would type it),
///    then logging out and in again asks for its code; step-up asks for it
///    again. Each page is checked with axe-core, some in Korean too.
#[tokio::test]
async fn second_factor_in_the_browser() {
    use totp_rs::{Algorithm, Secret, TOTP};
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("kim@example.com", Some("kim")).await;
    let browser = Browser::start(
        "second_factor",
        Options {
            languages: "en-US,en",
            ..Options::default()
        },
    )
    .await;
    log_in(&browser, &app, "kim@example.com", PASSWORD).await;
    browser.click("#mfa-link").await;
    browser.wait_for("#enrol").await;
    browser.screenshot("mfa-none").await;
    browser.click("#enrol").await;
    browser.wait_for("#secret").await;
    assert!(browser.has(".qr svg").await);
    browser.screenshot("mfa-enrol").await;
    let secret = browser.text("#secret").await;
    let code_at = |offset: i64| {
        let bytes = Secret::Encoded(secret.trim().to_owned())
            .to_bytes()
            .unwrap();
        let step = chrono::Utc::now().timestamp() / 30 + offset;
        TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes)
            .unwrap()
            .generate((step * 30) as u64)
    };
    browser.fill("#f-code", &code_at(0)).await;
    browser.click("#confirm").await;
    browser.wait_for("#recovery-codes").await;
    assert!(browser.has("#download").await);
    browser.screenshot("mfa-codes").await;

    browser.goto(&app.url("/dashboard")).await;
    browser.wait_for("#logout").await;
    browser.click("#logout").await;
    browser.goto(&app.url("/login")).await;
    browser.fill("#f-login", "kim@example.com").await;
    browser.fill("#f-password", PASSWORD).await;
    browser.click("#submit").await;
    browser.wait_for("#f-recovery_code").await;
    browser.screenshot("mfa-second-step").await;
    browser.fill("#f-code", &code_at(1)).await;
    browser.click("#submit").await;
    browser.wait_for("#profile-email").await;
    browser.screenshot("mfa-signed-in").await;

    // Step-up asks for the app's code; a wrong one is shown at its field.
    browser.goto(&app.url("/step-up?next=/dashboard/mfa")).await;
    browser.wait_for("#f-code").await;
    browser.screenshot("step-up").await;
    browser.fill("#f-code", "000000").await;
    browser.click("#submit").await;
    browser.wait_for(".field.invalid #f-code").await;
    browser.screenshot("step-up-wrong-code").await;

    // The same pages in Korean (every one is checked with axe-core).
    browser.click("#lang-ko").await;
    browser.wait_for("#lang-en").await;
    browser.goto(&app.url("/step-up?next=/dashboard/mfa")).await;
    browser.wait_for("#f-code").await;
    browser.screenshot("step-up-ko").await;
    browser.goto(&app.url("/dashboard/mfa")).await;
    browser.wait_for("#codes-left").await;
    browser.screenshot("mfa-enrolled-ko").await;
    browser.close().await;
}

/// 5. Passkeys, in Korean and in English, with Chromium's virtual
///    authenticator (a platform authenticator that verifies its user): one
///    is added on the second-factor page, the user logs out and signs in
///    with the passkey alone; then the password asks for the second step,
///    which the passkey answers. The pages are on `localhost`, the relying
///    party of a loopback server (passkeys don't work on IP addresses).
#[tokio::test]
async fn passkeys_in_the_browser() {
    // Logging out is a form post: wait for its page before going on.
    async fn log_out(browser: &Browser) {
        browser.click("#logout").await;
        let mut waited = 0;
        while browser.has("#logout").await && waited < 150 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            waited += 1;
        }
    }
    let app = spawn_app(Backend::Sqlite).await;
    let on_localhost = |path: &str| app.url(path).replacen("127.0.0.1", "localhost", 1);
    for (languages, email, name) in [
        ("ko-KR,ko", "kim@example.com", "노트북"),
        ("en-US,en", "lee@example.com", "laptop"),
    ] {
        app.create_user(email, None).await;
        let lang = &languages[..2];
        let browser = Browser::start(
            &format!("passkeys_{lang}"),
            Options {
                languages,
                ..Options::default()
            },
        )
        .await;
        let authenticator = browser.add_virtual_authenticator().await;

        browser.goto(&on_localhost("/login")).await;
        browser.wait_for("#passkey-login-submit").await;
        browser.screenshot("login").await;
        browser.fill("#f-login", email).await;
        browser.fill("#f-password", PASSWORD).await;
        browser.click("#submit").await;
        browser.wait_for("#profile-email").await;
        browser.goto(&on_localhost("/dashboard/mfa")).await;
        browser.wait_for("#passkey-add-submit").await;
        browser.screenshot("mfa-no-passkey").await;
        browser.fill("#f-name", name).await;
        browser.click("#passkey-add-submit").await;
        browser.wait_for("#passkey-list").await;
        assert!(browser.text("#passkey-list").await.contains(name));
        browser.screenshot("passkey-added").await;
        assert_eq!(browser.virtual_credentials(&authenticator).await.len(), 1);

        // Logged out, the passkey alone signs in. Logging out leads to the
        // login page, whose autofill asks for a passkey: Chromium's virtual
        // authenticator answers that by itself (a person would pick the
        // passkey from the login field's suggestions). Where a browser
        // doesn't, the button does it.
        log_out(&browser).await;
        let mut waited = 0;
        while !browser.has("#profile-email").await && waited < 50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            waited += 1;
        }
        if !browser.has("#profile-email").await {
            browser.click("#passkey-login-submit").await;
        }
        browser.wait_for("#profile-email").await;
        assert_eq!(browser.text("#profile-email").await, email);
        browser.screenshot("signed-in-with-passkey").await;

        // The password alone no longer does: the passkey is the second step.
        browser.set_user_verified(&authenticator, false).await;
        log_out(&browser).await;
        browser.wait_for("#f-password").await;
        browser.fill("#f-login", email).await;
        browser.fill("#f-password", PASSWORD).await;
        browser.click("#submit").await;
        browser.wait_for("#passkey-second-step-submit").await;
        browser.screenshot("second-step-passkey").await;
        browser.set_user_verified(&authenticator, true).await;
        browser.click("#passkey-second-step-submit").await;
        browser.wait_for("#profile-email").await;
        browser.close().await;
    }
}

/// Where the browser is once it reached `prefix` (or after 5 s).
async fn landed_at(browser: &Browser, prefix: &str) -> String {
    let mut landed = String::new();
    for _ in 0..50 {
        landed = browser.url().await;
        if landed.starts_with(prefix) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    landed
}

#[tokio::test]
async fn single_sign_on_pages_in_the_browser() {
    let app = spawn_app(Backend::Sqlite).await;
    app.create_admin("boss@example.com").await;
    let callback = "http://127.0.0.1:9/callback";
    let accounts = app.accounts.clone();
    let (partner, cli) = tokio::task::spawn_blocking(move || {
        let partner = accounts
            .register_client(accounts::NewClient {
                name: "Partner app".into(),
                redirect_uris: vec![callback.into()],
                ..Default::default()
            })
            .unwrap();
        let cli = accounts
            .register_client(accounts::NewClient {
                name: "Deploy tool".into(),
                public: true,
                ..Default::default()
            })
            .unwrap();
        (partner.client_id, cli.client_id)
    })
    .await
    .unwrap();
    let browser = Browser::start("single_sign_on", Options::default()).await;
    log_in(&browser, &app, "boss@example.com", PASSWORD).await;

    // A third-party application asks; the user allows; the browser ends up
    // at the application with a code (a page after the form goes on by
    // itself, so `form-action 'self'` does not stop the redirect).
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    browser
        .goto(&app.url(&format!(
            "/oauth/authorize?response_type=code&client_id={partner}&redirect_uri={}\
             &scope=openid%20email%20profile&state=s1&code_challenge={challenge}\
             &code_challenge_method=S256",
            "http%3A%2F%2F127.0.0.1%3A9%2Fcallback"
        )))
        .await;
    browser.wait_for("#allow").await;
    assert_eq!(browser.text("#client-name").await, "Partner app");
    browser.screenshot("consent").await;
    browser.click("#allow").await;
    let landed = landed_at(&browser, callback).await;
    assert!(
        landed.starts_with(callback) && landed.contains("code=") && landed.contains("state=s1"),
        "{landed}"
    );

    // prompt=select_account: the account chooser; going on as the user
    // signed in (the consent is remembered) lands at the application.
    browser
        .goto(&app.url(&format!(
            "/oauth/authorize?response_type=code&client_id={partner}&redirect_uri={}\
             &scope=openid%20email%20profile&state=s2&code_challenge={challenge}\
             &code_challenge_method=S256&prompt=select_account",
            "http%3A%2F%2F127.0.0.1%3A9%2Fcallback"
        )))
        .await;
    browser.wait_for("#continue").await;
    assert_eq!(browser.text("#client-name").await, "Partner app");
    browser.screenshot("choose-account").await;
    browser.click("#continue").await;
    let landed = landed_at(&browser, callback).await;
    assert!(
        landed.contains("code=") && landed.contains("state=s2"),
        "{landed}"
    );

    // The device pages: a code typed, the request confirmed.
    let device: serde_json::Value = app
        .http
        .post(app.url("/oauth/device_authorization"))
        .form(&[("client_id", cli.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    browser.goto(&app.url("/device")).await;
    browser.screenshot("device-code").await;
    browser
        .fill("#f-code", device["user_code"].as_str().unwrap())
        .await;
    browser.click("#submit").await;
    browser.wait_for("#allow").await;
    assert_eq!(browser.text("#client-name").await, "Deploy tool");
    browser.screenshot("device-confirm").await;
    browser.click("#allow").await;
    browser.wait_for("#device-outcome").await;
    browser.screenshot("device-done").await;

    // Where the user sees and withdraws what they allowed; where the
    // operator sees every client.
    browser.goto(&app.url("/dashboard")).await;
    browser.wait_for("#apps").await;
    browser.screenshot("dashboard-apps").await;
    browser.goto(&app.url("/admin/clients")).await;
    browser.wait_for("#clients").await;
    browser.screenshot("admin-clients").await;
    browser.close().await;
}
