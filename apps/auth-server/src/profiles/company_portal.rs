//! Profile `company-portal` (seed 000): login → `{token, expires}` and
//! `POST /refresh_token {token}` → `{new_token, expires}`, where `expires`
//! is ISO 8601 with milliseconds and `Z`. The seed lets users renew an
//! expired token: we accept one whose signature is ours and whose session
//! is still alive, and the renewal revokes it. Decisions:
//! `docs/profiles/company-portal.md`.

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use chrono::SecondsFormat;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::{Body, parse_body, simple_error};
use crate::blocking::run_blocking;
use crate::http::auth::{no_store, password_login};
use crate::http::error::ApiError;
use crate::state::AppState;

pub const ROUTES: &[(&str, &str)] = &[("POST", "/api/v1/auth/login"), ("POST", "/refresh_token")];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/auth/login", web::post().to(login))
        .route("/refresh_token", web::post().to(refresh_token));
}

fn expires(exp: i64) -> String {
    chrono::DateTime::from_timestamp(exp, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
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
        // The session's refresh token is not part of this contract; the
        // session lives on server side and backs renewals.
        Ok(tokens) => no_store(&mut HttpResponse::Ok()).json(json!({
            "token": tokens.access_token,
            "expires": expires(tokens.claims.exp),
        })),
        Err(e) => simple_error(&e),
    }
}

#[derive(Deserialize)]
struct RenewBody {
    token: String,
}

async fn refresh_token(state: web::Data<AppState>, body: Body) -> HttpResponse {
    let body: RenewBody = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return simple_error(&e),
    };
    let now = chrono::Utc::now().timestamp();
    let old =
        match state
            .token_policy
            .verify_access_allowing_expiry(&state.keys, body.token.trim(), now)
        {
            Ok(claims) => claims,
            Err(e) => return simple_error(&ApiError::from(e)),
        };
    // A token renewed (or logged out) once can't be renewed again.
    if state.revocations.is_revoked(&old.sid, &old.jti) {
        return simple_error(&ApiError::unauthorized(
            "token_revoked",
            "the token has been revoked",
        ));
    }
    let accounts = state.accounts.clone();
    let renewed = match run_blocking(move || accounts.renew_access(&old)).await {
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
    let (access, revoked) = renewed;
    if let Some(revoked) = revoked {
        state.revocations.revoke_token(revoked.jti, revoked.until);
    }
    no_store(&mut HttpResponse::Ok()).json(json!({
        "new_token": access.access_token,
        "expires": expires(access.claims.exp),
    }))
}
