//! actix-web integration for services that accept our tokens.
//!
//! Register a connected [`RemoteVerifier`] as app data, then:
//! - take [`Authenticated`] as a handler argument to get the verified token
//!   (a `401` problem+json answers requests without a valid one);
//! - wrap a route, resource or scope in [`Require`] to let only tokens with
//!   a permission through (`Require::permission`, `403 forbidden`
//!   otherwise), or only people who signed in with a second factor
//!   (`Require::second_factor`, `403 second_factor_required` otherwise:
//!   password-only sign-ins and API tokens) — or both; or call
//!   [`Authenticated::require`] inside a handler.
//!
//! The auth server makes the holders of `mfa_required_roles` (admins by
//! default) enrol a second factor before its own API serves them, but a
//! token issued to such a user before enrolment still carries their roles:
//! put `Require::second_factor()` on the routes they guard here too.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use auth_actix::{Authenticated, Require};
//! use auth_core::TokenPolicy;
//! use auth_core::remote::{RemoteConfig, RemoteVerifier};
//!
//! async fn send_sms(user: Authenticated) -> String {
//!     format!("sent on behalf of {}", user.user_id())
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let policy = TokenPolicy { issuer: "http://127.0.0.1:8080".into(), ..TokenPolicy::default() };
//!     let verifier = RemoteVerifier::connect(RemoteConfig::new("http://127.0.0.1:8080", policy))
//!         .await
//!         .expect("auth server reachable");
//!     HttpServer::new(move || {
//!         App::new().app_data(web::Data::new(verifier.clone())).service(
//!             web::resource("/sms")
//!                 .wrap(Require::permission("sms:send"))
//!                 .route(web::post().to(send_sms)),
//!         )
//!     })
//!     .bind(("127.0.0.1", 9000))?
//!     .run()
//!     .await
//! }
//! ```

use std::future::{Future, Ready, ready};
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use auth_core::remote::RemoteVerifier;
use auth_core::{Bearer, TokenError};

/// A request's verified bearer token. Dereferences to [`Bearer`].
#[derive(Clone, Debug)]
pub struct Authenticated(pub Bearer);

impl Deref for Authenticated {
    type Target = Bearer;

    fn deref(&self) -> &Bearer {
        &self.0
    }
}

impl Authenticated {
    /// `Ok` when the token grants `permission`, else the `403 forbidden` error.
    pub fn require(&self, permission: &str) -> Result<(), AuthError> {
        if self.has_permission(permission) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(permission.to_owned()))
        }
    }

    /// Verifies the request's token once; later calls for the same request
    /// (the guard, then the extractor) reuse the result.
    async fn of(req: &HttpRequest) -> Result<Authenticated, AuthError> {
        if let Some(done) = req.extensions().get::<Authenticated>() {
            return Ok(done.clone());
        }
        let verifier = verifier(req)?;
        let token = bearer_token(req)?;
        let bearer = verifier.verify(token).await.map_err(AuthError::Token)?;
        let authenticated = Authenticated(bearer);
        req.extensions_mut().insert(authenticated.clone());
        Ok(authenticated)
    }
}

impl FromRequest for Authenticated {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Authenticated, AuthError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Authenticated::of(&req).await })
    }
}

fn verifier(req: &HttpRequest) -> Result<RemoteVerifier, AuthError> {
    req.app_data::<web::Data<RemoteVerifier>>()
        .map(|data| data.get_ref().clone())
        .or_else(|| req.app_data::<RemoteVerifier>().cloned())
        .ok_or(AuthError::NotConfigured)
}

fn bearer_token(req: &HttpRequest) -> Result<&str, AuthError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::MissingToken)?;
    value
        .to_str()
        .ok()
        .and_then(auth_core::bearer_token)
        .ok_or(AuthError::MissingToken)
}

/// Why a request was refused: `401` for the token, `403` for permissions.
/// Answers as RFC 9457 problem+json with the auth server's `code` strings.
#[derive(Debug)]
pub enum AuthError {
    /// No `Authorization: Bearer <token>` header, or a malformed one.
    MissingToken,
    /// The token was refused; only its [`TokenError::code`] reaches the client.
    Token(TokenError),
    /// The token lacks this permission.
    Forbidden(String),
    /// The route is for people who signed in with a second factor; this
    /// token's sign-in had none (or it is an API token).
    SecondFactorRequired,
    /// No `RemoteVerifier` registered as app data: a bug in the service.
    NotConfigured,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingToken => {
                f.write_str("an Authorization: Bearer <token> header is required")
            }
            Self::Token(TokenError::Expired) => f.write_str("the access token has expired"),
            Self::Token(TokenError::Revoked) => f.write_str("the token has been revoked"),
            Self::Token(_) => f.write_str("the access token is invalid"),
            Self::Forbidden(permission) => write!(f, "this requires the permission {permission:?}"),
            Self::SecondFactorRequired => {
                f.write_str("this requires a sign-in with a second factor (a code or a passkey)")
            }
            Self::NotConfigured => f.write_str("the service cannot check tokens right now"),
        }
    }
}

impl AuthError {
    /// The stable error code, as the auth server itself uses them.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "invalid_token",
            Self::Token(e) => e.code(),
            Self::Forbidden(_) => "forbidden",
            Self::SecondFactorRequired => "second_factor_required",
            Self::NotConfigured => "internal_error",
        }
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::Token(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::SecondFactorRequired => StatusCode::FORBIDDEN,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        response
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            ))
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        // RFC 6750 §3: a 401 names the scheme, and the error for a bad token.
        let challenge = match self {
            Self::MissingToken => Some("Bearer".to_owned()),
            Self::Token(e) => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                e.code()
            )),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.insert_header((header::WWW_AUTHENTICATE, value));
        }
        response.body(
            serde_json::json!({
                "type": format!("urn:auth-server:problem:{}", self.code()),
                "title": status.canonical_reason().unwrap_or("Error"),
                "status": status.as_u16(),
                "detail": self.to_string(),
                "code": self.code(),
            })
            .to_string(),
        )
    }
}

/// Middleware that lets a request through only with a valid token that
/// meets its requirements: `401` without one, `403 forbidden` without the
/// permission, `403 second_factor_required` without a second factor. The
/// verified token is then available to the handler as [`Authenticated`]
/// without a second verification.
#[derive(Clone)]
pub struct Require {
    permission: Option<Rc<str>>,
    second_factor: bool,
}

/// The name this middleware had when it checked permissions only.
pub type RequirePermission = Require;

impl Require {
    /// Tokens granting `permission` (e.g. `"sms:send"`).
    pub fn permission(permission: &str) -> Require {
        Require {
            permission: Some(Rc::from(permission)),
            second_factor: false,
        }
    }

    /// Same as [`Require::permission`].
    pub fn new(permission: &str) -> Require {
        Require::permission(permission)
    }

    /// Tokens from a sign-in with a second factor (TOTP, a recovery code or
    /// a passkey); API tokens are refused.
    pub fn second_factor() -> Require {
        Require {
            permission: None,
            second_factor: true,
        }
    }

    /// This requirement, and a second factor as well.
    pub fn and_second_factor(mut self) -> Require {
        self.second_factor = true;
        self
    }

    fn check(&self, token: &Authenticated) -> Result<(), AuthError> {
        if self.second_factor && !token.has_second_factor() {
            return Err(AuthError::SecondFactorRequired);
        }
        match &self.permission {
            Some(permission) => token.require(permission),
            None => Ok(()),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Require
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequireService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireService {
            service: Rc::new(service),
            requirement: Rc::new(self.clone()),
        }))
    }
}

/// The service [`Require`] wraps around a route.
pub struct RequireService<S> {
    service: Rc<S>,
    requirement: Rc<Require>,
}

impl<S, B> Service<ServiceRequest> for RequireService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let requirement = self.requirement.clone();
        Box::pin(async move {
            let authenticated = Authenticated::of(req.request()).await?;
            requirement.check(&authenticated)?;
            service.call(req).await
        })
    }
}
