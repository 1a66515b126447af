//! Profile `buzzbook` (seed 003). Another backend has already authenticated
//! the user and asks us, as a registered client (HTTP Basic), for tokens:
//! `POST /api/auth/token {loginId, role, userId}` answers with the tokens in
//! the `Authorization` and `Refresh-Token` response headers: the client
//! tokens of `accounts::client_tokens` (JWTs with the seed's claims plus
//! ours, the refresh credential sealed inside the refresh token). Checking,
//! rotating and revoking them are `Accounts` operations; this module speaks
//! the seed's HTTP. Decisions: `docs/profiles/buzzbook.md`.

use accounts::{ClientTokenState, ClientTokens, VouchedUser};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use auth_core::{ClientTokenClaims, ClientTokenKind};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, parse_body};
use crate::http::error::ApiError;
use crate::http::extract::client_info;
use crate::http::run_blocking;
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
    // `http::finish_response`); preflights are answered on the seed's
    // paths (elsewhere: the profile's 404, without CORS).
    let at = |path| {
        web::resource(path)
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight))
            .default_service(web::to(not_allowed))
    };
    cfg.service(at("/api/auth/token").route(web::post().to(token)))
        .service(at("/api/auth/logout").route(web::get().to(logout)))
        .service(at("/api/auth/info").route(web::get().to(info)));
}

fn with_tokens<'a>(
    builder: &'a mut HttpResponseBuilder,
    issued: &ClientTokens,
) -> &'a mut HttpResponseBuilder {
    builder
        .insert_header((header::AUTHORIZATION, issued.access.as_str()))
        .insert_header(("Refresh-Token", issued.refresh.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
}

async fn not_allowed(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    failure(&req, &state, &ApiError::method_not_allowed())
}

/// The seed's failure body, with our stable code beside its message, and
/// the profile's CORS answer.
fn failure(req: &HttpRequest, state: &AppState, error: &ApiError) -> HttpResponse {
    let mut response = HttpResponse::build(error.status);
    cors(req, state, &mut response);
    failure_body(&mut response, error)
}

fn failure_body(response: &mut HttpResponseBuilder, error: &ApiError) -> HttpResponse {
    let message = match error.status {
        StatusCode::UNAUTHORIZED => "다시 로그인해주세요.",
        StatusCode::BAD_REQUEST => "토큰 정보가 없습니다.",
        _ => "요청을 처리하지 못했습니다.",
    };
    if let Some(header) = error.retry_after_header() {
        response.insert_header(header);
    }
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"message": message, "error": error.code}))
}

/// 401 `invalid_client` for the service-to-service token endpoint, with
/// the profile's CORS answer like every other.
fn client_refused(req: &HttpRequest, state: &AppState, message: &str) -> HttpResponse {
    let mut response = HttpResponse::Unauthorized();
    cors(req, state, &mut response);
    response
        .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"auth-server\""))
        .json(json!({"message": message, "error": "invalid_client"}))
}

/// Browsers may read the token headers only when told so, and only for the
/// origins the operator allowed; true when the origin is one of them.
fn cors(req: &HttpRequest, state: &AppState, response: &mut HttpResponseBuilder) -> bool {
    let Some(origin) = crate::http::cors::allowed_origin(req, state) else {
        return false;
    };
    response
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
        .insert_header((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "Authorization, Refresh-Token",
        ))
        .insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"))
        .insert_header((header::VARY, "Origin"));
    true
}

async fn preflight(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let mut response = HttpResponse::NoContent();
    if cors(&req, &state, &mut response) {
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
        return client_refused(&req, &state, "클라이언트 인증이 필요합니다.");
    };
    // The client first (RFC 6749 §3.2.1): a caller that is not one learns
    // nothing about the body, not even whether it would have been valid.
    let accounts = state.accounts.clone();
    let client = match run_blocking(move || accounts.authenticate_client(&client_id, &secret)).await
    {
        Ok(Ok(client)) => client,
        Ok(Err(accounts::AccountsError::InvalidClient)) => {
            return client_refused(&req, &state, "클라이언트 인증에 실패했습니다.");
        }
        Ok(Err(e)) => return failure(&req, &state, &ApiError::from(e)),
        Err(e) => return failure(&req, &state, &e),
    };
    let vouched = match parse_body(body).and_then(vouched_user) {
        Ok(vouched) => vouched,
        Err(e) => return failure(&req, &state, &e),
    };
    let accounts = state.accounts.clone();
    let info = client_info(&req);
    let issued =
        match run_blocking(move || accounts.client_vouched_login(&client, &vouched, &info)).await {
            Ok(Ok(issued)) => issued,
            Ok(Err(e)) => return failure(&req, &state, &ApiError::from(e)),
            Err(e) => return failure(&req, &state, &e),
        };
    let mut response = HttpResponse::Ok();
    cors(&req, &state, &mut response);
    with_tokens(&mut response, &issued).finish()
}

/// The user a client vouches for, its `userId` read as the seed's `long`.
fn vouched_user(body: TokenBody) -> Result<VouchedUser, ApiError> {
    let external_id = match &body.user_id {
        // JSON has one number type: `42.0` is the integer 42 too. Beyond
        // 2^53 a JSON number is not exact in most clients, so not an id.
        Value::Number(n) if integer(n).is_some() => integer(n).unwrap_or_default().to_string(),
        // The seed's `userId` is a long: "042", "42" and 42 are one user.
        Value::String(s) => match s.parse::<i64>() {
            Ok(n)
                if s.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                    && n.unsigned_abs()
                        <= crate::http::schema::JSON_SAFE_INTEGER.unsigned_abs() =>
            {
                n.to_string()
            }
            _ => s.clone(),
        },
        _ => return Err(ApiError::validation("userId", "must be a number")),
    };
    Ok(VouchedUser {
        external_id,
        login_id: body.login_id,
        role: body.role,
    })
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

/// A client token of `kind`, valid or expired (the account operation checks
/// signature, times and revocation).
fn check(
    state: &AppState,
    token: &str,
    kind: ClientTokenKind,
) -> Result<ClientTokenState, ApiError> {
    Ok(state.accounts.check_client_token(token, kind)?)
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
    let access = match check(&state, &access, ClientTokenKind::Access) {
        Ok(state) => state.claims().clone(),
        Err(e) => return failure(&req, &state, &e),
    };
    let refresh = match check(&state, &refresh, ClientTokenKind::Refresh) {
        Ok(ClientTokenState::Valid(c)) if c.sid == access.sid => c,
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
        Ok(Ok(Some(_))) => {
            let mut response = HttpResponse::Ok();
            cors(&req, &state, &mut response);
            response.finish()
        }
        // Ended before: the refresh JWT outlives the revocation list's
        // memory of it (one access-token lifetime), not the session's end.
        Ok(Ok(None)) => failure(
            &req,
            &state,
            &ApiError::unauthorized("token_revoked", "the token has been revoked"),
        ),
        Ok(Err(e)) => failure(&req, &state, &ApiError::from(e)),
        Err(e) => failure(&req, &state, &e),
    }
}

/// The seed's `/info` table types `userId` as a string (the token request's
/// `long`, written out).
fn info_body(claims: &ClientTokenClaims) -> Value {
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
    let access =
        header_token(&req, "authorization").map(|t| check(&state, &t, ClientTokenKind::Access));
    let expired = match access {
        Some(Ok(ClientTokenState::Valid(claims))) => {
            let mut response = HttpResponse::Ok();
            cors(&req, &state, &mut response);
            return response
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(info_body(&claims));
        }
        Some(Ok(ClientTokenState::Expired(claims))) => Some(claims),
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
    let refresh = match check(&state, &refresh, ClientTokenKind::Refresh) {
        Ok(ClientTokenState::Valid(c)) if expired.as_ref().is_none_or(|a| a.sid == c.sid) => c,
        Ok(_) => {
            return failure(
                &req,
                &state,
                &ApiError::unauthorized("invalid_refresh_token", "log in again"),
            );
        }
        Err(e) => return failure(&req, &state, &e),
    };
    let origin = client_info(&req);
    let issued = match state.accounts.client_refresh_async(&refresh, &origin).await {
        Ok(issued) => issued,
        Err(accounts::AccountsError::RefreshTokenReused(_)) => {
            state.metrics.record_refresh_reuse();
            let reused = accounts::AccountsError::RefreshTokenReused(None);
            return failure(&req, &state, &ApiError::from(reused));
        }
        Err(e) => return failure(&req, &state, &ApiError::from(e)),
    };
    let mut response = HttpResponse::Ok();
    cors(&req, &state, &mut response);
    with_tokens(&mut response, &issued).json(info_body(&issued.access_claims))
}

/// Paths the seed doesn't have, in the seed's error body; no CORS answer,
/// as for every unknown path.
pub async fn unmatched() -> HttpResponse {
    let error = ApiError::not_found();
    failure_body(&mut HttpResponse::build(error.status), &error)
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
