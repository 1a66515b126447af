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
use crate::http::auth::{no_store, password_login, rotate_refresh_token};
use crate::http::error::ApiError;
use crate::state::AppState;

pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/auth/login", web::post().to(login))
        .route("/api/v1/auth/refresh", web::post().to(refresh));
}

/// The envelope's result codes (0 is success). Stable: clients switch on them.
pub fn code_for(native: &str) -> u32 {
    match native {
        "invalid_credentials" => 1001,
        "account_not_active" => 1002,
        "too_many_attempts" | "too_many_requests" => 1003,
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
    let body = json!({"code": code_for(error.code), "desc": error.detail, "error": error.code});
    let body = if wrap_in_result {
        json!({ "result": body })
    } else {
        body
    };
    HttpResponse::build(error.status)
        .insert_header(("cache-control", "no-store"))
        .json(body)
}

fn tokens_json(tokens: &accounts::IssuedTokens) -> serde_json::Map<String, Value> {
    let claims = &tokens.claims;
    let value = json!({
        "token_type": "Bearer",
        "access_token": tokens.access_token,
        "access_token_expires_in": claims.exp - claims.iat,
        "refresh_token": tokens.refresh_token.expose_secret(),
        "refresh_token_expires_in": tokens.refresh_expires_in,
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

#[derive(Deserialize)]
struct LoginBody {
    user: String,
    password: SecretString,
}

async fn login(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    let body: LoginBody = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return failure(&e, false),
    };
    match password_login(&state, &req, body.user, body.password).await {
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

#[derive(Deserialize)]
struct RefreshBody {
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
    let claims = match state
        .token_policy
        .verify_access_allowing_expiry(&state.keys, &access, now)
    {
        Ok(claims) => claims,
        Err(e) => return failure(&ApiError::from(e), true),
    };
    if state.revocations.is_revoked(&claims.sid, "") {
        return failure(
            &ApiError::unauthorized("token_revoked", "the session has been revoked"),
            true,
        );
    }
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
