//! `/openapi.json` and `/docs`: the document describes exactly the routes
//! the server has (native and every mounted profile, at their mounts), and
//! every route it describes answers.

mod support;

use std::collections::{BTreeSet, HashSet};

use auth_http::http::NATIVE_ROUTES;
use auth_http::http::openapi::profile_tag;
use auth_http::profiles::Profile;
use reqwest::StatusCode;
use serde_json::Value;
use storage::Backend;
use support::*;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp, native: &str) -> Value {
    let response = app
        .http
        .get(app.url(&format!("{native}/openapi.json")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    response.json().await.unwrap()
}

/// Every (METHOD, path) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &doc["paths"][path][method.to_lowercase()];
    assert!(operation.is_object(), "{method} {path} is not documented");
    operation
}

fn security_schemes(operation: &Value) -> Vec<&str> {
    operation["security"]
        .as_array()
        .map(|requirements| {
            requirements
                .iter()
                .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
                .collect()
        })
        .unwrap_or_default()
}

fn expected(native: &str, profiles: &[(Profile, &str)]) -> BTreeSet<(String, String)> {
    let native = NATIVE_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), format!("{native}{p}")));
    let profiles = profiles.iter().flat_map(|(profile, prefix)| {
        profile
            .routes()
            .iter()
            .map(move |(m, p)| ((*m).to_owned(), format!("{prefix}{p}")))
    });
    native.chain(profiles).collect()
}

fn assert_same_routes(doc: &Value, expected: &BTreeSet<(String, String)>) {
    let documented = documented(doc);
    let undocumented: Vec<_> = expected.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(expected).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes missing from /openapi.json: {undocumented:?}; documented but not routes: {unrouted:?}"
    );
}

/// Requests every documented route as documented, without credentials, and
/// checks it is routed: not 405, and not the router's not-found answer (native
/// or a profile's, each of which carries the code `not_found`). Routes that
/// refuse an anonymous caller with 401 must declare a security scheme.
async fn assert_documented_routes_answer(app: &TestApp, doc: &Value) {
    for (method, path) in documented(doc) {
        let url_path: String = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let response = app
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&url_path),
            )
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        let generic_not_found = status == StatusCode::NOT_FOUND
            && (body["code"] == "not_found" || body["error"] == "not_found");
        assert!(
            !generic_not_found && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not routed: {status} {body}"
        );
        assert!(
            !status.is_server_error(),
            "{method} {path}: {status} {body}"
        );
        if status == StatusCode::UNAUTHORIZED {
            assert!(
                !security_schemes(operation(doc, &method, &path)).is_empty(),
                "{method} {path} refuses anonymous callers but declares no security"
            );
        }
    }
}

#[tokio::test]
async fn the_document_describes_exactly_the_routes() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = document(&app, "").await;

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "auth-server");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let defaults: Vec<(Profile, String)> = Profile::ALL
        .iter()
        .map(|p| (*p, format!("/compat/{}", p.name())))
        .collect();
    let defaults: Vec<(Profile, &str)> = defaults.iter().map(|(p, m)| (*p, m.as_str())).collect();
    assert_same_routes(&doc, &expected("", &defaults));

    let mut operation_ids = HashSet::new();
    for (method, path) in documented(&doc) {
        let op = operation(&doc, &method, &path);
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} documents no response"
        );
        let id = op["operationId"].as_str().expect("an operationId");
        assert!(
            operation_ids.insert(id.to_owned()),
            "operationId {id} twice"
        );
    }

    // Each profile is its own tag, on its routes and in the tag list.
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for (profile, prefix) in &defaults {
        let tag = profile_tag(*profile);
        assert!(tags.contains(&tag.as_str()), "no tag {tag}: {tags:?}");
        for (method, path) in profile.routes() {
            let op = operation(&doc, method, &format!("{prefix}{path}"));
            assert_eq!(op["tags"], serde_json::json!([tag]), "{method} {path}");
        }
    }

    // Routes behind a bearer token or client credentials say so.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["client_basic"]["scheme"], "basic");
    let mut bearer = vec![
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/logout/all"),
        ("POST", "/api/v1/auth/password/change"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/{id}"),
    ];
    bearer.extend(
        NATIVE_ROUTES
            .iter()
            .filter(|(_, path)| path.starts_with("/api/v1/admin/"))
            .copied(),
    );
    for (method, path) in bearer {
        assert_eq!(
            security_schemes(operation(&doc, method, path)),
            ["bearer"],
            "{method} {path}"
        );
    }
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        assert_eq!(
            security_schemes(operation(&doc, "POST", path)),
            ["client_basic"]
        );
    }
    for (method, path) in [("POST", "/api/v1/auth/login"), ("GET", "/healthz")] {
        assert!(security_schemes(operation(&doc, method, path)).is_empty());
    }

    // Native errors are problem+json with the shared schema.
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    for field in ["type", "title", "status", "detail", "code", "errors"] {
        assert!(problem[field].is_object(), "Problem has no {field}");
    }
    let unauthorized = &operation(&doc, "GET", "/api/v1/auth/me")["responses"]["401"];
    assert_eq!(
        unauthorized["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );

    // Every reference points at a schema the document has.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let reference = reference.split('"').next().unwrap();
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {reference}"
        );
    }

    assert_documented_routes_answer(&app, &doc).await;
}

#[tokio::test]
async fn moved_mounts_move_the_documented_paths() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("AUTH_MOUNTS", "campus=/,native=/native,company-portal=off")],
    )
    .await;
    let doc = document(&app, "/native").await;
    let profiles: Vec<(Profile, &str)> = vec![
        (Profile::TokenValidity, "/compat/token-validity"),
        (Profile::Envelope, "/compat/envelope"),
        (Profile::Buzzbook, "/compat/buzzbook"),
        (Profile::Campus, ""),
    ];
    assert_same_routes(&doc, &expected("/native", &profiles));
    assert!(doc["paths"]["/users/login"]["post"].is_object());
    assert!(doc["paths"]["/native/api/v1/auth/login"]["post"].is_object());
    let tags = doc["tags"].to_string();
    assert!(!tags.contains("compat: company-portal"), "{tags}");
    assert_documented_routes_answer(&app, &doc).await;

    // Swagger UI follows the native mount.
    let response = app.http.get(app.url("/native/docs")).send().await.unwrap();
    assert_eq!(response.headers()["location"], "/native/docs/");
    let initializer = app
        .http
        .get(app.url("/native/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        initializer.contains("\"/native/openapi.json\""),
        "{initializer}"
    );
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(response.headers()["location"], "/docs/");

    let response = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.to_lowercase().contains("swagger"), "{html}");

    for asset in ["swagger-ui-bundle.js", "swagger-ui.css"] {
        let response = app
            .http
            .get(app.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    let initializer = app
        .http
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("\"/openapi.json\""), "{initializer}");
}

/// The document says what the server enforces, from the same constants
/// (`http::schema`, `accounts`' domain types) and the configuration, and the
/// server holds to it at the boundaries.
#[tokio::test]
async fn the_document_states_the_constraints_the_server_enforces() {
    use accounts::{EmailAddress, Password};
    use auth_http::http::schema::LOGIN_MAX_CHARS;
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("AUTH_PERMISSIONS", "docs:read,docs:write"),
            ("AUTH_API_TOKEN_MAX_DAYS", "30"),
        ],
    )
    .await;
    let doc = document(&app, "").await;
    let schemas = &doc["components"]["schemas"];
    let signup = &schemas["SignupBody"]["properties"];
    assert_eq!(signup["email"]["format"], "email");
    assert_eq!(signup["email"]["maxLength"], EmailAddress::MAX_LEN);
    assert_eq!(signup["password"]["minLength"], Password::MIN_CHARS);
    assert_eq!(signup["password"]["maxLength"], Password::MAX_CHARS);
    assert_eq!(
        schemas["LoginBody"]["properties"]["login"]["maxLength"],
        LOGIN_MAX_CHARS
    );
    assert_eq!(
        schemas["EmailCodeBody"]["properties"]["code"]["pattern"],
        "^[0-9]{6}$"
    );
    assert_eq!(
        schemas["Permission"]["enum"],
        serde_json::json!(["docs:read", "docs:write"])
    );
    assert_eq!(schemas["ApiTokenLifetimeDays"]["maximum"], 30);
    let campus_signup = &operation(&doc, "POST", "/compat/campus/users/signup")["requestBody"]["content"]
        ["application/json"]["schema"];
    let required: BTreeSet<&str> = campus_signup["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["email", "organization", "password", "username"])
    );

    // The server refuses just past each stated bound, and not at it.
    let login = |login: String| {
        app.post_json(
            "/api/v1/auth/login",
            serde_json::json!({"login": login, "password": "whatever it is"}),
        )
    };
    let (status, _) = login("가".repeat(LOGIN_MAX_CHARS)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "at the bound, in characters"
    );
    let (status, body) = login("a".repeat(LOGIN_MAX_CHARS + 1)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .post_json(
            "/api/v1/auth/signup",
            serde_json::json!({"email": "bound@example.com", "password": "x".repeat(Password::MIN_CHARS - 1)}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["code"], "too_short", "{body}");
}
