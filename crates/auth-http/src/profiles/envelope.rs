//! Profile `envelope` (seed 002): answers wrapped in `{"code": 0, "result":
//! {…}}`. Login takes `{"user","password"}` and adds `"redirect":
//! "pw/reset"` when the account must change its password. Refresh takes the
//! access token in `Authorization` (or the seed's misspelt `Athorization`)
//! — expired is fine, but it must belong to the refresh token's session —
//! and `{"refresh_token"}`. Failures keep the envelope with a non-zero code
//! from [`code_for`]. Decisions: `docs/profiles/envelope.md`.

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, parse_body};
use crate::http::auth::{no_store, profile_password_login, rotate_refresh_token};
use crate::http::error::ApiError;
use crate::state::AppState;

pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
];

/// The routes for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(login, refresh))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let at = |path| web::resource(path).default_service(web::to(not_allowed));
    cfg.service(at("/api/v1/auth/login").route(web::post().to(login)))
        .service(at("/api/v1/auth/refresh").route(web::post().to(refresh)));
}

/// Other methods on the seed's paths, in the envelope (`Allow` is added by
/// `http::finish_response`).
async fn not_allowed() -> HttpResponse {
    failure(&ApiError::method_not_allowed(), false)
}

/// The envelope's result codes (0 is success). Stable: clients switch on them.
pub fn code_for(native: &str) -> u32 {
    match native {
        "invalid_credentials" => 1001,
        "account_not_active" => 1002,
        "too_many_attempts" => 1003,
        "mfa_required" => 1004,
        "invalid_token" | "token_expired" | "token_revoked" => 2001,
        "invalid_refresh_token" => 2002,
        "refresh_token_reused" => 2003,
        "invalid_request"
        | "validation_failed"
        | "payload_too_large"
        | "unsupported_media_type" => 4000,
        "service_unavailable" => 5003,
        _ => 5000,
    }
}

fn failure(error: &ApiError, wrap_in_result: bool) -> HttpResponse {
    let body = json!({"code": code_for(error.code), "desc": error.summary(), "error": error.code});
    let body = if wrap_in_result {
        json!({ "result": body })
    } else {
        body
    };
    let mut response = HttpResponse::build(error.status);
    response.insert_header(("cache-control", "no-store"));
    if let Some(header) = error.retry_after_header() {
        response.insert_header(header);
    }
    response.json(body)
}

fn tokens_json(tokens: &accounts::IssuedTokens) -> serde_json::Map<String, Value> {
    let claims = &tokens.claims;
    serde_json::Map::from_iter([
        ("token_type".to_owned(), json!("Bearer")),
        ("access_token".to_owned(), json!(tokens.access_token)),
        (
            "access_token_expires_in".to_owned(),
            json!(claims.exp - claims.iat),
        ),
        (
            "refresh_token".to_owned(),
            json!(tokens.refresh_token.expose_secret()),
        ),
        (
            "refresh_token_expires_in".to_owned(),
            json!(tokens.refresh_expires_in),
        ),
    ])
}

/// JSON, also when labelled as a form; or a real form.
#[derive(Deserialize, utoipa::ToSchema)]
struct LoginBody {
    /// An email address or a username.
    #[schema(schema_with = crate::http::schema::login)]
    user: String,
    #[schema(schema_with = crate::http::schema::password)]
    password: SecretString,
}

/// Log in; `redirect: "pw/reset"` when the password must be changed.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    request_body = inline(LoginBody),
    responses(
        (status = 200, description = "`code` 0 and the tokens in `result`", body = inline(wire::LoginResult)),
        (status = "4XX", description = "The native status; a non-zero `code`", body = inline(wire::Failure)),
    )
)]
async fn login(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    let body: LoginBody = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return failure(&e, false),
    };
    match profile_password_login(&state, &req, "envelope", body.user, body.password).await {
        Ok(tokens) => {
            let mut answer = json!({"code": 0, "result": tokens_json(&tokens)});
            if tokens.password_change_due {
                answer["redirect"] = json!("pw/reset");
            }
            no_store(&mut HttpResponse::Ok()).json(answer)
        }
        Err(e) => failure(&e, false),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RefreshBody {
    #[schema(value_type = String)]
    refresh_token: SecretString,
}

/// The bearer token from `Authorization`, or from the seed's `Athorization`.
fn access_token(req: &HttpRequest) -> Option<String> {
    let header = req
        .headers()
        .get("authorization")
        .or_else(|| req.headers().get("athorization"))?;
    let (scheme, token) = header.to_str().ok()?.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

/// Rotate the refresh token of the session the (possibly expired) access token belongs to.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    security(("bearer" = [])),
    params(("Athorization" = Option<String>, Header, description = "The seed's misspelling, accepted in place of `Authorization`")),
    request_body = inline(RefreshBody),
    responses(
        (status = 200, description = "New tokens, with `code` 0, in `result`", body = inline(wire::RefreshResult)),
        (status = "4XX", description = "The native status; a non-zero `code` in `result`", body = inline(wire::WrappedFailure)),
    )
)]
async fn refresh(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    let body: RefreshBody = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return failure(&e, true),
    };
    let Some(access) = access_token(&req) else {
        let missing = ApiError::unauthorized(
            "invalid_token",
            "an Authorization: Bearer <access token> header is required",
        );
        return failure(&missing, true);
    };
    // Expired is expected here (that's why the client refreshes); forged,
    // foreign or revoked is not.
    let now = chrono::Utc::now().timestamp();
    let claims = match state.accounts.verifier().access_or_expired(&access, now) {
        Ok(freshness) => freshness.into_claims(),
        Err(e) => return failure(&ApiError::from(e), true),
    };
    match rotate_refresh_token(&state, &req, body.refresh_token, Some(claims.sid)).await {
        Ok(tokens) => {
            let mut result = tokens_json(&tokens);
            result.insert("code".into(), json!(0));
            result.insert("desc".into(), json!("Ok"));
            no_store(&mut HttpResponse::Ok()).json(json!({ "result": result }))
        }
        Err(e) => failure(&e, true),
    }
}

/// Paths the seed doesn't have, in the envelope.
pub async fn unmatched() -> HttpResponse {
    failure(&ApiError::not_found(), false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_distinct_per_family() {
        use super::code_for;
        assert_eq!(code_for("invalid_credentials"), 1001);
        assert_ne!(
            code_for("invalid_refresh_token"),
            code_for("refresh_token_reused")
        );
        assert_eq!(code_for("something_new"), 5000);
    }
}

/// Response schemas for `/openapi.json`; the bodies are built with `json!`.
#[allow(dead_code)]
mod wire {
    #[derive(utoipa::ToSchema)]
    pub struct Tokens {
        /// `Bearer`.
        token_type: String,
        access_token: String,
        access_token_expires_in: i64,
        refresh_token: String,
        refresh_token_expires_in: i64,
    }

    #[derive(utoipa::ToSchema)]
    pub struct LoginResult {
        /// 0.
        code: u32,
        #[schema(inline)]
        result: Tokens,
        /// `pw/reset` when the password must be changed; absent otherwise.
        redirect: Option<String>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct RefreshedTokens {
        #[serde(flatten)]
        #[schema(inline)]
        tokens: Tokens,
        /// 0.
        code: u32,
        /// `Ok`.
        desc: String,
    }

    #[derive(utoipa::ToSchema)]
    pub struct RefreshResult {
        #[schema(inline)]
        result: RefreshedTokens,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Failure {
        /// Non-zero; see `code_for` in docs/profiles/envelope.md.
        code: u32,
        desc: String,
        /// The native stable code.
        error: String,
    }

    #[derive(utoipa::ToSchema)]
    pub struct WrappedFailure {
        #[schema(inline)]
        result: Failure,
    }
}
