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

use super::{Body, parse_body, simple_error};
use crate::http::auth::{no_store, password_login, rotate_refresh_token};
use crate::http::error::ApiError;
use crate::state::AppState;

pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/checkTokenValidity"),
    ("POST", "/api/v1/auth/tokenRefresh"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/auth/login", web::post().to(login))
        .route(
            "/api/v1/auth/checkTokenValidity",
            web::post().to(check_token_validity),
        )
        .route("/api/v1/auth/tokenRefresh", web::post().to(token_refresh));
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: SecretString,
}

async fn login(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    let body: LoginBody = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return simple_error(&e),
    };
    match password_login(&state, &req, body.email, body.password).await {
        Ok(tokens) => no_store(&mut HttpResponse::Ok()).json(json!({
            "token": tokens.access_token,
            "refreshToken": tokens.refresh_token.expose_secret(),
        })),
        Err(e) => simple_error(&e),
    }
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
}

async fn check_token_validity(state: web::Data<AppState>, body: Body) -> HttpResponse {
    let body: TokenBody = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return simple_error(&e),
    };
    let now = chrono::Utc::now().timestamp();
    let claims = match state
        .token_policy
        .verify_access(&state.keys, body.token.trim(), now)
    {
        Ok(claims) => claims,
        Err(e) => return simple_error(&ApiError::from(e)),
    };
    if state.revocations.is_revoked(&claims.sid, &claims.jti) {
        return simple_error(&ApiError::unauthorized(
            "token_revoked",
            "the token has been revoked",
        ));
    }
    let valid_until = chrono::DateTime::from_timestamp(claims.exp, 0)
        .unwrap_or_default()
        .with_timezone(&state.compat_time_zone)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    no_store(&mut HttpResponse::Ok())
        .json(json!({ "token": body.token.trim(), "valid-until": valid_until }))
}

#[derive(Deserialize)]
struct RefreshBody {
    #[serde(rename = "refreshToken")]
    refresh_token: SecretString,
}

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
