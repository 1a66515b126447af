//! Profile `token-validity` (seed 001): login → `{token, refreshToken}`,
//! `checkTokenValidity` → `{token, valid-until}` in the seed's
//! `YYYY-MM-DD HH:MM:SS` (in `compat_time_zone`, UTC by default), and
//! `tokenRefresh` with rotation and reuse detection. Decisions:
//! `docs/profiles/token-validity.md`.

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::{Body, EmailLogin, parse_body, simple_error};
use crate::http::auth::{no_store, profile_password_login, rotate_refresh_token};
use crate::http::error::ApiError;
use crate::state::AppState;

pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/checkTokenValidity"),
    ("POST", "/api/v1/auth/tokenRefresh"),
];

/// The routes for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(login, check_token_validity, token_refresh))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let at = |path| web::resource(path).default_service(web::to(super::simple_not_allowed));
    cfg.service(at("/api/v1/auth/login").route(web::post().to(login)))
        .service(at("/api/v1/auth/checkTokenValidity").route(web::post().to(check_token_validity)))
        .service(at("/api/v1/auth/tokenRefresh").route(web::post().to(token_refresh)));
}

/// Log in (email and password).
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    request_body = inline(EmailLogin),
    responses(
        (status = 200, description = "An access and a refresh token", body = inline(wire::Tokens)),
        (status = "4XX", description = "The native status; `error` is the native code", body = inline(super::wire::SimpleError)),
    )
)]
async fn login(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    let body: EmailLogin = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return simple_error(&e),
    };
    match profile_password_login(&state, &req, "token-validity", body.email, body.password).await {
        Ok(tokens) => no_store(&mut HttpResponse::Ok()).json(json!({
            "token": tokens.access_token,
            "refreshToken": tokens.refresh_token.expose_secret(),
        })),
        Err(e) => simple_error(&e),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct TokenBody {
    /// An access token.
    token: String,
}

/// Check an access token and say until when it is valid.
#[utoipa::path(
    post,
    path = "/api/v1/auth/checkTokenValidity",
    request_body = inline(TokenBody),
    responses(
        (status = 200, description = "The token is valid", body = inline(wire::Validity)),
        (status = "4XX", description = "The native status; `error` is the native code", body = inline(super::wire::SimpleError)),
    )
)]
async fn check_token_validity(state: web::Data<AppState>, body: Body) -> HttpResponse {
    let body: TokenBody = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return simple_error(&e),
    };
    let now = chrono::Utc::now().timestamp();
    let claims = match state.accounts.verifier().access(body.token.trim(), now) {
        Ok(claims) => claims,
        Err(e) => return simple_error(&ApiError::from(e)),
    };
    let valid_until = chrono::DateTime::from_timestamp(claims.exp, 0)
        .unwrap_or_default()
        .with_timezone(&state.compat_time_zone)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    no_store(&mut HttpResponse::Ok())
        .json(json!({ "token": body.token.trim(), "valid-until": valid_until }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RefreshBody {
    #[serde(rename = "refreshToken")]
    #[schema(value_type = String)]
    refresh_token: SecretString,
}

/// Rotate the refresh token (a reused one revokes the session).
#[utoipa::path(
    post,
    path = "/api/v1/auth/tokenRefresh",
    request_body = inline(RefreshBody),
    responses(
        (status = 200, description = "New tokens", body = inline(wire::Tokens)),
        (status = "4XX", description = "The native status; `error` is the native code", body = inline(super::wire::SimpleError)),
    )
)]
async fn token_refresh(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    let body: RefreshBody = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return simple_error(&e),
    };
    match rotate_refresh_token(&state, &req, body.refresh_token, None).await {
        Ok(tokens) => no_store(&mut HttpResponse::Ok()).json(json!({
            "token": tokens.access_token,
            "refreshToken": tokens.refresh_token.expose_secret(),
        })),
        Err(e) => simple_error(&e),
    }
}

/// Response schemas for `/openapi.json`; the bodies are built with `json!`.
#[allow(dead_code)]
mod wire {
    #[derive(utoipa::ToSchema)]
    pub struct Tokens {
        /// A native access token (JWT).
        token: String,
        #[schema(rename = "refreshToken")]
        refresh_token: String,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Validity {
        token: String,
        /// `YYYY-MM-DD HH:MM:SS` in the deployment's `compat_time_zone`.
        #[schema(rename = "valid-until")]
        valid_until: String,
    }
}
