//! Profile `company-portal` (seed 000): login → `{token, expires}` and
//! `POST /refresh_token {token}` → `{new_token, expires}`, where `expires`
//! is ISO 8601 with milliseconds and `Z`. The seed lets users renew an
//! expired token: we accept one whose signature is ours and whose session
//! is still alive, and the renewal spends it (`Accounts::renew_access`: each
//! token renews once, expired or not). Decisions:
//! `docs/profiles/company-portal.md`.

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::json;

use super::{Body, EmailLogin, parse_body, simple_error};
use crate::http::auth::{no_store, profile_password_login};
use crate::http::error::ApiError;
use crate::http::run_blocking;
use crate::state::AppState;

pub const ROUTES: &[(&str, &str)] = &[("POST", "/api/v1/auth/login"), ("POST", "/refresh_token")];

/// The routes for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(login, refresh_token))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let at = |path| web::resource(path).default_service(web::to(super::simple_not_allowed));
    cfg.service(at("/api/v1/auth/login").route(web::post().to(login)))
        .service(at("/refresh_token").route(web::post().to(refresh_token)));
}

fn expires(exp: i64) -> String {
    chrono::DateTime::from_timestamp(exp, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Log in (email and password).
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    request_body = inline(EmailLogin),
    responses(
        (status = 200, description = "An access token; the session behind it backs renewals", body = inline(wire::Token)),
        (status = "4XX", description = "The native status; `error` is the native code", body = inline(super::wire::SimpleError)),
    )
)]
async fn login(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    let body: EmailLogin = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return simple_error(&e),
    };
    match profile_password_login(&state, &req, "company-portal", body.email, body.password).await {
        // The session's refresh token is not part of this contract; the
        // session lives on server side and backs renewals.
        Ok(tokens) => no_store(&mut HttpResponse::Ok()).json(json!({
            "token": tokens.access_token,
            "expires": expires(tokens.claims.exp),
        })),
        Err(e) => simple_error(&e),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RenewBody {
    /// The current access token; an expired one of a live session renews too.
    token: String,
}

/// Renew an access token; the presented one is revoked.
#[utoipa::path(
    post,
    path = "/refresh_token",
    request_body = inline(RenewBody),
    responses(
        (status = 200, description = "A new access token", body = inline(wire::Renewed)),
        (status = "4XX", description = "The native status; `error` is the native code", body = inline(super::wire::SimpleError)),
    )
)]
async fn refresh_token(state: web::Data<AppState>, body: Body) -> HttpResponse {
    let body: RenewBody = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return simple_error(&e),
    };
    let now = chrono::Utc::now().timestamp();
    let verified = state
        .accounts
        .verifier()
        .access_or_expired(body.token.trim(), now);
    let old = match verified {
        Ok(freshness) => freshness.into_claims(),
        Err(e) => return simple_error(&ApiError::from(e)),
    };
    let accounts = state.accounts.clone();
    let access = match run_blocking(move || accounts.renew_access(&old)).await {
        Ok(Ok(renewed)) => renewed,
        Ok(Err(accounts::AccountsError::InvalidRefreshToken)) => {
            return simple_error(&ApiError::unauthorized(
                "invalid_token",
                "the session has ended; log in again",
            ));
        }
        Ok(Err(e)) => return simple_error(&ApiError::from(e)),
        Err(e) => return simple_error(&e),
    };
    no_store(&mut HttpResponse::Ok()).json(json!({
        "new_token": access.access_token,
        "expires": expires(access.claims.exp),
    }))
}

/// Response schemas for `/openapi.json`; the bodies are built with `json!`.
#[allow(dead_code)]
mod wire {
    #[derive(utoipa::ToSchema)]
    pub struct Token {
        /// A native access token (JWT).
        token: String,
        /// ISO 8601 UTC with milliseconds, e.g. `2026-01-01T00:30:00.000Z`.
        expires: String,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Renewed {
        new_token: String,
        /// ISO 8601 UTC with milliseconds.
        expires: String,
    }
}
