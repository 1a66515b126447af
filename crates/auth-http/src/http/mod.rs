//! HTTP surface: routes, extractors and the error mapping.

pub mod admin;
pub mod api_tokens;
pub mod auth;
pub(crate) mod cors;
pub mod error;
pub mod extract;
pub mod flows;
pub mod mfa;
pub mod oauth;
pub mod oidc;
pub mod openapi;
pub mod paging;
pub mod passkeys;
pub mod registrations;
pub mod schema;
pub mod sessions;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

/// [`accounts::run_blocking`] (the one way blocking work runs), its failure
/// answered as a 500 problem.
pub async fn run_blocking<F, R>(work: F) -> Result<R, error::ApiError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Ok(accounts::run_blocking(work).await?)
}

use crate::state::AppState;
use error::{ApiError, Problem};

/// Every (method, path) the native API serves, relative to its mount
/// prefix: what the start-up overlap check compares profiles against.
/// `tests/profiles.rs` checks that each one is really routed,
/// `tests/openapi.rs` that `/openapi.json` describes exactly these.
pub const NATIVE_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/readyz"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/logout/all"),
    ("GET", "/api/v1/auth/me"),
    ("POST", "/api/v1/auth/mfa/verify"),
    ("GET", "/api/v1/auth/mfa"),
    ("POST", "/api/v1/auth/mfa/totp"),
    ("DELETE", "/api/v1/auth/mfa/totp"),
    ("POST", "/api/v1/auth/mfa/totp/confirm"),
    ("POST", "/api/v1/auth/mfa/recovery-codes"),
    ("POST", "/api/v1/auth/step-up"),
    ("POST", "/api/v1/auth/passkeys/register/options"),
    ("POST", "/api/v1/auth/passkeys/register"),
    ("DELETE", "/api/v1/auth/passkeys/{id}"),
    ("POST", "/api/v1/auth/passkeys/login/options"),
    ("POST", "/api/v1/auth/passkeys/login"),
    ("GET", "/api/v1/auth/sessions"),
    ("DELETE", "/api/v1/auth/sessions/{id}"),
    ("POST", "/api/v1/auth/activation/preview"),
    ("POST", "/api/v1/auth/signup"),
    ("POST", "/api/v1/auth/email/verify"),
    ("POST", "/api/v1/auth/password/forgot"),
    ("POST", "/api/v1/auth/password/reset"),
    ("POST", "/api/v1/auth/password/change"),
    ("POST", "/api/v1/auth/activate"),
    ("POST", "/api/v1/auth/activation/resend"),
    ("GET", "/api/v1/organizations"),
    ("POST", "/api/v1/organizations/email-verification/confirm"),
    ("POST", "/api/v1/organizations/{id}/email-verification"),
    ("POST", "/api/v1/registrations"),
    ("GET", "/api/v1/revocations"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
    ("GET", "/api/v1/admin/registrations"),
    ("GET", "/api/v1/admin/registrations/{id}"),
    ("POST", "/api/v1/admin/registrations/{id}/approve"),
    ("POST", "/api/v1/admin/registrations/{id}/reject"),
    ("GET", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/users/{id}"),
    ("PATCH", "/api/v1/admin/users/{id}"),
    ("GET", "/api/v1/admin/audit"),
    ("POST", "/oauth/introspect"),
    ("POST", "/oauth/revoke"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/oauth/authorize"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/device_authorization"),
    ("GET", "/oauth/userinfo"),
    ("POST", "/oauth/userinfo"),
    ("GET", "/oauth/logout"),
    ("POST", "/oauth/logout"),
];

/// All routes of the native API, mounted under `prefix`.
///
/// actix tries routes in the order they are registered, so the hot paths
/// come first (`/healthz`, then the token endpoints, `/me` and `/refresh`
/// first among them) and the pages, with their many patterns, last. No two
/// routes here share a path, so the order changes only the cost of
/// matching, never which route answers.
pub fn configure(cfg: &mut web::ServiceConfig, prefix: &str) {
    cfg.service(resource("/healthz").route(web::get().to(healthz)))
        .service(
            web::scope("/api/v1/auth")
                .service(resource("/me").route(web::get().to(auth::me)))
                .service(resource("/refresh").route(web::post().to(auth::refresh)))
                .service(resource("/login").route(web::post().to(auth::login)))
                .service(resource("/logout").route(web::post().to(auth::logout)))
                .service(resource("/logout/all").route(web::post().to(auth::logout_all)))
                .service(resource("/mfa").route(web::get().to(mfa::status)))
                .service(resource("/mfa/verify").route(web::post().to(mfa::verify)))
                .service(
                    resource("/mfa/totp")
                        .route(web::post().to(mfa::begin_totp))
                        .route(web::delete().to(mfa::remove_totp)),
                )
                .service(resource("/mfa/totp/confirm").route(web::post().to(mfa::confirm_totp)))
                .service(
                    resource("/mfa/recovery-codes")
                        .route(web::post().to(mfa::regenerate_recovery_codes)),
                )
                .service(resource("/step-up").route(web::post().to(mfa::step_up)))
                .service(
                    resource("/passkeys/register/options")
                        .route(web::post().to(passkeys::register_options)),
                )
                .service(resource("/passkeys/register").route(web::post().to(passkeys::register)))
                .service(
                    resource("/passkeys/login/options")
                        .route(web::post().to(passkeys::sign_in_options)),
                )
                .service(resource("/passkeys/login").route(web::post().to(passkeys::sign_in)))
                .service(resource("/passkeys/{id}").route(web::delete().to(passkeys::remove)))
                .service(resource("/sessions").route(web::get().to(sessions::list_sessions)))
                .service(resource("/sessions/{id}").route(web::delete().to(sessions::end_session)))
                .service(
                    resource("/activation/preview")
                        .route(web::post().to(sessions::preview_activation)),
                )
                .service(resource("/signup").route(web::post().to(flows::signup)))
                .service(resource("/email/verify").route(web::post().to(flows::verify_email)))
                .service(resource("/password/forgot").route(web::post().to(flows::forgot_password)))
                .service(resource("/password/reset").route(web::post().to(flows::reset_password)))
                .service(resource("/password/change").route(web::post().to(flows::change_password)))
                .service(resource("/activate").route(web::post().to(registrations::activate)))
                .service(
                    resource("/activation/resend")
                        .route(web::post().to(registrations::resend_activation)),
                ),
        )
        .service(resource("/readyz").route(web::get().to(readyz)))
        .service(resource("/.well-known/jwks.json").route(web::get().to(jwks)))
        .service(resource("/metrics").route(web::get().to(crate::metrics::scrape)))
        .service(resource("/openapi.json").route(web::get().to(openapi::document)))
        .service(resource("/docs").route(web::get().to(openapi::docs_redirect)))
        .service(openapi::swagger_ui(prefix))
        .service(
            resource("/api/v1/registrations")
                .route(web::post().to(registrations::submit_registration)),
        )
        .service(resource("/api/v1/revocations").route(web::get().to(admin::revocations)))
        .service(resource("/oauth/introspect").route(web::post().to(oauth::introspect)))
        .service(resource("/oauth/revoke").route(web::post().to(oauth::revoke)))
        .service(
            resource("/.well-known/openid-configuration").route(web::get().to(oidc::discovery)),
        )
        .service(resource("/oauth/authorize").route(web::get().to(crate::web::authorize)))
        .service(resource("/oauth/token").route(web::post().to(oidc::token)))
        .service(
            resource("/oauth/device_authorization")
                .route(web::post().to(oidc::device_authorization)),
        )
        .service(
            resource("/oauth/userinfo")
                .route(web::get().to(oidc::userinfo))
                .route(web::post().to(oidc::userinfo_post)),
        )
        .service(
            resource("/oauth/logout")
                .route(web::get().to(crate::web::relying_party_logout))
                .route(web::post().to(crate::web::oidc::confirm_logout)),
        )
        .service(
            web::scope("/api/v1/tokens")
                .service(
                    resource("")
                        .route(web::get().to(api_tokens::list_tokens))
                        .route(web::post().to(api_tokens::create_token)),
                )
                .service(resource("/{id}").route(web::delete().to(api_tokens::revoke_token))),
        )
        .service(
            web::scope("/api/v1/admin")
                .service(
                    resource("/registrations")
                        .route(web::get().to(registrations::list_registrations)),
                )
                .service(
                    resource("/registrations/{id}")
                        .route(web::get().to(registrations::show_registration)),
                )
                .service(
                    resource("/registrations/{id}/approve")
                        .route(web::post().to(registrations::approve_registration)),
                )
                .service(
                    resource("/registrations/{id}/reject")
                        .route(web::post().to(registrations::reject_registration)),
                )
                .service(resource("/users").route(web::get().to(admin::list_users)))
                .service(
                    resource("/users/{id}")
                        .route(web::get().to(admin::show_user))
                        .route(web::patch().to(admin::patch_user)),
                )
                .service(resource("/audit").route(web::get().to(admin::audit))),
        )
        .service(
            web::scope("/api/v1/organizations")
                .service(resource("").route(web::get().to(flows::list_organizations)))
                .service(
                    resource("/email-verification/confirm")
                        .route(web::post().to(flows::confirm_organization_code)),
                )
                .service(
                    resource("/{id}/email-verification")
                        .route(web::post().to(flows::request_organization_code)),
                ),
        );
    crate::web::configure(cfg);
}

/// A resource whose unmatched methods answer 405 as problem+json.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::method_not_allowed())
    }))
}

/// The methods each route answers, by route pattern with its mount prefix:
/// what a 405 names in `Allow` (RFC 9110 §15.5.6) and a CORS preflight in
/// `Access-Control-Allow-Methods`. Built from the same route tables the
/// start-up overlap check and the tests use.
pub struct AllowedMethods(HashMap<String, Route>);

/// Native routes no browser app on another origin has any business
/// reading: those that answer HTML to a browser's navigation, as pages do,
/// and the operator's `/metrics` (open to anyone who can reach it when no
/// `metrics_token` is set, but never to other origins' scripts).
const NATIVE_WITHOUT_CORS: &[&str] = &["/docs", "/oauth/authorize", "/oauth/logout", "/metrics"];

/// A route pattern's entry in [`AllowedMethods`].
pub(crate) struct Route {
    /// Its methods, as `Allow` lists them.
    allow: HeaderValue,
    /// A web page (`crate::web::PAGE_ROUTES`) or one of
    /// [`NATIVE_WITHOUT_CORS`]: no CORS.
    no_cors: bool,
}

impl AllowedMethods {
    pub fn new(mounts: &crate::profiles::Mounts) -> Self {
        let mut methods: BTreeMap<String, (BTreeSet<&str>, bool)> = BTreeMap::new();
        let native = NATIVE_ROUTES
            .iter()
            .map(|r| (r, NATIVE_WITHOUT_CORS.contains(&r.1)))
            .chain(crate::web::PAGE_ROUTES.iter().map(|r| (r, true)))
            .map(|(r, no_cors)| (&mounts.native, r, no_cors));
        let profiles = mounts
            .profiles
            .iter()
            .flat_map(|(profile, prefix)| profile.routes().iter().map(move |r| (prefix, r, false)));
        for (prefix, (method, path), no_cors) in native.chain(profiles) {
            let entry = methods.entry(format!("{prefix}{path}")).or_default();
            entry.0.insert(method);
            entry.1 |= no_cors;
        }
        Self(
            methods
                .into_iter()
                .filter_map(|(pattern, (mut methods, no_cors))| {
                    // Answered wherever GET is (`Edge` routes HEAD as GET).
                    if methods.contains("GET") {
                        methods.insert("HEAD");
                    }
                    let list = methods.into_iter().collect::<Vec<_>>().join(", ");
                    let allow = HeaderValue::from_str(&list).ok()?;
                    Some((pattern, Route { allow, no_cors }))
                })
                .collect(),
        )
    }

    /// The entry of the route with this pattern.
    pub(crate) fn route(&self, pattern: &str) -> Option<&Route> {
        self.0.get(pattern)
    }
}

/// The last touches every response gets (by [`crate::Edge`]): `Allow` on a
/// 405, the CORS answer to a request that sent `Origin` ([`cors`]), and
/// native problems with field errors written in the request's language
/// (`Accept-Language`; Korean by default).
pub(crate) fn finish_response<B>(response: ServiceResponse<B>) -> ServiceResponse<EitherBody<B>> {
    // Only errors with field messages depend on the language (rendered in
    // the default one already). Everything else keeps its body as it is
    // (no boxing on the way out).
    let localized = response
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
        .filter(|e| e.is_localized())
        .and_then(|e| {
            let locale = flows::request_locale(response.request(), None);
            (locale != accounts::Locale::default()).then(|| e.render(locale))
        });
    let mut response = match localized {
        Some(localized) => response.into_response(localized).map_into_right_body(),
        None => response.map_into_left_body(),
    };
    // The route is looked up (a pattern string built) only for these.
    let cross_origin = cors::applies(&response);
    if response.status() != StatusCode::METHOD_NOT_ALLOWED && !cross_origin {
        return response;
    }
    let request = response.request().clone();
    let route = request.match_pattern().and_then(|pattern| {
        request
            .app_data::<web::Data<AllowedMethods>>()?
            .route(&pattern)
    });
    if cross_origin {
        response = cors::answer(response, route);
    }
    // Ours even where actix wrote one (a resource with several routes names
    // its own methods, without HEAD).
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(route) = route
    {
        response
            .headers_mut()
            .insert(header::ALLOW, route.allow.clone());
    }
    response
}

/// Body and path error handlers shared by every mount.
pub fn extractor_config(cfg: &mut web::ServiceConfig) {
    cfg.app_data(extract::json_config())
        .app_data(extract::form_config())
        .app_data(extract::path_config())
        .app_data(extract::query_config());
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found())
}

/// Liveness: the process answers. Touches no database.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = openapi::bodies::Status))
)]
async fn healthz() -> HttpResponse {
    // What `json!({"status": "ok"})` gives, without building it each time.
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(r#"{"status":"ok"}"#)
}

/// Readiness: the database answers, and the server is not about to stop.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = openapi::bodies::Status),
        (status = 503, description = "`not_ready`; `draining`: stopping soon, send new requests elsewhere", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.draining.is_draining() {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this instance is stopping; send new requests elsewhere",
        ));
    }
    let accounts = state.accounts.clone();
    match run_blocking(move || accounts.ping()).await? {
        Ok(()) => Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            Err(ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database is not reachable",
            ))
        }
    }
}

/// The JWK Set of every verification key still accepted (cacheable for 5 minutes).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "keys",
    responses((status = 200, description = "RFC 7517 JWK Set", body = openapi::bodies::JwkSet))
)]
async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ))
        .json(state.accounts.keys().jwks())
}
