//! Hostile and broken requests: each gets a 4xx problem+json (checked by
//! `support::read`), never a 5xx, and nothing is created.

mod support;

use auth_core::{
    AccessClaims, KeyDocument, KeySet, SigningAlgorithm, SigningKey, Subject, TokenPolicy,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::json;
use storage::Backend;
use support::*;

backend_tests!(
    malformed_bodies_are_4xx,
    field_errors_name_the_field_not_the_parser,
    every_405_says_what_is_allowed,
    forged_and_broken_tokens_are_rejected
);

/// Words of serde's and the form parser's messages that must never reach a client.
const PARSER_WORDS: [&str; 6] = [
    "line 1",
    "column",
    "invalid type",
    "expected a",
    "missing field",
    "unknown variant",
];

fn assert_no_parser_text(what: &str, body: &str) {
    for word in PARSER_WORDS {
        assert!(!body.contains(word), "{what}: `{word}` in {body}");
    }
}

async fn field_errors_name_the_field_not_the_parser(backend: Backend) {
    let app = spawn_app(backend).await;
    let post = |path: &str, content_type: &str, body: &str, language: &str| {
        app.http
            .post(app.url(path))
            .header("content-type", content_type)
            .header("accept-language", language)
            .body(body.to_owned())
            .send()
    };
    // Which field, and what is wrong with it, as codes.
    let cases = [
        (
            r#"{"login": 12345, "password": "x"}"#,
            "login",
            "expected_string",
        ),
        (r#"{"password": "x"}"#, "login", "required"),
        (
            r#"{"login": "a", "password": ["x"]}"#,
            "password",
            "expected_string",
        ),
    ];
    for (body, field, code) in cases {
        let response = post("/api/v1/auth/login", "application/json", body, "ko")
            .await
            .unwrap();
        let (status, problem) = read(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert_eq!(problem["code"], "invalid_request", "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["code"], code, "{body}: {problem}");
        assert_no_parser_text(body, &problem.to_string());
    }
    // The message is in the request's language; the code is the same.
    let (_, korean) = read(
        post(
            "/api/v1/auth/login",
            "application/json",
            r#"{"password": "x"}"#,
            "ko",
        )
        .await
        .unwrap(),
    )
    .await;
    let (_, english) = read(
        post(
            "/api/v1/auth/login",
            "application/json",
            r#"{"password": "x"}"#,
            "en-US",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(korean["errors"][0]["message"], "필수 항목입니다.");
    assert_eq!(english["errors"][0]["message"], "is required");
    // Rule violations have the same shape, with the rule's code.
    let (status, problem) = read(
        post(
            "/api/v1/auth/signup",
            "application/json",
            r#"{"email": "nope", "password": "short"}"#,
            "en",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "validation_failed");
    let errors: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("email".to_owned(), "invalid_email".to_owned()),
            ("password".to_owned(), "too_short".to_owned())
        ],
        "{problem}"
    );

    // Forms, query strings and the profiles' bodies say nothing of the parser either.
    let form = post(
        "/api/v1/auth/login",
        "application/x-www-form-urlencoded",
        "password=x",
        "en",
    )
    .await
    .unwrap();
    let (status, problem) = read(form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["errors"][0]["field"], "login", "{problem}");
    assert_no_parser_text("form", &problem.to_string());
    let response = app
        .http
        .get(app.url("/api/v1/revocations?since=1&since=2"))
        .send()
        .await
        .unwrap();
    let (status, problem) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_no_parser_text("query", &problem.to_string());
    for (path, body) in [
        (
            "/compat/company-portal/api/v1/auth/login",
            r#"{"email": 5, "password": "x"}"#,
        ),
        ("/compat/campus/users/login", r#"{"username": 5}"#),
        (
            "/compat/envelope/api/v1/auth/login",
            r#"{"user": [], "password": "x"}"#,
        ),
        (
            "/compat/token-validity/api/v1/auth/login",
            r#"{"email": {}}"#,
        ),
    ] {
        let response = post(path, "application/json", body, "en").await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_no_parser_text(path, &response.text().await.unwrap());
    }
}

async fn every_405_says_what_is_allowed(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        ("TRACE", "/api/v1/auth/login", "POST"),
        ("PUT", "/api/v1/tokens", "GET, HEAD, POST"),
        ("POST", "/api/v1/admin/users/x", "GET, HEAD, PATCH"),
        ("DELETE", "/healthz", "GET, HEAD"),
        ("GET", "/compat/company-portal/refresh_token", "POST"),
        ("HEAD", "/compat/company-portal/refresh_token", "POST"),
        ("PUT", "/compat/campus/users/login", "POST"),
        ("DELETE", "/compat/envelope/api/v1/auth/login", "POST"),
        ("POST", "/compat/buzzbook/api/auth/info", "GET, HEAD"),
        ("DELETE", "/login", "GET, HEAD, POST"),
    ];
    for (method, path, allow) in cases {
        let response = app
            .http
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
    }
}

async fn malformed_bodies_are_4xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let big = "a".repeat(1024 * 1024);
    let cases: Vec<(&str, Option<&str>, String, StatusCode, &str)> = vec![
        (
            "/api/v1/auth/login",
            Some("application/json"),
            "{not json".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/auth/login",
            Some("application/json"),
            r#"{"login": 5, "password": []}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/auth/login",
            Some("application/json"),
            r#"{"login": "a@b.com"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/auth/login",
            Some("application/json"),
            "".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/auth/login",
            Some("application/json"),
            "[]".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/auth/login",
            Some("application/json"),
            format!(r#"{{"login":"{big}","password":"x"}}"#),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "/api/v1/auth/login",
            Some("application/x-www-form-urlencoded"),
            format!("login={big}&password=x"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "/api/v1/auth/login",
            Some("text/plain"),
            r#"{"login":"a","password":"b"}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/api/v1/auth/login",
            None,
            r#"{"login":"a","password":"b"}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/api/v1/auth/login",
            Some("application/x-www-form-urlencoded"),
            "login=abc".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/auth/login",
            Some("application/json"),
            format!(r#"{{"login":"{}","password":"x"}}"#, "b".repeat(400)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/api/v1/auth/refresh",
            Some("application/json"),
            r#"{"refresh_token": null}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/auth/refresh",
            Some("application/json"),
            r#"{"refresh_token": "nope"}"#.into(),
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
        ),
        (
            "/api/v1/auth/refresh",
            Some("application/json"),
            // Not ours, whatever its shape: clients log in again.
            format!(r#"{{"refresh_token":"{}"}}"#, "r".repeat(5000)),
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
        ),
        (
            "/api/v1/auth/nowhere",
            Some("application/json"),
            "{}".into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (path, content_type, body, expected, code) in cases {
        let mut request = app.http.post(app.url(path)).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, problem) = read(request.send().await.unwrap()).await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!(
            status, expected,
            "{path} {content_type:?} {shown}: {problem}"
        );
        assert_eq!(problem["code"], code, "{path} {shown}: {problem}");
    }
    let (status, problem) = read(
        app.http
            .get(app.url("/api/v1/auth/login"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

fn raw_token(header: serde_json::Value, claims: &AccessClaims, signature: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
}

async fn forged_and_broken_tokens_are_rejected(backend: Backend) {
    let app = spawn_app(backend).await;
    let user_id = app.create_user("forge@example.com", None).await;
    let session = app.login("forge@example.com").await;
    let real_token = session["access_token"].as_str().unwrap();
    assert_eq!(app.me(real_token).await.0, StatusCode::OK);

    // The server's own key, read from its key folder, to mint tokens that are
    // correctly signed but wrong in one claim each.
    let window = app.settings.access_ttl_secs + app.settings.leeway_secs;
    let keys = accounts::keys::KeyDir::new(&app.settings.keys_dir)
        .load_or_create(
            SigningAlgorithm::EdDSA,
            chrono::Utc::now().timestamp(),
            window,
        )
        .unwrap();
    let kid = keys.active_kid().to_owned();
    let policy = TokenPolicy {
        issuer: app.settings.issuer.clone(),
        audience: app.settings.audience.clone(),
        ..TokenPolicy::default()
    };
    let now = chrono::Utc::now().timestamp();
    let claims = policy.access_claims(
        Subject {
            user_id: user_id.clone(),
            session_id: session["session_id"].as_str().unwrap().to_owned(),
            ..Subject::default()
        },
        now,
    );
    let sign = |claims: &AccessClaims, typ: &str| keys.sign(typ, claims).unwrap();
    assert_eq!(
        app.me(&sign(&claims, "at+jwt")).await.0,
        StatusCode::OK,
        "control token must pass"
    );

    let expired = AccessClaims {
        iat: now - 4000,
        nbf: now - 4000,
        exp: now - 100,
        ..claims.clone()
    };
    let future = AccessClaims {
        nbf: now + 600,
        ..claims.clone()
    };
    let wrong_aud = AccessClaims {
        aud: "someone-else".into(),
        ..claims.clone()
    };
    let wrong_iss = AccessClaims {
        iss: "http://evil.test".into(),
        ..claims.clone()
    };

    // Another key under our kid; HS256 keyed with our public key (algorithm confusion).
    let impostor = KeySet::new(
        SigningKey::generate(SigningAlgorithm::EdDSA, kid.clone()).unwrap(),
        vec![],
    )
    .unwrap();
    let public_x = keys.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
    let hs_with_public = KeySet::new(
        SigningKey::from_document(&KeyDocument {
            kid: kid.clone(),
            alg: SigningAlgorithm::HS256,
            created_at: 0,
            retired_at: None,
            alternate: false,
            private_key: public_x.clone(),
        })
        .unwrap(),
        vec![],
    )
    .unwrap();
    let unknown_kid = KeySet::new(
        SigningKey::generate(SigningAlgorithm::EdDSA, "nobody".into()).unwrap(),
        vec![],
    )
    .unwrap();
    let mut tampered = sign(&claims, "at+jwt");
    let payload_with_admin = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&AccessClaims {
            roles: vec!["admin".into()],
            ..claims.clone()
        })
        .unwrap(),
    );
    let parts: Vec<&str> = tampered.split('.').collect();
    tampered = format!("{}.{payload_with_admin}.{}", parts[0], parts[2]);

    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", sign(&expired, "at+jwt"), "token_expired"),
        ("not yet valid", sign(&future, "at+jwt"), "invalid_token"),
        (
            "wrong audience",
            sign(&wrong_aud, "at+jwt"),
            "invalid_token",
        ),
        ("wrong issuer", sign(&wrong_iss, "at+jwt"), "invalid_token"),
        ("wrong typ", sign(&claims, "JWT"), "invalid_token"),
        (
            "other key, same kid",
            impostor.sign("at+jwt", &claims).unwrap(),
            "invalid_token",
        ),
        (
            "HS256 with our public key",
            hs_with_public.sign("at+jwt", &claims).unwrap(),
            "invalid_token",
        ),
        (
            "unknown kid",
            unknown_kid.sign("at+jwt", &claims).unwrap(),
            "invalid_token",
        ),
        (
            "alg none",
            raw_token(
                json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
                &claims,
                b"",
            ),
            "invalid_token",
        ),
        (
            "embedded jwk",
            {
                let t = impostor.sign("at+jwt", &claims).unwrap();
                let jwk = impostor.jwks()["keys"][0].clone();
                let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jwk": jwk, "jku": "http://evil.test/jwks"});
                let parts: Vec<&str> = t.split('.').collect();
                format!(
                    "{}.{}.{}",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    parts[1],
                    parts[2]
                )
            },
            "invalid_token",
        ),
        ("tampered payload", tampered, "invalid_token"),
        ("garbage", "not.a.token".into(), "invalid_token"),
        ("two parts", "abc.def".into(), "invalid_token"),
        ("huge", "x".repeat(20_000), "invalid_token"),
    ];
    for (name, token, code) in cases {
        let (status, body) = app.me(&token).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(code)),
            "{name}: {body}"
        );
    }

    for header in [
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "bearer",
        "Token abc",
        "Bearer a b c",
    ] {
        let response = app
            .http
            .get(app.url("/api/v1/auth/me"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("www-authenticate"));
        let (status, body) = read(response).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token")),
            "{header:?}"
        );
    }
    let non_utf8 = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
    let response = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .header("authorization", non_utf8)
        .send()
        .await
        .unwrap();
    assert_eq!(read(response).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = read(
        app.http
            .get(app.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.post_bearer("/api/v1/auth/logout", "garbage").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The real session survived all of it.
    assert_eq!(app.me(real_token).await.0, StatusCode::OK);
}
