//! Profile `buzzbook` (seed 003). Another backend has already authenticated
//! the user and asks us, as a registered client (HTTP Basic), for tokens:
//! `POST /api/auth/token {loginId, role, userId}` answers with the tokens in
//! the `Authorization` and `Refresh-Token` response headers. Both are JWTs
//! with the seed's claims (`user_id`, `iat`, `exp`, `sub` = `access_token` /
//! `refresh_token`) plus ours (`iss`, `aud`, `jti`, `sid`, and the client's
//! `loginId`/`role`/`userId` so `/info` needs no database read). The refresh
//! JWT is a signed envelope around the native opaque refresh token: rotation,
//! reuse detection and revocation are the native ones. Decisions:
//! `docs/profiles/buzzbook.md`.

use accounts::{AuthenticatedClient, VouchedUser};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Body, parse_body};
use crate::blocking::run_blocking;
use crate::http::auth::rotate_refresh_token;
use crate::http::error::ApiError;
use crate::state::AppState;

pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/auth/token"),
    ("GET", "/api/auth/logout"),
    ("GET", "/api/auth/info"),
];

/// The routes for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(token, logout, info))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Other methods answer 405 in the seed's shape (`Allow` is added by
    // `http::finish_responses`); preflights are answered on every path.
    let at = |path| {
        web::resource(path)
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight))
            .default_service(web::to(not_allowed))
    };
    cfg.service(at("/api/auth/token").route(web::post().to(token)))
        .service(at("/api/auth/logout").route(web::get().to(logout)))
        .service(at("/api/auth/info").route(web::get().to(info)))
        .route(
            "/api/auth/{any:.*}",
            web::method(actix_web::http::Method::OPTIONS).to(preflight),
        );
}

/// `typ` of this profile's tokens: the plain JWT of the seed, so they can
/// never pass as native access tokens (`at+jwt`) or API tokens.
const TYP: &str = "JWT";
const ACCESS: &str = "access_token";
const REFRESH: &str = "refresh_token";

#[derive(Serialize, Deserialize, Clone, Debug)]
struct BuzzClaims {
    /// Our user id (UUID v4), stable per client `userId`.
    user_id: String,
    iat: i64,
    exp: i64,
    /// `access_token` or `refresh_token`.
    sub: String,
    iss: String,
    aud: String,
    jti: String,
    sid: String,
    #[serde(rename = "userId")]
    external_id: String,
    #[serde(rename = "loginId")]
    login_id: String,
    role: String,
    /// Refresh JWTs only: the native refresh token inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rt: Option<String>,
}

struct Issued {
    access: String,
    refresh: String,
    access_claims: BuzzClaims,
}

fn issue(
    state: &AppState,
    tokens: &accounts::IssuedTokens,
    external_id: &str,
    login_id: &str,
    role: &str,
) -> Result<Issued, ApiError> {
    let native = &tokens.claims;
    let access_claims = BuzzClaims {
        user_id: native.sub.clone(),
        iat: native.iat,
        exp: native.exp,
        sub: ACCESS.to_owned(),
        iss: native.iss.clone(),
        aud: native.aud.clone(),
        jti: native.jti.clone(),
        sid: native.sid.clone(),
        external_id: external_id.to_owned(),
        login_id: login_id.to_owned(),
        role: role.to_owned(),
        rt: None,
    };
    let refresh_claims = BuzzClaims {
        sub: REFRESH.to_owned(),
        exp: native.iat + tokens.refresh_expires_in,
        jti: uuid::Uuid::new_v4().to_string(),
        rt: Some(tokens.refresh_token.expose_secret().to_owned()),
        ..access_claims.clone()
    };
    let sign = |claims: &BuzzClaims| {
        state
            .accounts
            .keys()
            .sign(TYP, claims)
            .map_err(ApiError::from)
    };
    Ok(Issued {
        access: sign(&access_claims)?,
        refresh: sign(&refresh_claims)?,
        access_claims,
    })
}

fn with_tokens<'a>(
    builder: &'a mut HttpResponseBuilder,
    issued: &Issued,
) -> &'a mut HttpResponseBuilder {
    builder
        .insert_header((header::AUTHORIZATION, issued.access.as_str()))
        .insert_header(("Refresh-Token", issued.refresh.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
}

async fn not_allowed(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    failure(&req, &state, &ApiError::method_not_allowed())
}

/// The seed's failure body, with our stable code beside its message.
fn failure(req: &HttpRequest, state: &AppState, error: &ApiError) -> HttpResponse {
    let message = match error.status {
        StatusCode::UNAUTHORIZED => "다시 로그인해주세요.",
        StatusCode::BAD_REQUEST => "토큰 정보가 없습니다.",
        _ => "요청을 처리하지 못했습니다.",
    };
    let mut response = HttpResponse::build(error.status);
    cors(req, state, &mut response);
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"message": message, "error": error.code}))
}

/// The request's origin when the operator allowed it (`cors_allowed_origins`).
fn allowed_origin<'a>(req: &'a HttpRequest, state: &AppState) -> Option<&'a str> {
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    state
        .cors_allowed_origins
        .iter()
        .any(|allowed| allowed == origin)
        .then_some(origin)
}

/// Browsers may read the token headers only when told so, and only for the
/// origins the operator allowed.
fn cors(req: &HttpRequest, state: &AppState, response: &mut HttpResponseBuilder) {
    if let Some(origin) = allowed_origin(req, state) {
        response
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                "Authorization, Refresh-Token",
            ))
            .insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"))
            .insert_header((header::VARY, "Origin"));
    }
}

async fn preflight(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let mut response = HttpResponse::NoContent();
    cors(&req, &state, &mut response);
    if allowed_origin(&req, &state).is_some() {
        response
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Refresh-Token, Content-Type",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
    }
    response.finish()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 512 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Who the calling service has authenticated.
#[derive(Deserialize, utoipa::ToSchema)]
struct TokenBody {
    #[serde(rename = "loginId")]
    #[schema(schema_with = crate::http::schema::vouched_text)]
    login_id: String,
    #[schema(schema_with = crate::http::schema::vouched_text)]
    role: String,
    /// The seed's `long`; strings of digits are accepted too.
    #[serde(rename = "userId")]
    #[schema(schema_with = crate::http::schema::external_user_id)]
    user_id: Value,
}

/// A registered client (HTTP Basic) gets tokens for a user it has authenticated.
///
/// The tokens are in the `Authorization` and `Refresh-Token` response headers.
#[utoipa::path(
    post,
    path = "/api/auth/token",
    security(("client_basic" = [])),
    request_body = inline(TokenBody),
    responses(
        (status = 200, description = "Tokens in the headers, no body",
            headers(
                ("Authorization" = String, description = "The access JWT, without a scheme"),
                ("Refresh-Token" = String, description = "The refresh JWT"),
            )),
        (status = "4XX", description = "The native status; `error` is the native code", body = inline(wire::Failure)),
    )
)]
async fn token(state: web::Data<AppState>, req: HttpRequest, body: Body) -> HttpResponse {
    let Some((client_id, secret)) = basic_credentials(req.headers()) else {
        let mut response = HttpResponse::Unauthorized();
        response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"auth-server\""));
        return response
            .json(json!({"message": "클라이언트 인증이 필요합니다.", "error": "invalid_client"}));
    };
    let body: TokenBody = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return failure(&req, &state, &e),
    };
    let external_id = match &body.user_id {
        // JSON has one number type: `42.0` is the integer 42 too. Beyond
        // 2^53 a JSON number is not exact in most clients, so not an id.
        Value::Number(n) if integer(n).is_some() => integer(n).unwrap_or_default().to_string(),
        Value::String(s) => s.clone(),
        _ => {
            return failure(
                &req,
                &state,
                &ApiError::validation("userId", "must be a number"),
            );
        }
    };
    let accounts = state.accounts.clone();
    let info = crate::http::extract::client_info(&req);
    let vouched = VouchedUser {
        external_id: external_id.clone(),
        login_id: body.login_id.clone(),
        role: body.role.clone(),
    };
    let outcome = run_blocking(move || -> Result<_, accounts::AccountsError> {
        let client: AuthenticatedClient = accounts.authenticate_client(&client_id, &secret)?;
        accounts.client_vouched_login(&client, &vouched, &info)
    })
    .await;
    let (tokens, identity) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(accounts::AccountsError::InvalidClient)) => {
            let mut response = HttpResponse::Unauthorized();
            response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"auth-server\""));
            return response.json(
                json!({"message": "클라이언트 인증에 실패했습니다.", "error": "invalid_client"}),
            );
        }
        Ok(Err(e)) => return failure(&req, &state, &ApiError::from(e)),
        Err(e) => return failure(&req, &state, &e),
    };
    match issue(
        &state,
        &tokens,
        &identity.external_id,
        &identity.login_id,
        &identity.role,
    ) {
        Ok(issued) => {
            let mut response = HttpResponse::Ok();
            cors(&req, &state, &mut response);
            with_tokens(&mut response, &issued).finish()
        }
        Err(e) => failure(&req, &state, &e),
    }
}

/// An integer-valued JSON number within ±(2^53 − 1).
fn integer(n: &serde_json::Number) -> Option<i64> {
    let max = crate::http::schema::JSON_SAFE_INTEGER;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= max as f64)
                .map(|f| f as i64)
        })
        .filter(|v| v.unsigned_abs() <= max.unsigned_abs())
}

/// A bearer value with or without the `Bearer ` prefix (the seed hands out
/// the bare JWT in the header).
fn header_token(req: &HttpRequest, name: &str) -> Option<String> {
    let value = req.headers().get(name)?.to_str().ok()?.trim();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or(value)
        .trim();
    (!token.is_empty()).then(|| token.to_owned())
}

enum Checked {
    Valid(BuzzClaims),
    Expired(BuzzClaims),
}

fn check(state: &AppState, token: &str, kind: &str) -> Result<Checked, ApiError> {
    let invalid = || ApiError::unauthorized("invalid_token", "the token is invalid");
    let claims: BuzzClaims = state
        .accounts
        .keys()
        .verify(token, TYP)
        .map_err(|_| invalid())?;
    let policy = &state.token_policy;
    if claims.sub != kind || claims.iss != policy.issuer || claims.aud != policy.audience {
        return Err(invalid());
    }
    if state.revocations.is_revoked(&claims.sid, &claims.jti) {
        return Err(ApiError::unauthorized(
            "token_revoked",
            "the token has been revoked",
        ));
    }
    let now = chrono::Utc::now().timestamp();
    if now >= claims.exp.saturating_add(policy.leeway_secs.max(0)) {
        return Ok(Checked::Expired(claims));
    }
    Ok(Checked::Valid(claims))
}

/// End the session of both tokens.
#[utoipa::path(
    get,
    path = "/api/auth/logout",
    // `Authorization`: the access JWT (expired is fine), with or without `Bearer `.
    security(("bearer" = [])),
    params(("Refresh-Token" = String, Header, pattern = "^([Bb]earer )?[A-Za-z0-9._~+/=-]+$", description = "The refresh JWT of the same session")),
    responses(
        (status = 200, description = "The session has ended"),
        (status = "4XX", description = "The native status; `error` is the native code", body = inline(wire::Failure)),
    )
)]
async fn logout(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (Some(access), Some(refresh)) = (
        header_token(&req, "authorization"),
        header_token(&req, "refresh-token"),
    ) else {
        return failure(
            &req,
            &state,
            &ApiError::bad_request("both Authorization and Refresh-Token headers are required"),
        );
    };
    let access = match check(&state, &access, ACCESS) {
        Ok(Checked::Valid(c) | Checked::Expired(c)) => c,
        Err(e) => return failure(&req, &state, &e),
    };
    let refresh = match check(&state, &refresh, REFRESH) {
        Ok(Checked::Valid(c)) if c.sid == access.sid => c,
        Ok(_) => {
            return failure(
                &req,
                &state,
                &ApiError::unauthorized("invalid_refresh_token", "the refresh token is invalid"),
            );
        }
        Err(e) => return failure(&req, &state, &e),
    };
    let accounts = state.accounts.clone();
    let context = accounts::AuditContext {
        actor: Some(refresh.user_id.clone()),
        ..Default::default()
    };
    let (user_id, sid) = (refresh.user_id.clone(), refresh.sid.clone());
    match run_blocking(move || accounts.logout(&user_id, &sid, &context)).await {
        Ok(Ok(revoked)) => {
            let until = revoked.map_or(access.exp + state.token_policy.leeway_secs, |r| r.until);
            state.revocations.revoke_session(refresh.sid, until);
            let mut response = HttpResponse::Ok();
            cors(&req, &state, &mut response);
            response.finish()
        }
        Ok(Err(e)) => failure(&req, &state, &ApiError::from(e)),
        Err(e) => failure(&req, &state, &e),
    }
}

/// The seed's `/info` table types `userId` as a string (the token request's
/// `long`, written out).
fn info_body(claims: &BuzzClaims) -> Value {
    json!({"userId": claims.external_id, "loginId": claims.login_id, "role": claims.role, "iat": claims.iat, "exp": claims.exp, "sub": claims.sub})
}

/// The user behind the access token; with an expired one, a valid refresh
/// token renews both (new tokens in the response headers).
#[utoipa::path(
    get,
    path = "/api/auth/info",
    // `Authorization`: the access JWT, with or without `Bearer `; optional
    // when a refresh token is sent.
    security(("bearer" = []), ()),
    params(("Refresh-Token" = Option<String>, Header, pattern = "^([Bb]earer )?[A-Za-z0-9._~+/=-]+$", description = "The refresh JWT, used when the access token has expired or is absent")),
    responses(
        (status = 200, description = "The user; renewed tokens in the headers when the access token had expired", body = inline(wire::Info)),
        (status = "4XX", description = "The native status; `error` is the native code", body = inline(wire::Failure)),
    )
)]
async fn info(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let access = header_token(&req, "authorization").map(|t| check(&state, &t, ACCESS));
    let expired = match access {
        Some(Ok(Checked::Valid(claims))) => {
            let mut response = HttpResponse::Ok();
            cors(&req, &state, &mut response);
            return response
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(info_body(&claims));
        }
        Some(Ok(Checked::Expired(claims))) => Some(claims),
        Some(Err(e)) => return failure(&req, &state, &e),
        None => None,
    };
    // Expired (or absent) access token: a valid refresh token renews both.
    let Some(refresh) = header_token(&req, "refresh-token") else {
        return failure(
            &req,
            &state,
            &ApiError::unauthorized("invalid_token", "log in again"),
        );
    };
    let refresh = match check(&state, &refresh, REFRESH) {
        Ok(Checked::Valid(c)) if expired.as_ref().is_none_or(|a| a.sid == c.sid) => c,
        Ok(_) => {
            return failure(
                &req,
                &state,
                &ApiError::unauthorized("invalid_refresh_token", "log in again"),
            );
        }
        Err(e) => return failure(&req, &state, &e),
    };
    let native = SecretString::from(refresh.rt.clone().unwrap_or_default());
    let tokens = match rotate_refresh_token(&state, &req, native, Some(refresh.sid.clone())).await {
        Ok(tokens) => tokens,
        Err(e) => return failure(&req, &state, &e),
    };
    match issue(
        &state,
        &tokens,
        &refresh.external_id,
        &refresh.login_id,
        &refresh.role,
    ) {
        Ok(issued) => {
            let mut response = HttpResponse::Ok();
            cors(&req, &state, &mut response);
            with_tokens(&mut response, &issued).json(info_body(&issued.access_claims))
        }
        Err(e) => failure(&req, &state, &e),
    }
}

/// Paths the seed doesn't have, in the seed's error body.
pub async fn unmatched(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    failure(&req, &state, &ApiError::not_found())
}

/// Response schemas for `/openapi.json`; the bodies are built with `json!`.
#[allow(dead_code)]
mod wire {
    #[derive(utoipa::ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct Info {
        /// The client's `userId`, as a string (the seed's table says string).
        user_id: String,
        login_id: String,
        role: String,
        iat: i64,
        exp: i64,
        /// `access_token`.
        sub: String,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Failure {
        /// The seed's message (Korean).
        message: String,
        /// The native stable code.
        error: String,
    }
}
