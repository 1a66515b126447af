//! The browser pages: registration, activation, login, password reset,
//! organization signup, the user's dashboard and the operators' admin pages.
//!
//! Server-rendered HTML from minijinja templates compiled into the binary
//! (`apps/auth-server/web/`), Korean by default, English by switch or
//! `Accept-Language`; every string comes from the message catalogs. Pages
//! call the same `accounts` operations as the JSON API and add no rules of
//! their own.
//!
//! Browser session: the login session's refresh token in an HttpOnly,
//! SameSite=Lax cookie (Secure over TLS), read without spending it; logging
//! out, "sign out everywhere", a password reset or an admin disabling the
//! account ends it like any other session. Every form carries a CSRF token,
//! an HMAC of a random per-browser cookie under a server key. The CSP allows
//! scripts and styles from this origin only (no `unsafe-inline`).

mod account;
mod admin;
mod device;
mod form;
mod mfa;
pub mod oidc;
mod passkeys;
mod public;
mod visitor;

use std::collections::BTreeMap;

use accounts::{Locale, PermissionCatalog};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError, web};
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value};

pub use form::Form;
pub use oidc::{authorize, logout as relying_party_logout};
pub use visitor::{SignedIn, Visitor};

/// Every (method, path) the pages serve, relative to the native mount: the
/// start-up overlap check compares profiles against these too.
pub const PAGE_ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/lang/{locale}"),
    ("GET", "/static/{file}"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/login/mfa"),
    ("GET", "/step-up"),
    ("POST", "/step-up"),
    ("POST", "/logout"),
    ("GET", "/register"),
    ("POST", "/register"),
    ("POST", "/register/confirm"),
    ("GET", "/register/done"),
    ("GET", "/activate"),
    ("POST", "/activate"),
    ("GET", "/forgot-password"),
    ("POST", "/forgot-password"),
    ("GET", "/reset-password"),
    ("POST", "/reset-password"),
    ("GET", "/signup"),
    ("POST", "/signup/email"),
    ("POST", "/signup/code"),
    ("POST", "/signup/account"),
    ("GET", "/dashboard"),
    ("POST", "/dashboard/tokens"),
    ("POST", "/dashboard/tokens/{id}/revoke"),
    ("POST", "/dashboard/sessions/{id}/end"),
    ("POST", "/dashboard/sessions/end-all"),
    ("POST", "/dashboard/apps/{id}/revoke"),
    ("POST", "/dashboard/password"),
    ("GET", "/dashboard/mfa"),
    ("POST", "/dashboard/mfa/totp"),
    ("POST", "/dashboard/mfa/totp/confirm"),
    ("POST", "/dashboard/mfa/totp/remove"),
    ("POST", "/dashboard/mfa/recovery-codes"),
    ("POST", "/dashboard/mfa/passkeys/options"),
    ("POST", "/dashboard/mfa/passkeys"),
    ("POST", "/dashboard/mfa/passkeys/{id}/remove"),
    ("POST", "/login/passkey/options"),
    ("POST", "/login/passkey"),
    ("GET", "/admin"),
    ("GET", "/admin/registrations"),
    ("GET", "/admin/registrations/{id}"),
    ("POST", "/admin/registrations/{id}/approve"),
    ("POST", "/admin/registrations/{id}/reject"),
    ("GET", "/admin/users"),
    ("GET", "/admin/users/{id}"),
    ("POST", "/admin/users/{id}"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/clients"),
    ("POST", "/admin/clients/{id}/remove"),
    ("POST", "/oauth/authorize/consent"),
    ("GET", "/device"),
    ("POST", "/device"),
    ("POST", "/device/confirm"),
];

/// Routes of the pages, inside the native API's scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use web::{get, post, resource as at};
    cfg.service(at("/").route(get().to(public::home)))
        .service(at("/lang/{locale}").route(get().to(public::switch_language)))
        .service(at("/static/{file}").route(get().to(static_file)))
        .service(
            at("/login")
                .route(get().to(public::login_form))
                .route(post().to(public::login)),
        )
        .service(at("/login/mfa").route(post().to(mfa::login_second_step)))
        .service(at("/login/passkey/options").route(post().to(passkeys::sign_in_options)))
        .service(at("/login/passkey").route(post().to(passkeys::sign_in)))
        .service(
            at("/step-up")
                .route(get().to(mfa::step_up_form))
                .route(post().to(mfa::step_up)),
        )
        .service(at("/logout").route(post().to(account::logout)))
        .service(
            at("/register")
                .route(get().to(public::registration_form))
                .route(post().to(public::registration_review)),
        )
        .service(at("/register/confirm").route(post().to(public::registration_submit)))
        .service(at("/register/done").route(get().to(public::registration_done)))
        .service(
            at("/activate")
                .route(get().to(public::activation_form))
                .route(post().to(public::activate)),
        )
        .service(
            at("/forgot-password")
                .route(get().to(public::forgot_form))
                .route(post().to(public::forgot)),
        )
        .service(
            at("/reset-password")
                .route(get().to(public::reset_form))
                .route(post().to(public::reset)),
        )
        .service(at("/signup").route(get().to(public::signup_start)))
        .service(at("/signup/email").route(post().to(public::signup_email)))
        .service(at("/signup/code").route(post().to(public::signup_code)))
        .service(at("/signup/account").route(post().to(public::signup_account)))
        .service(at("/dashboard").route(get().to(account::dashboard)))
        .service(at("/dashboard/tokens").route(post().to(account::create_token)))
        .service(at("/dashboard/tokens/{id}/revoke").route(post().to(account::revoke_token)))
        .service(at("/dashboard/sessions/{id}/end").route(post().to(account::end_session)))
        .service(at("/dashboard/sessions/end-all").route(post().to(account::end_all_sessions)))
        .service(at("/dashboard/apps/{id}/revoke").route(post().to(account::revoke_consent)))
        .service(at("/dashboard/password").route(post().to(account::change_password)))
        .service(at("/dashboard/mfa").route(get().to(mfa::show)))
        .service(at("/dashboard/mfa/totp").route(post().to(mfa::begin)))
        .service(at("/dashboard/mfa/totp/confirm").route(post().to(mfa::confirm)))
        .service(at("/dashboard/mfa/totp/remove").route(post().to(mfa::remove)))
        .service(at("/dashboard/mfa/recovery-codes").route(post().to(mfa::regenerate)))
        .service(at("/dashboard/mfa/passkeys/options").route(post().to(passkeys::register_options)))
        .service(at("/dashboard/mfa/passkeys").route(post().to(passkeys::register)))
        .service(at("/dashboard/mfa/passkeys/{id}/remove").route(post().to(passkeys::remove)))
        .service(at("/admin").route(get().to(admin::index)))
        .service(at("/admin/registrations").route(get().to(admin::registrations)))
        .service(at("/admin/registrations/{id}").route(get().to(admin::registration)))
        .service(at("/admin/registrations/{id}/approve").route(post().to(admin::approve)))
        .service(at("/admin/registrations/{id}/reject").route(post().to(admin::reject)))
        .service(at("/admin/users").route(get().to(admin::users)))
        .service(
            at("/admin/users/{id}")
                .route(get().to(admin::user))
                .route(post().to(admin::update_user)),
        )
        .service(at("/admin/audit").route(get().to(admin::audit)))
        .service(at("/admin/clients").route(get().to(admin::clients)))
        .service(at("/admin/clients/{id}/remove").route(post().to(admin::remove_client)))
        .service(at("/oauth/authorize/consent").route(post().to(oidc::consent)))
        .service(
            at("/device")
                .route(get().to(device::form))
                .route(post().to(device::lookup)),
        )
        .service(at("/device/confirm").route(post().to(device::confirm)));
}

/// Templates, catalogs and keys, built once at start-up.
pub struct Pages {
    env: Environment<'static>,
    catalogs: BTreeMap<&'static str, Value>,
    csrf_key: ring::hmac::Key,
    secure_cookies: bool,
    /// The native mount prefix: every link and form starts with it.
    base: String,
    permissions: PermissionCatalog,
}

/// (file name, source) of every template, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../web/templates/base.html")),
    (
        "macros.html",
        include_str!("../../web/templates/macros.html"),
    ),
    ("home.html", include_str!("../../web/templates/home.html")),
    (
        "message.html",
        include_str!("../../web/templates/message.html"),
    ),
    ("login.html", include_str!("../../web/templates/login.html")),
    (
        "login_mfa.html",
        include_str!("../../web/templates/login_mfa.html"),
    ),
    ("mfa.html", include_str!("../../web/templates/mfa.html")),
    (
        "step_up.html",
        include_str!("../../web/templates/step_up.html"),
    ),
    (
        "mfa_enrol.html",
        include_str!("../../web/templates/mfa_enrol.html"),
    ),
    (
        "mfa_codes.html",
        include_str!("../../web/templates/mfa_codes.html"),
    ),
    (
        "register.html",
        include_str!("../../web/templates/register.html"),
    ),
    (
        "register_review.html",
        include_str!("../../web/templates/register_review.html"),
    ),
    (
        "activate.html",
        include_str!("../../web/templates/activate.html"),
    ),
    (
        "forgot.html",
        include_str!("../../web/templates/forgot.html"),
    ),
    ("reset.html", include_str!("../../web/templates/reset.html")),
    (
        "signup.html",
        include_str!("../../web/templates/signup.html"),
    ),
    (
        "dashboard.html",
        include_str!("../../web/templates/dashboard.html"),
    ),
    (
        "token_created.html",
        include_str!("../../web/templates/token_created.html"),
    ),
    (
        "admin_registrations.html",
        include_str!("../../web/templates/admin_registrations.html"),
    ),
    (
        "admin_registration.html",
        include_str!("../../web/templates/admin_registration.html"),
    ),
    (
        "admin_users.html",
        include_str!("../../web/templates/admin_users.html"),
    ),
    (
        "admin_user.html",
        include_str!("../../web/templates/admin_user.html"),
    ),
    (
        "admin_audit.html",
        include_str!("../../web/templates/admin_audit.html"),
    ),
    (
        "logout_confirm.html",
        include_str!("../../web/templates/logout_confirm.html"),
    ),
    (
        "device.html",
        include_str!("../../web/templates/device.html"),
    ),
    (
        "consent.html",
        include_str!("../../web/templates/consent.html"),
    ),
    (
        "choose_account.html",
        include_str!("../../web/templates/choose_account.html"),
    ),
    (
        "admin_clients.html",
        include_str!("../../web/templates/admin_clients.html"),
    ),
    (
        "admin_nav.html",
        include_str!("../../web/templates/admin_nav.html"),
    ),
];

const CATALOGS: &[(&str, &str)] = &[
    ("ko", include_str!("../../web/i18n/ko.toml")),
    ("en", include_str!("../../web/i18n/en.toml")),
];

const STATIC_FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../web/static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/static/app.js"),
    ),
    (
        "passkeys.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/static/passkeys.js"),
    ),
];

/// Scripts and styles from this origin only; forms post here only.
/// `connect-src 'self'`: the passkey script asks this server for options.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// A template or message catalog compiled into the binary does not parse
/// (a build defect, caught by the page tests).
#[derive(Debug, thiserror::Error)]
#[error("web pages: {0}")]
pub struct PagesError(String);

impl Pages {
    pub fn new(
        csrf_secret: &[u8],
        secure_cookies: bool,
        base: &str,
        permissions: PermissionCatalog,
    ) -> Result<Self, PagesError> {
        let mut env = Environment::new();
        // A missing catalog key or context value is a bug: fail loudly (the
        // page tests render every page) instead of printing nothing.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| PagesError(format!("template {name}: {e}")))?;
        }
        let mut catalogs = BTreeMap::new();
        for (lang, source) in CATALOGS {
            let table: toml::Table = toml::from_str(source)
                .map_err(|e| PagesError(format!("message catalog {lang}: {e}")))?;
            catalogs.insert(*lang, Value::from(Serde(&table)));
        }
        Ok(Self {
            env,
            catalogs,
            csrf_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, csrf_secret),
            secure_cookies,
            base: base.to_owned(),
            permissions,
        })
    }

    fn catalog(&self, locale: Locale) -> Value {
        self.catalogs
            .get(locale.as_str())
            .or_else(|| self.catalogs.get("ko"))
            .cloned()
            .unwrap_or_default()
    }

    /// Renders `template` with `context`; a template error is logged and
    /// becomes a plain 500 (never the error text).
    fn render(&self, template: &str, context: Value) -> Result<String, PageError> {
        self.env
            .get_template(template)
            .and_then(|t| t.render(context))
            .map_err(|e| {
                tracing::error!(template, error = %e, "page template failed");
                PageError::plain(StatusCode::INTERNAL_SERVER_ERROR)
            })
    }

    /// The cookie's name: `__Host-`-prefixed when cookies are Secure.
    fn cookie_name(&self, name: &str) -> String {
        if self.secure_cookies {
            format!("__Host-{name}")
        } else {
            name.to_owned()
        }
    }

    /// `path` under the native mount.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

async fn static_file(path: web::Path<String>) -> HttpResponse {
    match STATIC_FILES
        .iter()
        .find(|(name, ..)| *name == path.as_str())
    {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(*body),
        None => HttpResponse::NotFound()
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body("not found"),
    }
}

/// A finished HTML page, a redirect, or a failure rendered as a page.
/// Carried as an error so extractors (a page that needs a login) can answer
/// with a redirect or a page of their own.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    body: String,
    location: Option<String>,
    cookies: Vec<String>,
}

impl PageError {
    fn plain(status: StatusCode) -> Self {
        Self {
            status,
            body: format!(
                "<!DOCTYPE html><title>{status}</title><p>{}</p>",
                status.canonical_reason().unwrap_or("error")
            ),
            location: None,
            cookies: Vec::new(),
        }
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "page answered {}", self.status)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        html_response(
            self.status,
            &self.body,
            self.location.as_deref(),
            &self.cookies,
        )
    }
}

fn html_response(
    status: StatusCode,
    body: &str,
    location: Option<&str>,
    cookies: &[String],
) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ));
    if let Some(location) = location {
        response.insert_header((header::LOCATION, location));
    }
    for cookie in cookies {
        response.append_header((header::SET_COOKIE, cookie.as_str()));
    }
    response.body(body.to_owned())
}

/// What a page handler answers.
pub type PageResult = Result<HttpResponse, PageError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        match value {
            toml::Value::Table(table) => {
                for (k, v) in table {
                    keys(v, &format!("{prefix}{k}."), out);
                }
            }
            _ => out.push(prefix.trim_end_matches('.').to_owned()),
        }
    }

    #[test]
    fn every_catalog_has_the_same_keys() {
        let mut sets = CATALOGS.iter().map(|(lang, source)| {
            let value: toml::Value = toml::from_str(source).expect(lang);
            let mut out = Vec::new();
            keys(&value, "", &mut out);
            out.sort();
            (*lang, out)
        });
        let (first, reference) = sets.next().expect("a catalog");
        for (lang, set) in sets {
            let missing: Vec<_> = reference.iter().filter(|k| !set.contains(k)).collect();
            let extra: Vec<_> = set.iter().filter(|k| !reference.contains(k)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{lang} differs from {first}: missing {missing:?}, extra {extra:?}"
            );
        }
    }

    #[test]
    fn templates_parse_and_catalogs_load() {
        Pages::new(b"k", false, "", PermissionCatalog::default()).expect("pages build");
    }

    #[test]
    fn templates_hold_no_inline_script_or_style() {
        for (name, source) in TEMPLATES {
            for forbidden in ["<script>", "style=\"", "onclick=", "<style"] {
                assert!(
                    !source.contains(forbidden),
                    "{name} has {forbidden}: the CSP forbids inline code"
                );
            }
        }
    }
}
