//! `/api/v1/auth/passkeys/*`: register passkeys, remove them, and sign in
//! with one. Every rule is `accounts::passkeys`'; these parse and shape.
//! The options are WebAuthn's JSON forms (`{"publicKey": {...}}`, base64url
//! for bytes), the answers the browser's `PublicKeyCredential.toJSON()`.

use accounts::{PasskeyAssertion, PasskeyName, PasskeySignIn, PasskeySummary};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{no_store, token_response};
use super::error::{ApiError, Problem};
use super::extract::{Bearer, Enrolling, JsonOrForm, client_info};
use super::schema;
use crate::http::run_blocking;
use crate::state::AppState;

/// Options for `navigator.credentials.create()` or `.get()`, and the id
/// that the answer must come back with (five minutes, once).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CeremonyResponse {
    /// Opaque; send it back with the answer.
    challenge_id: String,
    /// WebAuthn `PublicKeyCredentialCreationOptions` or
    /// `PublicKeyCredentialRequestOptions`, JSON form.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: Value,
}

pub(crate) fn ceremony(ceremony: accounts::PasskeyCeremony) -> HttpResponse {
    let mut options = ceremony.options;
    no_store(&mut HttpResponse::Ok()).json(CeremonyResponse {
        challenge_id: ceremony.challenge_id.expose_secret().to_owned(),
        public_key: options["publicKey"].take(),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterBody {
    /// From the options.
    #[schema(max_length = 256)]
    challenge_id: String,
    /// What to call it ("laptop", "phone"): 1–64 characters.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    /// The browser's `PublicKeyCredential` (`toJSON()` form).
    #[schema(value_type = Object)]
    credential: Value,
}

/// Who may finish the sign-in: `{}` anyone (the passkey names its
/// account), or `{"login"}` only that account.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignInOptionsBody {
    /// An email or username; answered the same whether it exists or not.
    #[schema(max_length = 320)]
    login: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignInBody {
    /// From the options.
    #[schema(max_length = 256)]
    challenge_id: String,
    /// The browser's `PublicKeyCredential` (`toJSON()` form).
    #[schema(value_type = Object)]
    credential: Value,
}

/// A passkey just registered.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RegisteredPasskey {
    id: String,
    name: String,
}

/// A registered passkey, as `GET /api/v1/auth/mfa` lists it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PasskeyView {
    id: String,
    name: String,
    /// RFC 3339 UTC.
    created_at: String,
    /// RFC 3339 UTC, or `null` when never used.
    last_used_at: Option<String>,
}

impl From<&PasskeySummary> for PasskeyView {
    fn from(passkey: &PasskeySummary) -> Self {
        let time = |t: &chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        PasskeyView {
            id: passkey.id.clone(),
            name: passkey.name.clone(),
            created_at: time(&passkey.created_at),
            last_used_at: passkey.last_used_at.as_ref().map(time),
        }
    }
}

/// The ids handed out are 43 characters; anything much longer is not one.
pub(crate) fn challenge_id_checked(challenge_id: &str) -> Result<&str, ApiError> {
    if challenge_id.len() > schema::OPAQUE_TOKEN_MAX_BYTES {
        return Err(ApiError::validation("challenge_id", "is too long"));
    }
    Ok(challenge_id)
}

/// Options to register a passkey for the caller.
#[utoipa::path(
    post,
    path = "/api/v1/auth/passkeys/register/options",
    operation_id = "begin_passkey_registration",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`challenge_id` and `publicKey` (creation options: discoverable, user verification required; the caller's passkeys excluded)", body = CeremonyResponse),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required`: authenticate again first (POST /api/v1/auth/step-up); `forbidden`: an API token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`passkeys_unavailable` (the server's public URL is an IP address); `too_many_passkeys`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register_options(
    state: web::Data<AppState>,
    Enrolling(claims): Enrolling,
) -> Result<HttpResponse, ApiError> {
    let accounts = state.accounts.clone();
    let started =
        run_blocking(move || accounts.begin_passkey_registration(&claims.sub, &claims.sid))
            .await??;
    Ok(ceremony(started))
}

/// Register the passkey the browser created from the options.
#[utoipa::path(
    post,
    path = "/api/v1/auth/passkeys/register",
    operation_id = "register_passkey",
    tag = "auth",
    security(("bearer" = [])),
    request_body(content((RegisterBody = "application/json"))),
    responses(
        (status = 201, description = "Registered", body = RegisteredPasskey),
        (status = 400, description = "`invalid_credential`: the answer is wrong, expired, used, or the passkey is registered already; `invalid_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an API token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: the session ended meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`passkeys_unavailable`; `too_many_passkeys`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the name is empty, too long or has control characters", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    Enrolling(claims): Enrolling,
    JsonOrForm(body): JsonOrForm<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    let name = PasskeyName::parse(&body.name).map_err(|why| ApiError::validation("name", why))?;
    challenge_id_checked(&body.challenge_id)?;
    let client = client_info(&req);
    let accounts = state.accounts.clone();
    let passkey = run_blocking(move || {
        accounts.finish_passkey_registration(
            &claims.sub,
            &claims.sid,
            &body.challenge_id,
            &name,
            &body.credential,
            &client,
        )
    })
    .await??;
    Ok(HttpResponse::Created().json(RegisteredPasskey {
        id: passkey.id,
        name: passkey.name,
    }))
}

/// Remove one of the caller's passkeys.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/passkeys/{id}",
    operation_id = "remove_passkey",
    tag = "auth",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The passkey's id", max_length = 64)),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required`; `forbidden`: an API token; `mfa_enrollment_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such passkey of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    Bearer(claims): Bearer,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = client_info(&req);
    let accounts = state.accounts.clone();
    let id = id.into_inner();
    run_blocking(move || accounts.remove_passkey(&claims.sub, &claims.sid, &id, &client)).await??;
    Ok(HttpResponse::NoContent().finish())
}

/// Options to sign in with a passkey (alone, as the login's second step,
/// or for a step-up).
#[utoipa::path(
    post,
    path = "/api/v1/auth/passkeys/login/options",
    operation_id = "begin_passkey_login",
    tag = "auth",
    request_body(content((SignInOptionsBody = "application/json"))),
    responses(
        (status = 200, description = "`challenge_id` and `publicKey` (request options for a discoverable passkey, user verification required)", body = CeremonyResponse),
        (status = 400, description = "`invalid_request`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`passkeys_unavailable` (the server's public URL is an IP address)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the login is too long", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`: too many sign-ins begun from this address lately (`throttle_passkey_ip`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_in_options(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<SignInOptionsBody>,
) -> Result<HttpResponse, ApiError> {
    if body
        .login
        .as_deref()
        .is_some_and(|login| login.chars().count() > schema::LOGIN_MAX_CHARS)
    {
        return Err(ApiError::validation("login", "is too long"));
    }
    let client = client_info(&req);
    let accounts = state.accounts.clone();
    let started = run_blocking(move || {
        let who = match body.login.as_deref() {
            Some(login) => PasskeySignIn::Login(login),
            None => PasskeySignIn::Anyone,
        };
        accounts.begin_passkey_sign_in(who, &client)
    })
    .await??;
    Ok(ceremony(started))
}

/// Sign in with a passkey alone.
#[utoipa::path(
    post,
    path = "/api/v1/auth/passkeys/login",
    operation_id = "passkey_login",
    tag = "auth",
    request_body(content((SignInBody = "application/json"))),
    responses(
        (status = 200, description = "A new session; its tokens say `amr: [\"hwk\"|\"swk\",\"user\",\"mfa\"]`", body = super::auth::TokenResponse),
        (status = 400, description = "`invalid_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credential`: the answer is wrong, expired, used, not of the named account, or the account is not active", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`passkeys_unavailable`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the challenge_id is too long", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonOrForm(body): JsonOrForm<SignInBody>,
) -> Result<HttpResponse, ApiError> {
    challenge_id_checked(&body.challenge_id)?;
    let client = client_info(&req);
    let accounts = state.accounts.clone();
    let tokens = run_blocking(move || {
        accounts.passkey_login(
            PasskeyAssertion {
                challenge_id: &body.challenge_id,
                credential: &body.credential,
            },
            &client,
        )
    })
    .await??;
    state.metrics.record_login("success");
    tracing::info!(user_id = %tokens.claims.sub, session_id = %tokens.claims.sid, "login with a passkey");
    Ok(token_response(&tokens))
}
