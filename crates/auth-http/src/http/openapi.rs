//! The OpenAPI 3.1 document at `/openapi.json`, generated from the handlers'
//! `#[utoipa::path]` annotations, and the Swagger UI at `/docs/`.
//!
//! Where each part of the API lives is runtime configuration (`mounts`), so
//! the annotations carry paths relative to their mount, and [`build`]
//! prefixes them at start-up: the native API's, then each mounted profile's
//! under its own tag. The result is serialized once and shared by every
//! worker. `tests/openapi.rs` checks that the document and the routes agree.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::openapi::path::{Operation, PathItem, Paths};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::{admin, api_tokens, auth, flows, mfa, oauth, oidc, passkeys, registrations, sessions};
use crate::profiles::{Mounts, Profile};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth-server",
        version = env!("CARGO_PKG_VERSION"),
        description = "Authentication server: the native API, and compatibility profiles that \
            serve older services' wire contracts (tags `compat: <profile>`). Native errors are \
            RFC 9457 `application/problem+json` with a stable `code`."
    ),
    paths(
        super::healthz,
        super::readyz,
        crate::metrics::scrape,
        super::jwks,
        document,
        docs_redirect,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::logout_all,
        auth::me,
        mfa::verify,
        mfa::status,
        mfa::begin_totp,
        mfa::confirm_totp,
        mfa::remove_totp,
        mfa::regenerate_recovery_codes,
        mfa::step_up,
        passkeys::register_options,
        passkeys::register,
        passkeys::remove,
        passkeys::sign_in_options,
        passkeys::sign_in,
        sessions::list_sessions,
        sessions::end_session,
        sessions::preview_activation,
        flows::signup,
        flows::verify_email,
        flows::forgot_password,
        flows::reset_password,
        flows::change_password,
        registrations::activate,
        registrations::resend_activation,
        flows::list_organizations,
        flows::confirm_organization_code,
        flows::request_organization_code,
        registrations::submit_registration,
        admin::revocations,
        api_tokens::list_tokens,
        api_tokens::create_token,
        api_tokens::revoke_token,
        registrations::list_registrations,
        registrations::show_registration,
        registrations::approve_registration,
        registrations::reject_registration,
        admin::list_users,
        admin::show_user,
        admin::patch_user,
        admin::audit,
        oauth::introspect,
        oauth::revoke,
        oidc::discovery,
        crate::web::oidc::authorize,
        oidc::token,
        oidc::device_authorization,
        oidc::userinfo,
        oidc::userinfo_post,
        crate::web::oidc::logout,
        crate::web::oidc::confirm_logout,
    ),
    modifiers(&SecuritySchemes, &BodyErrors),
    tags(
        (name = "auth", description = "Sessions: log in, refresh, log out, who am I"),
        (name = "accounts", description = "Sign-up, email verification, passwords, activation"),
        (name = "organizations", description = "Organizations and their email verification"),
        (name = "registrations", description = "Company registration, reviewed by an operator"),
        (name = "tokens", description = "Personal API tokens"),
        (name = "admin", description = "Operators and organization admins"),
        (name = "oauth", description = "RFC 7662 introspection and RFC 7009 revocation for registered clients (HTTP Basic)"),
        (name = "oidc", description = "OpenID Connect provider: discovery, authorization code flow with PKCE, tokens, UserInfo, RP-initiated logout"),
        (name = "keys", description = "What offline verifiers need: the JWK Set and the revocation feed"),
        (name = "health", description = "Liveness and readiness"),
        (name = "docs", description = "This document and its Swagger UI"),
    )
)]
struct NativeApi;

/// `bearer`: an access token (or, where the route says so, a personal API
/// token). `client_basic`: a registered client's id and secret.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from login, refresh or activation; routes that say so also take a personal API token",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A registered client's `client_id:client_secret` (`auth-server client add`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every native body is read by the same extractors, which refuse it in the
/// same three ways; listing those once here keeps each route's annotation to
/// what is particular to it.
struct BodyErrors;

impl Modify for BodyErrors {
    fn modify(&self, doc: &mut Document) {
        let common = [
            (
                "400",
                "`invalid_request`: malformed JSON or form, or a field of the wrong type",
            ),
            ("413", "`payload_too_large`: the body is larger than 64 KiB"),
            ("415", "`unsupported_media_type`"),
        ];
        for item in doc.paths.paths.values_mut() {
            for operation in operations(item) {
                if operation.request_body.is_none() {
                    continue;
                }
                for (status, description) in common {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem_response(description).into());
                }
            }
        }
    }
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// Every operation of a path item, whatever its method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .flatten()
}

fn prefixed(paths: Paths, prefix: &str) -> Paths {
    let mut out = Paths::new();
    for (path, item) in paths.paths {
        out.paths.insert(format!("{prefix}{path}"), item);
    }
    out
}

/// What the document says that the deployment configures.
pub struct Configured<'a> {
    pub mounts: &'a Mounts,
    /// The permission catalog: the values of every `permissions` list.
    pub permissions: &'a accounts::PermissionCatalog,
    /// The longest API token lifetime, in days.
    pub api_token_max_days: i64,
}

/// The components whose values are configuration (see `http::schema`).
fn configured_components(doc: &mut Document, configured: &Configured) {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(
        super::schema::PERMISSION.to_owned(),
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A permission of this deployment's catalog (`permissions`)",
            ))
            .enum_values(Some(configured.permissions.all()))
            .into(),
    );
    components.schemas.insert(
        super::schema::API_TOKEN_DAYS.to_owned(),
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .description(Some(
                "Days until the API token expires: 1 to this deployment's `api_token_max_days`",
            ))
            .minimum(Some(1))
            .maximum(Some(configured.api_token_max_days))
            .into(),
    );
}

/// The whole document for these mounts: the native API under its prefix and
/// each enabled profile under its own, with the profile's name as tag.
pub fn build(configured: &Configured) -> Document {
    let mounts = configured.mounts;
    let mut doc = NativeApi::openapi();
    configured_components(&mut doc, configured);
    doc.paths = prefixed(std::mem::take(&mut doc.paths), &mounts.native);
    for (profile, prefix) in &mounts.profiles {
        let mut api = profile.openapi();
        let tag = profile_tag(*profile);
        for item in api.paths.paths.values_mut() {
            for operation in operations(item) {
                operation.tags = Some(vec![tag.clone()]);
                // Profiles reuse handler names (`login`); operation ids
                // must be unique in the document.
                operation.operation_id = operation
                    .operation_id
                    .take()
                    .map(|id| format!("{}.{id}", profile.name()));
            }
        }
        api.paths = prefixed(std::mem::take(&mut api.paths), prefix);
        let mount = if prefix.is_empty() { "/" } else { prefix };
        api.tags = Some(vec![
            TagBuilder::new()
                .name(tag)
                .description(Some(format!(
                    "Compatibility profile `{}`, mounted at `{mount}`: an older service's wire \
                     contract, with its own body and error shapes (docs/profiles/{}.md).",
                    profile.name(),
                    profile.name()
                )))
                .build(),
        ]);
        doc.merge(api);
    }
    doc
}

/// The tag of a profile's operations.
pub fn profile_tag(profile: Profile) -> String {
    format!("compat: {}", profile.name())
}

/// The document, serialized once at start-up.
pub struct ApiDocument {
    json: web::Bytes,
}

impl ApiDocument {
    pub fn new(configured: &Configured) -> Result<Self, serde_json::Error> {
        Ok(Self {
            json: build(configured).to_json()?.into(),
        })
    }
}

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn document(doc: web::Data<ApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.json.clone())
}

/// Swagger UI for this document; the page itself is at `/docs/`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    responses((status = 308, description = "Redirects to `/docs/`, the Swagger UI page (HTML)"))
)]
pub async fn docs_redirect(req: HttpRequest) -> HttpResponse {
    // Relative to wherever the native API is mounted.
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, format!("{}/", req.path())))
        .finish()
}

/// Swagger UI's files (vendored in the binary) under `/docs/`, reading the
/// document from the native mount's `/openapi.json`.
pub fn swagger_ui(prefix: &str) -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").config(Config::new([format!("{prefix}/openapi.json")]))
}

/// Schemas of the bodies that handlers build with `json!`. They describe
/// the wire format for the document only: nothing constructs them.
#[allow(dead_code)]
pub(crate) mod bodies {
    use utoipa::ToSchema;

    use crate::http::admin::UserJson;
    use crate::http::api_tokens::ApiTokenJson;
    use crate::http::auth::Me;
    use crate::http::registrations::RegistrationJson;

    #[derive(ToSchema)]
    pub struct Status {
        /// `ok` (liveness) or `ready` (readiness).
        status: String,
    }

    /// RFC 7517 JWK Set.
    #[derive(ToSchema)]
    pub struct JwkSet {
        keys: Vec<Jwk>,
    }

    /// A public key: OKP (EdDSA), EC (ES256) or RSA (RS256).
    #[derive(ToSchema)]
    pub struct Jwk {
        kty: String,
        kid: String,
        alg: String,
        /// Always `sig`.
        #[serde(rename = "use")]
        use_: String,
        crv: Option<String>,
        x: Option<String>,
        y: Option<String>,
        n: Option<String>,
        e: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct Verified {
        /// Always `true`.
        verified: bool,
    }

    #[derive(ToSchema)]
    pub struct OrganizationVerified {
        /// Always `true`.
        verified: bool,
        organization_id: String,
    }

    /// The same answer whether or not the address is known.
    #[derive(ToSchema)]
    pub struct Accepted {
        /// Always `accepted`.
        status: String,
        detail: String,
    }

    #[derive(ToSchema)]
    pub struct CodeSent {
        /// Always `code_sent`.
        status: String,
    }

    #[derive(ToSchema)]
    pub struct RegistrationAccepted {
        registration_id: String,
        /// `pending_review`.
        status: String,
    }

    #[derive(ToSchema)]
    pub struct RegistrationPage {
        items: Vec<RegistrationJson>,
        /// Pass as `cursor` for the next page; `null` on the last.
        next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct UserPage {
        items: Vec<UserJson>,
        /// Pass as `cursor` for the next page; `null` on the last.
        next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct TokenList {
        items: Vec<ApiTokenJson>,
    }

    /// A new personal API token: the only time its secret is shown.
    #[derive(ToSchema)]
    pub struct CreatedToken {
        id: String,
        name: String,
        /// The secret, a JWT: keep it, it can't be shown again.
        token: String,
        permissions: Vec<String>,
        created_at: String,
        expires_at: String,
    }

    #[derive(ToSchema)]
    pub struct RevocationFeed {
        items: Vec<Revocation>,
        /// Pass as `since` to get only newer revocations.
        next_cursor: String,
    }

    #[derive(ToSchema)]
    pub struct Revocation {
        /// `jti`: an API token; `sid`: a session (all its access tokens).
        kind: RevocationKind,
        /// The `jti` or `sid` claim.
        id: String,
        /// Unix seconds after which the revoked tokens have expired anyway.
        exp: i64,
    }

    #[derive(ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum RevocationKind {
        Jti,
        Sid,
    }

    #[derive(ToSchema)]
    pub struct AuditPage {
        items: Vec<AuditEvent>,
        /// Pass as `before` for the next (older) page; `null` on the last.
        next_cursor: Option<String>,
    }

    /// One entry of the hash-chained audit log.
    #[derive(ToSchema)]
    pub struct AuditEvent {
        id: i64,
        at: String,
        event: String,
        actor: Option<String>,
        subject: Option<String>,
        organization_id: Option<String>,
        ip: Option<String>,
        user_agent: Option<String>,
        /// Event-specific fields.
        #[schema(value_type = Object)]
        details: serde_json::Value,
        /// This entry's link in the hash chain.
        hash: String,
    }

    /// `/me` with a personal API token: no session and no roles.
    #[derive(ToSchema)]
    pub struct ApiTokenMe {
        user_id: String,
        organization_id: Option<String>,
        /// Always empty.
        roles: Vec<String>,
        /// The permissions chosen for the token.
        permissions: Vec<String>,
        /// Always `null`.
        session_id: Option<String>,
        token_id: String,
        expires_at: String,
    }

    /// A login session's identity, or a personal API token's.
    #[derive(ToSchema)]
    #[serde(untagged)]
    pub enum MeResponse {
        Session(Me<'static>),
        ApiToken(ApiTokenMe),
    }

    /// RFC 7662: only `active` when the token is not live.
    #[derive(ToSchema)]
    pub struct Introspection {
        active: bool,
        /// `access_token`, `api_token` or `refresh_token`.
        token_type: Option<String>,
        /// The token's permissions, space-separated.
        scope: Option<String>,
        sub: Option<String>,
        username: Option<String>,
        exp: Option<i64>,
        iat: Option<i64>,
        nbf: Option<i64>,
        iss: Option<String>,
        aud: Option<String>,
        jti: Option<String>,
        sid: Option<String>,
        org: Option<String>,
        roles: Option<Vec<String>>,
    }

    /// RFC 6749 §5.2 error body.
    #[derive(ToSchema)]
    pub struct OAuthError {
        /// `invalid_client`.
        error: String,
        error_description: String,
    }
}
