//! Request extractors: bodies (JSON or form, with problem+json errors),
//! bearer authentication, and the caller's address and user agent.

use std::future::Future;
use std::pin::Pin;

use accounts::ClientInfo;
use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, UrlencodedError};
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, web};
use auth_core::AccessClaims;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::state::AppState;

/// Request bodies are small; anything larger is refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|e, _| json_error(e).into())
}

pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|e, _| form_error(e).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| ApiError::not_found().into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| ApiError::bad_request(format!("invalid query string: {e}")).into())
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than 64 KiB",
    )
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send application/json (or application/x-www-form-urlencoded where accepted)",
    )
}

fn json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            too_large()
        }
        JsonPayloadError::ContentType => unsupported_media_type(),
        // serde's message describes the client's own JSON (line, column,
        // expected type); it names nothing of ours.
        JsonPayloadError::Deserialize(e) => {
            ApiError::bad_request(format!("invalid JSON body: {e}"))
        }
        _ => ApiError::bad_request("the request body could not be read"),
    }
}

fn form_error(e: UrlencodedError) -> ApiError {
    match e {
        UrlencodedError::Overflow { .. } => too_large(),
        UrlencodedError::ContentType => unsupported_media_type(),
        UrlencodedError::Parse(e) => ApiError::bad_request(format!("invalid form body: {e}")),
        _ => ApiError::bad_request("the request body could not be read"),
    }
}

/// A body accepted as JSON or as `application/x-www-form-urlencoded`,
/// chosen by `Content-Type`.
pub struct JsonOrForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonOrForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mime = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if mime == "application/x-www-form-urlencoded" {
            let form = web::Form::<T>::from_request(req, payload);
            Box::pin(async move { Ok(JsonOrForm(form.await?.into_inner())) })
        } else if mime == "application/json" || mime.ends_with("+json") {
            let json = web::Json::<T>::from_request(req, payload);
            Box::pin(async move { Ok(JsonOrForm(json.await?.into_inner())) })
        } else {
            Box::pin(async { Err(unsupported_media_type().into()) })
        }
    }
}

/// A verified, unrevoked access token. Checking it reads no database: the
/// signature and claims are checked with the in-memory key set, revocation
/// against the in-memory revocation set.
pub struct Bearer(pub AccessClaims);

/// Longer than any token we issue; bigger headers are refused unparsed.
const MAX_TOKEN_LEN: usize = 8 * 1024;

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Bearer, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(ApiError::internal)?;
    let header = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "invalid_token",
            "an Authorization: Bearer <token> header is required",
        )
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_LEN)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_token",
                "the Authorization header must be: Bearer <token>",
            )
        })?;
    let claims =
        state
            .token_policy
            .verify_access(&state.keys, token, chrono::Utc::now().timestamp())?;
    if state.revocations.is_revoked(&claims.sid, &claims.jti) {
        return Err(ApiError::unauthorized(
            "token_revoked",
            "the access token has been revoked",
        ));
    }
    Ok(Bearer(claims))
}

/// The caller's address and user agent, recorded on new sessions.
pub fn client_info(req: &HttpRequest) -> ClientInfo {
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect());
    ClientInfo {
        user_agent,
        ip: req.peer_addr().map(|a| a.ip().to_string()),
    }
}
