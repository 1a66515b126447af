//! Profile `campus` (seed 004) over HTTP on both backends, with the seed's
//! own request shapes: the whole story (school list → the school's email
//! domains → code mailed over real SMTP → code checked → signup → login →
//! refresh → password-reset mail), the `{status, error_msg}` envelope with
//! Korean and English messages, status 2 for refresh-token failures, no
//! account enumeration through the reset mail, and bad bodies answered with
//! status 1, never a 5xx.

mod support;

use mailer::test_smtp::{SmtpSink, six_digit_code};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use storage::Backend;
use support::*;

const BASE: &str = "/compat/campus";

struct Answer {
    http: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn status(&self) -> i64 {
        self.body["status"].as_i64().unwrap()
    }

    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    fn error_msg(&self) -> &str {
        self.body["error_msg"].as_str().unwrap()
    }

    #[track_caller]
    fn assert_ok(&self) {
        assert_eq!(
            (self.http, self.status(), self.error_msg()),
            (StatusCode::OK, 0, ""),
            "{}",
            self.body
        );
    }

    #[track_caller]
    fn assert_failed(&self, status: i64, http: StatusCode, code: &str) {
        assert_eq!(
            (self.status(), self.http, self.code()),
            (status, http, code),
            "{}",
            self.body
        );
    }
}

/// Sends a raw body to a campus path and checks the envelope every answer
/// must have: JSON, an integer `status`, a string `error_msg`, no 5xx;
/// a failure carries a message and the native `code`.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
    language: Option<&str>,
) -> Answer {
    let mut request = app.http.request(method, app.url(&format!("{BASE}{path}")));
    if let Some((content_type, bytes)) = body {
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        request = request.body(bytes);
    }
    if let Some(language) = language {
        request = request.header("accept-language", language);
    }
    let response = request.send().await.unwrap();
    let http = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    assert!(!http.is_server_error(), "{path}: {http} {text}");
    assert_eq!(
        headers["content-type"], "application/json",
        "{path}: {text}"
    );
    assert_eq!(headers["cache-control"], "no-store");
    let body: Value = serde_json::from_str(&text).unwrap();
    let status = body["status"].as_i64().unwrap_or(-1);
    assert!(
        (0..=2).contains(&status) && body["error_msg"].is_string(),
        "{path}: {body}"
    );
    if status == 0 {
        assert_eq!(http, StatusCode::OK, "{path}: {body}");
    } else {
        assert!(http.is_client_error(), "{path}: {http} {body}");
        assert!(
            !body["error_msg"].as_str().unwrap().is_empty() && body["code"].is_string(),
            "{path}: {body}"
        );
    }
    Answer {
        http,
        headers,
        body,
    }
}

/// The seed's JSON payload, labelled as JSON.
async fn post(app: &TestApp, path: &str, body: Value) -> Answer {
    post_in(app, path, body, None).await
}

async fn post_in(app: &TestApp, path: &str, body: Value, language: Option<&str>) -> Answer {
    let bytes = body.to_string().into_bytes();
    send(
        app,
        reqwest::Method::POST,
        path,
        Some(("application/json", bytes)),
        language,
    )
    .await
}

/// JSON without a Content-Type (curl -d labels it as a form).
async fn post_unlabelled(app: &TestApp, path: &str, body: Value) -> Answer {
    let bytes = body.to_string().into_bytes();
    send(
        app,
        reqwest::Method::POST,
        path,
        Some(("application/x-www-form-urlencoded", bytes)),
        None,
    )
    .await
}

async fn create_school(app: &TestApp, name: &str, region: &str, domains: &[&str]) -> String {
    let accounts = app.accounts.clone();
    let (name, region) = (name.to_owned(), region.to_owned());
    let domains: Vec<accounts::Domain> = domains
        .iter()
        .map(|d| accounts::Domain::parse(d).unwrap())
        .collect();
    tokio::task::spawn_blocking(move || {
        accounts.create_organization(&name, Some(&region), &domains, false)
    })
    .await
    .unwrap()
    .unwrap()
    .id
}

async fn code_for(sink: &SmtpSink, to: &str) -> String {
    let mail = sink
        .wait_for(to, MAIL_WAIT)
        .await
        .unwrap_or_else(|| panic!("no mail to {to}"));
    six_digit_code(&mail.text_body()).unwrap_or_else(|| panic!("no code in: {}", mail.text_body()))
}

/// A verified, signed-up student of a fresh school; returns the school id.
async fn student(app: &TestApp, sink: &SmtpSink, username: &str, email: &str) -> String {
    let domain = email.split('@').nth(1).unwrap();
    let org = create_school(app, &format!("{domain} 대학교"), "서울", &[domain]).await;
    post(
        app,
        "/users/organization/send_auth_email",
        json!({"organization_id": org, "email": email}),
    )
    .await
    .assert_ok();
    let code = code_for(sink, email).await;
    post(
        app,
        "/users/organization/check_auth_code",
        json!({"email": email, "code": code}),
    )
    .await
    .assert_ok();
    post(
        app,
        "/users/signup",
        json!({"username": username, "password": PASSWORD, "email": email, "organization": org}),
    )
    .await
    .assert_ok();
    org
}

backend_tests!(
    seed_004_story_through_the_campus_paths,
    refresh_failures_are_status_2,
    messages_are_korean_unless_english_is_asked_for,
    organization_and_code_failures,
    reset_mail_answers_the_same_for_unknown_addresses,
    bad_bodies_are_status_1_never_5xx,
);

async fn seed_004_story_through_the_campus_paths(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    let org = create_school(&app, "서울대학교", "서울", &["snu.ac.kr", "snu.kr"]).await;

    // 가입가능학교리스트
    let list = send(
        &app,
        reqwest::Method::GET,
        "/users/organization/list",
        None,
        None,
    )
    .await;
    list.assert_ok();
    // Seed 004's tables: status int, organizations array of name/region/id strings.
    assert_seed_types(
        &list.body,
        &[
            ("/status", "int"),
            ("/error_msg", "string"),
            ("/organizations", "array"),
            ("/organizations/0/name", "string"),
            ("/organizations/0/region", "string"),
            ("/organizations/0/id", "string"),
        ],
    );
    assert_eq!(
        list.body["organizations"],
        json!([{"name": "서울대학교", "region": "서울", "id": org}]),
        "{}",
        list.body
    );

    // 인증용이메일리스트요청: the organization's email domains.
    let emails = post(&app, "/users/organization/emails", json!({"org_id": org})).await;
    emails.assert_ok();
    assert_eq!(emails.body["emails"], json!(["snu.ac.kr", "snu.kr"]));

    // 인증메일발송요청, then the code from the mail (in Korean by default).
    post(
        &app,
        "/users/organization/send_auth_email",
        json!({"organization_id": org, "email": "Kim@SNU.ac.kr"}),
    )
    .await
    .assert_ok();
    let mail = sink.wait_for("kim@snu.ac.kr", MAIL_WAIT).await.unwrap();
    assert!(
        mail.text_body().contains("서울대학교"),
        "{}",
        mail.text_body()
    );
    let code = six_digit_code(&mail.text_body()).unwrap();

    // 인증코드확인요청
    post(
        &app,
        "/users/organization/check_auth_code",
        json!({"email": "kim@snu.ac.kr", "code": code}),
    )
    .await
    .assert_ok();

    // 회원가입, with the body unlabelled as curl -d sends it.
    let signup = post_unlabelled(
        &app,
        "/users/signup",
        json!({"username": "kim", "password": PASSWORD, "email": "kim@snu.ac.kr", "organization": org}),
    )
    .await;
    signup.assert_ok();
    assert_eq!(signup.body, json!({"status": 0, "error_msg": ""}));

    // 로그인
    let login = post(
        &app,
        "/users/login",
        json!({"username": "kim", "password": PASSWORD}),
    )
    .await;
    login.assert_ok();
    assert_seed_types(
        &login.body,
        &[
            ("/status", "int"),
            ("/tokens", "dict"),
            ("/tokens/refresh", "string"),
            ("/tokens/access", "string"),
            ("/error_msg", "string"),
        ],
    );
    let access = login.body["tokens"]["access"].as_str().unwrap();
    let refresh = login.body["tokens"]["refresh"].as_str().unwrap();
    let (status, me) = app.me(access).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (me["username"].as_str(), me["organization_id"].as_str()),
        (Some("kim"), Some(org.as_str()))
    );

    // JWT토큰갱신: the same path with {refresh}; the rotated refresh token
    // comes back next to the seed's `access`.
    let renewed = post(&app, "/users/login", json!({ "refresh": refresh })).await;
    renewed.assert_ok();
    let new_access = renewed.body["access"].as_str().unwrap();
    let new_refresh = renewed.body["refresh"].as_str().unwrap();
    assert!(new_access != access && new_refresh != refresh);
    assert!(renewed.body.get("tokens").is_none(), "{}", renewed.body);
    let (status, me) = app.me(new_access).await;
    assert_eq!(
        (status, me["username"].as_str()),
        (StatusCode::OK, Some("kim"))
    );
    post(&app, "/users/login", json!({ "refresh": new_refresh }))
        .await
        .assert_ok();

    // The verification was spent by the signup.
    let again = post(
        &app,
        "/users/signup",
        json!({"username": "kim2", "password": PASSWORD, "email": "kim@snu.ac.kr", "organization": org}),
    )
    .await;
    again.assert_failed(1, StatusCode::FORBIDDEN, "email_not_verified");

    // 비밀번호리셋인증메일발송요청: a reset code arrives.
    let before = sink.count_to("kim@snu.ac.kr");
    post(
        &app,
        "/users/reset-password/send_auth_mail",
        json!({"email": "kim@snu.ac.kr"}),
    )
    .await
    .assert_ok();
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    while sink.count_to("kim@snu.ac.kr") == before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mail = sink.wait_for("kim@snu.ac.kr", MAIL_WAIT).await.unwrap();
    assert!(
        mail.text_body().contains("/reset-password?email="),
        "{}",
        mail.text_body()
    );
    assert!(six_digit_code(&mail.text_body()).is_some());

    // The profile can take the root: the seed's paths without a prefix.
    let moved = spawn_app_with(
        Backend::Sqlite,
        &[("AUTH_MOUNTS", "campus=/,native=/native")],
    )
    .await;
    let response = moved
        .http
        .get(moved.url("/users/organization/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": 0, "error_msg": "", "organizations": []})
    );
    let healthz = moved
        .http
        .get(moved.url("/native/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
}

async fn refresh_failures_are_status_2(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[("AUTH_REFRESH_REUSE_GRACE", "0")]).await;
    student(&app, &sink, "lee", "lee@kaist.ac.kr").await;

    for garbage in ["not-a-token", "", &"x".repeat(5000)] {
        let answer = post(&app, "/users/login", json!({ "refresh": garbage })).await;
        answer.assert_failed(2, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
        assert!(answer.headers.contains_key("www-authenticate"));
    }

    let login = post(
        &app,
        "/users/login",
        json!({"username": "lee", "password": PASSWORD}),
    )
    .await;
    login.assert_ok();
    let first = login.body["tokens"]["refresh"].as_str().unwrap().to_owned();
    let renewed = post(&app, "/users/login", json!({ "refresh": first })).await;
    renewed.assert_ok();
    let second = renewed.body["refresh"].as_str().unwrap().to_owned();

    // A client that ignores the new refresh token and sends the old one
    // again: reuse, the session is ended, status 2.
    let reused = post(&app, "/users/login", json!({ "refresh": first })).await;
    reused.assert_failed(2, StatusCode::UNAUTHORIZED, "refresh_token_reused");
    assert!(
        reused.error_msg().contains("다시 로그인"),
        "{}",
        reused.body
    );
    // …and the session's current token died with it.
    post(&app, "/users/login", json!({ "refresh": second }))
        .await
        .assert_failed(2, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    let (status, _) = app.me(renewed.body["access"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A wrong password is a plain failure, not a JWT one.
    post(
        &app,
        "/users/login",
        json!({"username": "lee", "password": "wrong password!"}),
    )
    .await
    .assert_failed(1, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn messages_are_korean_unless_english_is_asked_for(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    student(&app, &sink, "park", "park@postech.ac.kr").await;
    let wrong = json!({"username": "park", "password": "not the password"});

    let korean = post(&app, "/users/login", wrong.clone()).await;
    korean.assert_failed(1, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(
        korean.error_msg(),
        "아이디 또는 비밀번호가 올바르지 않습니다."
    );
    let explicit = post_in(&app, "/users/login", wrong.clone(), Some("ko-KR,ko;q=0.9")).await;
    assert_eq!(explicit.error_msg(), korean.error_msg());

    for language in ["en", "en-US,en;q=0.9,ko;q=0.8"] {
        let english = post_in(&app, "/users/login", wrong.clone(), Some(language)).await;
        english.assert_failed(1, StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert_eq!(english.error_msg(), "The username or password is wrong.");
    }

    // A language we don't have: Korean.
    let french = post_in(&app, "/users/login", wrong, Some("fr")).await;
    assert_eq!(french.error_msg(), korean.error_msg());

    // Field problems name the fields, in either language.
    let body = json!({"username": "x", "password": "short", "email": "nope", "organization": uuid::Uuid::new_v4()});
    let ko = post(&app, "/users/signup", body.clone()).await;
    ko.assert_failed(1, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        ko.error_msg(),
        "입력값이 올바르지 않습니다: email, password, username"
    );
    let en = post_in(&app, "/users/signup", body, Some("en")).await;
    assert!(
        en.error_msg()
            .starts_with("Some fields are invalid: email ")
            && en
                .error_msg()
                .contains("username must be 3 to 32 characters"),
        "{}",
        en.error_msg()
    );

    // A taken username, and a password that is long but weak.
    let org = create_school(&app, "연세대학교", "서울", &["yonsei.ac.kr"]).await;
    for email in ["a@yonsei.ac.kr", "b@yonsei.ac.kr"] {
        post(
            &app,
            "/users/organization/send_auth_email",
            json!({"organization_id": org, "email": email}),
        )
        .await
        .assert_ok();
        let code = code_for(&sink, email).await;
        post(
            &app,
            "/users/organization/check_auth_code",
            json!({"email": email, "code": code}),
        )
        .await
        .assert_ok();
    }
    let taken = post_in(
        &app,
        "/users/signup",
        json!({"username": "park", "password": PASSWORD, "email": "a@yonsei.ac.kr", "organization": org}),
        Some("en"),
    )
    .await;
    taken.assert_failed(1, StatusCode::CONFLICT, "username_taken");
    assert_eq!(taken.error_msg(), "This username is already taken.");
    let weak = post(
        &app,
        "/users/signup",
        json!({"username": "bae", "password": "password", "email": "b@yonsei.ac.kr", "organization": org}),
    )
    .await;
    weak.assert_failed(1, StatusCode::UNPROCESSABLE_ENTITY, "weak_password");
    assert!(weak.error_msg().contains("비밀번호"), "{}", weak.body);
}

async fn organization_and_code_failures(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    let org = create_school(&app, "KAIST", "대전", &["kaist.ac.kr"]).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    for id in [unknown.as_str(), "not-a-uuid", "1"] {
        post(&app, "/users/organization/emails", json!({ "org_id": id }))
            .await
            .assert_failed(1, StatusCode::NOT_FOUND, "organization_not_found");
        post(
            &app,
            "/users/organization/send_auth_email",
            json!({"organization_id": id, "email": "lee@kaist.ac.kr"}),
        )
        .await
        .assert_failed(1, StatusCode::NOT_FOUND, "organization_not_found");
    }
    let outside = post_in(
        &app,
        "/users/organization/send_auth_email",
        json!({"organization_id": org, "email": "lee@kaist.ac.kr.evil.com"}),
        Some("en"),
    )
    .await;
    outside.assert_failed(
        1,
        StatusCode::UNPROCESSABLE_ENTITY,
        "email_domain_not_allowed",
    );
    assert_eq!(
        outside.error_msg(),
        "The email address is not under one of the organization's domains."
    );

    // Signing up before the address is verified.
    post(
        &app,
        "/users/signup",
        json!({"username": "lee", "password": PASSWORD, "email": "lee@kaist.ac.kr", "organization": org}),
    )
    .await
    .assert_failed(1, StatusCode::FORBIDDEN, "email_not_verified");

    post(
        &app,
        "/users/organization/send_auth_email",
        json!({"organization_id": org, "email": "lee@kaist.ac.kr"}),
    )
    .await
    .assert_ok();
    let code = code_for(&sink, "lee@kaist.ac.kr").await;
    // Asking again at once: refused with the wait, in the message and header.
    let again = post(
        &app,
        "/users/organization/send_auth_email",
        json!({"organization_id": org, "email": "lee@kaist.ac.kr"}),
    )
    .await;
    again.assert_failed(1, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    let wait = again.headers["retry-after"].to_str().unwrap();
    assert!(
        again.error_msg().contains(&format!("{wait}초")),
        "{}",
        again.body
    );

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = post(
        &app,
        "/users/organization/check_auth_code",
        json!({"email": "lee@kaist.ac.kr", "code": wrong}),
    )
    .await;
    refused.assert_failed(1, StatusCode::BAD_REQUEST, "invalid_code");
    assert!(
        refused.error_msg().contains("인증 코드"),
        "{}",
        refused.body
    );
    // A code sent as a JSON number is read as its digits.
    let numeric: u64 = code.parse().unwrap();
    if !code.starts_with('0') {
        post(
            &app,
            "/users/organization/check_auth_code",
            json!({"email": "lee@kaist.ac.kr", "code": numeric}),
        )
        .await
        .assert_ok();
    } else {
        post(
            &app,
            "/users/organization/check_auth_code",
            json!({"email": "lee@kaist.ac.kr", "code": code}),
        )
        .await
        .assert_ok();
    }
    post(
        &app,
        "/users/signup",
        json!({"username": "lee", "password": PASSWORD, "email": "lee@kaist.ac.kr", "organization": org}),
    )
    .await
    .assert_ok();
}

async fn reset_mail_answers_the_same_for_unknown_addresses(backend: Backend) {
    let (app, sink) = app_with_smtp(backend, &[]).await;
    student(&app, &sink, "choi", "choi@korea.ac.kr").await;
    let mails_before = sink.messages().len();

    let known = post(
        &app,
        "/users/reset-password/send_auth_mail",
        json!({"email": "choi@korea.ac.kr"}),
    )
    .await;
    let unknown = post(
        &app,
        "/users/reset-password/send_auth_mail",
        json!({"email": "nobody@korea.ac.kr"}),
    )
    .await;
    known.assert_ok();
    assert_eq!(known.body, json!({"status": 0, "error_msg": ""}));
    assert_eq!((unknown.http, &unknown.body), (known.http, &known.body));
    let shape = |a: &Answer| {
        let mut names: Vec<String> = a
            .headers
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| k != "date" && k != "content-length")
            .collect();
        names.sort();
        names
    };
    assert_eq!(shape(&unknown), shape(&known));

    // Asking again at once: still the same answer (no "wait" that would
    // reveal the account), and no second mail.
    let again = post(
        &app,
        "/users/reset-password/send_auth_mail",
        json!({"email": "choi@korea.ac.kr"}),
    )
    .await;
    assert_eq!((again.http, &again.body), (known.http, &known.body));

    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    while sink.messages().len() == mails_before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let new: Vec<_> = sink.messages().into_iter().skip(mails_before).collect();
    assert_eq!(new.len(), 1, "one reset mail, to the known address only");
    assert!(new[0].to.iter().any(|t| t == "choi@korea.ac.kr"));
    assert_eq!(sink.count_to("nobody@korea.ac.kr"), 0);

    // A malformed address is a plain input error, the same for everyone.
    post(
        &app,
        "/users/reset-password/send_auth_mail",
        json!({"email": "not an address"}),
    )
    .await
    .assert_failed(1, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

async fn bad_bodies_are_status_1_never_5xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let paths = [
        "/users/login",
        "/users/signup",
        "/users/organization/emails",
        "/users/organization/send_auth_email",
        "/users/organization/check_auth_code",
        "/users/reset-password/send_auth_mail",
    ];
    let bodies: [(&str, &[u8]); 9] = [
        ("application/json", b"{oops"),
        (
            "application/json",
            b"{\"username\": 5, \"email\": [], \"org_id\": {}}",
        ),
        ("application/json", b"[1, 2, 3]"),
        ("application/json", b"null"),
        ("application/json", b"\xff\xfe{"),
        ("application/x-www-form-urlencoded", b"{\"email\": "),
        ("", b"{}"),
        ("", b""),
        ("text/plain", b"%%%=&&="),
    ];
    for path in paths {
        for (content_type, bytes) in bodies {
            let answer = send(
                &app,
                reqwest::Method::POST,
                path,
                Some((content_type, bytes.to_vec())),
                None,
            )
            .await;
            assert_eq!(answer.status(), 1, "{path} {content_type}: {}", answer.body);
            assert!(
                ["invalid_request", "validation_failed"].contains(&answer.code()),
                "{path}: {}",
                answer.body
            );
        }
        // Too large.
        let huge = format!("{{\"email\": \"{}\"}}", "a".repeat(70 * 1024));
        let answer = send(
            &app,
            reqwest::Method::POST,
            path,
            Some(("application/json", huge.into_bytes())),
            Some("en"),
        )
        .await;
        answer.assert_failed(1, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        // The wrong method.
        send(&app, reqwest::Method::GET, path, None, None)
            .await
            .assert_failed(1, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
    send(
        &app,
        reqwest::Method::POST,
        "/users/organization/list",
        None,
        None,
    )
    .await
    .assert_failed(1, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    // Missing fields are named.
    let missing = post_in(&app, "/users/login", json!({"username": "kim"}), Some("en")).await;
    missing.assert_failed(1, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        missing.error_msg(),
        "Some fields are invalid: password is required."
    );
    let empty = post(&app, "/users/organization/check_auth_code", json!({})).await;
    assert_eq!(empty.error_msg(), "입력값이 올바르지 않습니다: code, email");

    // Both bodies at once: ambiguous, refused.
    post(
        &app,
        "/users/login",
        json!({"username": "kim", "password": PASSWORD, "refresh": "x"}),
    )
    .await
    .assert_failed(1, StatusCode::BAD_REQUEST, "invalid_request");

    // A real form works too.
    app.create_user("form@example.com", Some("formuser")).await;
    let form = send(
        &app,
        reqwest::Method::POST,
        "/users/login",
        Some((
            "application/x-www-form-urlencoded",
            format!("username=formuser&password={}", PASSWORD.replace(' ', "+")).into_bytes(),
        )),
        None,
    )
    .await;
    form.assert_ok();
    assert!(form.body["tokens"]["access"].is_string());
}
