//! Cross-origin answers for browser apps served from other origins: one
//! policy for every route, applied by [`super::finish_response`].
//!
//! CORS is off unless `cors_allowed_origins` lists origins, and only a
//! listed `Origin` gets anything (echoed, never `*`). The API carries its
//! tokens in headers, not cookies, so no answer allows credentials: a
//! listed origin reads what an anonymous request would get, and sends the
//! bearer token itself. Only the API's routes (those of the route tables
//! that are not pages) answer CORS: not pages (HTML forms with a session
//! cookie), not any other HTML answer, not `/metrics`, not static files or
//! the API documentation's assets, not unknown paths. A front-end with its own policy sets
//! `Access-Control-Allow-Origin` itself (the buzzbook profile: its seed
//! exposes the token headers and allows credentials) and is left as it is.
//!
//! Preflights: no route answers `OPTIONS`, so a preflight ends as a 405;
//! from a listed origin, for a route that exists, it becomes a 204 naming
//! the route's methods (the same table as `Allow`).

use actix_web::HttpRequest;
use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, web};

use super::Route;
use crate::state::AppState;

/// What a browser app may send besides the CORS-safelisted headers.
const ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("Authorization, Content-Type, Accept-Language, X-Request-Id");
/// What a browser app may read besides the CORS-safelisted headers.
const EXPOSE_HEADERS: HeaderValue =
    HeaderValue::from_static("Retry-After, WWW-Authenticate, X-Request-Id");
/// How long a browser may keep a preflight's answer.
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");
const ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

/// A page, whatever route answered it (the API documentation's, an error
/// page of the authorization endpoint).
fn is_html(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// The request's `Origin` when the operator listed it.
pub(crate) fn allowed_origin<'a>(
    req: &'a HttpRequest,
    state: &AppState,
) -> Option<&'a HeaderValue> {
    let origin = req.headers().get(header::ORIGIN)?;
    state
        .cors_allowed_origins
        .iter()
        .any(|allowed| origin == allowed.as_str())
        .then_some(origin)
}

/// Whether [`answer`] has anything to do for this answer: CORS is on, and
/// the request sent `Origin`, or the answer may be kept by a shared cache
/// (the JWKS, the discovery document), which must then be told that the
/// answer to a browser app differs (`Vary: Origin`) and not hand this one
/// to it. Cheap first, so that answers cost nothing more while CORS is
/// off, the default.
pub(super) fn applies<B>(response: &ServiceResponse<B>) -> bool {
    let req = response.request();
    (req.headers().contains_key(header::ORIGIN) || shared_cacheable(response.headers()))
        && req
            .app_data::<web::Data<AppState>>()
            .is_some_and(|state| !state.cors_allowed_origins.is_empty())
}

/// An answer whose `Cache-Control` lets a shared cache keep it.
fn shared_cacheable(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            !v.contains("no-store")
                && !v.contains("private")
                && (v.contains("public") || v.contains("max-age"))
        })
}

/// `response` with the CORS answer for its request, for which [`applies`];
/// `route` is the matched route's entry in the route tables (`None`: not
/// one of the API's routes).
pub(super) fn answer<B>(
    mut response: ServiceResponse<EitherBody<B>>,
    route: Option<&Route>,
) -> ServiceResponse<EitherBody<B>> {
    let req = response.request();
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return response;
    };
    let Some(route) = route.filter(|r| !r.no_cors) else {
        return response;
    };
    if is_html(response.headers())
        || response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        return response;
    }
    // The answer depends on `Origin` whenever CORS is on, allowed or not.
    let Some(origin) = allowed_origin(req, state).cloned() else {
        response.headers_mut().append(header::VARY, ORIGIN);
        return response;
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        && response.status() == StatusCode::METHOD_NOT_ALLOWED;
    if preflight {
        let answer = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, route.allow.clone()))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE))
            .insert_header((header::VARY, ORIGIN))
            .finish();
        return response.into_response(answer).map_into_right_body();
    }
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
    headers.append(header::VARY, ORIGIN);
    response
}
