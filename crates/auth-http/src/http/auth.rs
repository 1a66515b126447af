//! `/api/v1/auth/*`: login, refresh, logout, me.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use accounts::IssuedTokens;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, PRAGMA};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Problem};
use super::extract::{
    Bearer, Enrolling, JsonOrForm, Principal, audit_context, authenticate_any, client_info,
};
use super::schema;
use crate::http::run_blocking;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    /// An email address or a username (also accepted as `email` or `username`).
    #[serde(alias = "email", alias = "username")]
    #[schema(schema_with = schema::login)]
    login: String,
    #[schema(schema_with = schema::password)]
    password: SecretString,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    /// Any other value (whatever its shape) is `invalid_refresh_token`.
    #[schema(value_type = String)]
    refresh_token: SecretString,
}

/// Login, refresh and activation answer with a new session's tokens.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TokenResponse)]
pub(crate) struct TokenResponse<'a> {
    /// Always `Bearer`.
    token_type: &'static str,
    /// A JWT (`typ: at+jwt`).
    access_token: &'a str,
    /// Seconds until the access token expires.
    expires_in: i64,
    /// Opaque; each refresh spends it and returns a new one.
    refresh_token: &'a str,
    /// Seconds the refresh token stays valid unused.
    refresh_expires_in: i64,
    /// When the access token expires, RFC 3339 UTC.
    expires_at: String,
    session_id: &'a str,
}

fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Responses carrying secrets must never be cached by anything in between.
pub fn no_store(
    builder: &mut actix_web::HttpResponseBuilder,
) -> &mut actix_web::HttpResponseBuilder {
    builder
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((PRAGMA, HeaderValue::from_static("no-cache")))
}

pub fn token_response(tokens: &IssuedTokens) -> HttpResponse {
    let claims = &tokens.claims;
    no_store(&mut HttpResponse::Ok()).json(TokenResponse {
        token_type: "Bearer",
        access_token: &tokens.access_token,
        expires_in: claims.exp - claims.iat,
        refresh_token: tokens.refresh_token.expose_secret(),
        refresh_expires_in: tokens.refresh_expires_in,
        expires_at: rfc3339(claims.exp),
        session_id: &claims.sid,
    })
}

fn limit_field(value: &str, field: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.chars().count() > max_chars {
        return Err(ApiError::validation(field, "is too long"));
    }
    Ok(())
}

/// Log in with an email address or username and a password.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body(content(
        (LoginBody = "application/json"),
        (LoginBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "A new session", body = TokenResponse),
        (status = 401, description = "`invalid_credentials` (the same for an unknown login and a wrong password); `mfa_required` for an account with a second factor, with extension members `mfa_token` (opaque, single use, 5 min) and `methods` (`totp`, `recovery_code`): finish at POST /api/v1/auth/mfa/verify", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_not_active`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (a field is too long)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`: too many failed logins for this login name or from this address lately", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let tokens = password_login(&state, &req, body.login, body.password).await?;
    Ok(token_response(&tokens))
}

/// Email-or-username login, shared by the native API and the profiles.
/// A user with a second factor gets `mfa_required`.
pub async fn password_login(
    state: &AppState,
    req: &HttpRequest,
    login: String,
    password: SecretString,
) -> Result<IssuedTokens, ApiError> {
    login_with(state, req, login, password, true).await
}

/// A profile's login: like [`password_login`], except that a profile the
/// operator listed in `compat_password_only` logs users with a second
/// factor in with the password alone (its contract has no second step);
/// other profiles refuse them with `mfa_required` in their own shape.
pub async fn profile_password_login(
    state: &AppState,
    req: &HttpRequest,
    profile: &str,
    login: String,
    password: SecretString,
) -> Result<IssuedTokens, ApiError> {
    let second_step = !state.compat_password_only.iter().any(|p| p == profile);
    // A profile has no second step: its clients get no `mfa_token` (one
    // they couldn't use) but where to go instead.
    login_with(state, req, login, password, second_step)
        .await
        .map_err(|e| {
            if e.code == "mfa_required" {
                ApiError::unauthorized(
                    "mfa_required",
                    "this account signs in with a second factor, which this service's login \
                     can't ask for: sign in through the native API (POST /api/v1/auth/login, \
                     then /api/v1/auth/mfa/verify) or a passkey",
                )
            } else {
                e
            }
        })
}

async fn login_with(
    state: &AppState,
    req: &HttpRequest,
    login: String,
    password: SecretString,
    second_step: bool,
) -> Result<IssuedTokens, ApiError> {
    limit_field(&login, "login", schema::LOGIN_MAX_CHARS)?;
    limit_field(
        password.expose_secret(),
        "password",
        schema::PASSWORD_MAX_CHARS,
    )?;
    let client = client_info(req);
    let accounts = state.accounts.clone();
    let outcome = run_blocking(move || {
        if second_step {
            accounts.login(&login, &password, &client)
        } else {
            accounts.login_password_only(&login, &password, &client)
        }
    })
    .await?;
    state.metrics.record_login(match &outcome {
        Ok(_) => "success",
        Err(accounts::AccountsError::InvalidCredentials) => "invalid_credentials",
        Err(accounts::AccountsError::Throttled { .. }) => "throttled",
        Err(accounts::AccountsError::MfaRequired(_)) => "mfa_required",
        Err(_) => "not_active",
    });
    match outcome {
        Ok(tokens) => {
            tracing::info!(user_id = %tokens.claims.sub, session_id = %tokens.claims.sid, "login");
            Ok(tokens)
        }
        Err(e) => {
            tracing::info!(reason = %e, "login refused");
            Err(e.into())
        }
    }
}

/// Rotate a refresh token: the presented one is spent, a new pair returned.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body(content(
        (RefreshBody = "application/json"),
        (RefreshBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "New tokens for the same session", body = TokenResponse),
        (status = 401, description = "`invalid_refresh_token`; `refresh_token_reused` (the whole session is revoked)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let tokens = rotate_refresh_token(&state, &req, body.refresh_token, None).await?;
    Ok(token_response(&tokens))
}

/// Refresh-token rotation, shared by the native API and the profiles. With
/// `session_id`, the token must belong to that session (else nothing is
/// spent).
pub async fn rotate_refresh_token(
    state: &AppState,
    req: &HttpRequest,
    refresh_token: SecretString,
    session_id: Option<String>,
) -> Result<IssuedTokens, ApiError> {
    // Whatever its shape, a token that is not one of ours is just invalid:
    // clients take that answer as "log in again".
    if refresh_token.expose_secret().len() > schema::OPAQUE_TOKEN_MAX_BYTES {
        return Err(accounts::AccountsError::InvalidRefreshToken.into());
    }
    let client = client_info(req);
    let outcome = state
        .accounts
        .refresh_in_session_async(&refresh_token, session_id.as_deref(), &client)
        .await;
    match outcome {
        Ok(tokens) => Ok(tokens),
        Err(accounts::AccountsError::RefreshTokenReused(revoked)) => {
            state.metrics.record_refresh_reuse();
            if let Some(r) = revoked {
                tracing::warn!(session_id = %r.session_id, "refresh token reused; session revoked");
            }
            Err(accounts::AccountsError::RefreshTokenReused(None).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// End the current session: its refresh token and access tokens stop working at once.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is revoked"),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token, not a login session", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    Enrolling(claims): Enrolling,
) -> Result<HttpResponse, ApiError> {
    let accounts = state.accounts.clone();
    let (user_id, sid) = (claims.sub.clone(), claims.sid.clone());
    let context = audit_context(&req, Some(&claims.sub));
    run_blocking(move || accounts.logout(&user_id, &sid, &context)).await??;
    tracing::info!(user_id = %claims.sub, session_id = %claims.sid, "logout");
    Ok(HttpResponse::NoContent().finish())
}

/// End every session of the user.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout/all",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session of the user is revoked"),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token, not a login session", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn logout_all(
    state: web::Data<AppState>,
    req: HttpRequest,
    Bearer(claims): Bearer,
) -> Result<HttpResponse, ApiError> {
    let accounts = state.accounts.clone();
    let user_id = claims.sub.clone();
    let context = audit_context(&req, Some(&claims.sub));
    run_blocking(move || accounts.logout_all(&user_id, &context)).await??;
    tracing::info!(user_id = %claims.sub, "logout from all sessions");
    Ok(HttpResponse::NoContent().finish())
}

/// Who the access token speaks for.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Me)]
pub(crate) struct Me<'a> {
    user_id: &'a str,
    email: Option<&'a str>,
    username: Option<&'a str>,
    name: Option<&'a str>,
    organization_id: Option<&'a str>,
    roles: &'a [String],
    permissions: &'a [String],
    session_id: &'a str,
    expires_at: String,
    /// How the user authenticated (RFC 8176: `pwd`, `otp`, `mfa`, …).
    amr: &'a [String],
    /// When the user last authenticated interactively (unix seconds).
    auth_time: Option<i64>,
}

/// Who the token speaks for, answered from the verified token alone.
///
/// Works with a personal API token too: then there is no session and no
/// roles, only the permissions chosen for the token, and `token_id`.
#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = super::openapi::bodies::MeResponse),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // Also for a user who must still enrol a second factor.
    let principal = authenticate_any(&req)?;
    Ok(no_store(&mut HttpResponse::Ok())
        .insert_header(actix_web::http::header::ContentType::json())
        .body(rendered_me(&principal)?))
}

/// Most `/me` answers a worker thread keeps (then it starts over).
const RENDERED_ME: usize = 256;

/// The `/me` answer for `principal`. It is read from the verified token
/// alone, so it never changes for a token: each worker thread keeps the
/// bytes it rendered for the principals it saw (the token cache hands out
/// the same `Arc` for every request with one token), and a warm `/me` does
/// not serialize again (≈ 7 % of its throughput). Keyed by the principal's
/// address, with a `Weak` that keeps the address from being reused while
/// the entry lives.
fn rendered_me(principal: &Arc<Principal>) -> Result<web::Bytes, ApiError> {
    type Rendered = HashMap<*const Principal, (Weak<Principal>, web::Bytes)>;
    thread_local! {
        static RENDERED: RefCell<Rendered> = RefCell::new(HashMap::new());
    }
    let key = Arc::as_ptr(principal);
    if let Some(body) = RENDERED.with(|r| r.borrow().get(&key).map(|(_, body)| body.clone())) {
        return Ok(body);
    }
    let body = web::Bytes::from(render_me(principal).map_err(|_| ApiError::internal())?);
    RENDERED.with(|r| {
        let mut rendered = r.borrow_mut();
        if rendered.len() >= RENDERED_ME {
            rendered.clear();
        }
        rendered.insert(key, (Arc::downgrade(principal), body.clone()));
    });
    Ok(body)
}

fn render_me(principal: &Principal) -> serde_json::Result<Vec<u8>> {
    match principal {
        Principal::Session(claims) => serde_json::to_vec(&Me {
            user_id: &claims.sub,
            email: claims.email.as_deref(),
            username: claims.preferred_username.as_deref(),
            name: claims.name.as_deref(),
            organization_id: claims.org.as_deref(),
            roles: &claims.roles,
            permissions: &claims.perms,
            session_id: &claims.sid,
            expires_at: rfc3339(claims.exp),
            amr: &claims.amr,
            auth_time: claims.auth_time,
        }),
        Principal::ApiToken(token) => serde_json::to_vec(&serde_json::json!({
            "user_id": token.sub,
            "organization_id": token.org,
            "roles": [],
            "permissions": token.perms,
            "session_id": null,
            "token_id": token.jti,
            "expires_at": rfc3339(token.exp),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::ApiTokenClaims;

    fn principal(sub: &str) -> Arc<Principal> {
        Arc::new(Principal::ApiToken(ApiTokenClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: sub.into(),
            iat: 0,
            nbf: 0,
            exp: 1_800_000_000,
            jti: format!("jti-{sub}"),
            org: None,
            perms: vec!["audit".into()],
        }))
    }

    fn user_id(body: &web::Bytes) -> String {
        serde_json::from_slice::<serde_json::Value>(body).unwrap()["user_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_rendered_me_belongs_to_its_principal_only() {
        let alice = principal("alice");
        let first = rendered_me(&alice).unwrap();
        let again = rendered_me(&alice).unwrap();
        // The same bytes, not rendered twice.
        assert_eq!(first.as_ptr(), again.as_ptr());
        assert_eq!(user_id(&first), "alice");
        // Principals that come and go never get another's answer, even when
        // one is dropped and the next is allocated in its place.
        for n in 0..2 * RENDERED_ME {
            let name = format!("user-{n}");
            let other = principal(&name);
            assert_eq!(user_id(&rendered_me(&other).unwrap()), name);
        }
        assert_eq!(user_id(&rendered_me(&alice).unwrap()), "alice");
    }
}
