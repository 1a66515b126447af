//! Who is looking at a page: their language, their CSRF cookie and, when
//! signed in, their account. Every page handler starts from a [`Visitor`]
//! and answers through it, so every page gets the same headers, cookies and
//! base context.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use accounts::{IssuedTokens, Locale, UserView};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::ACCEPT_LANGUAGE;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::{Value, context};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{Form, PageError, PageResult, Pages, html_response};
use crate::http::error::ApiError;
use crate::http::extract::client_info;
use crate::http::run_blocking;
use crate::state::AppState;

// Over TLS the names carry the `__Host-` prefix, which browsers accept only
// with Secure, Path=/ and no Domain: a sibling subdomain can't plant them.
const SESSION_COOKIE: &str = "auth_session";
const CSRF_COOKIE: &str = "auth_csrf";
const LANG_COOKIE: &str = "auth_lang";

/// A signed-in browser: the account and the login session behind the cookie.
pub struct WebUser {
    pub view: UserView,
    pub session_id: String,
}

impl WebUser {
    pub fn is_admin(&self) -> bool {
        self.view.roles.iter().any(|r| r == "admin")
    }

    pub fn is_manager(&self) -> bool {
        self.is_admin() || self.view.roles.iter().any(|r| r == "org_admin")
    }
}

pub struct Visitor {
    pub pages: web::Data<Pages>,
    pub state: web::Data<AppState>,
    pub req: HttpRequest,
    pub locale: Locale,
    pub user: Option<WebUser>,
    csrf_cookie: String,
    new_csrf_cookie: bool,
    /// The session cookie's token got a later deadline on this request (it
    /// was past half its idle life): the cookie is sent again with the new
    /// Max-Age.
    renewed: Option<(String, i64)>,
    /// The session behind the cookie was ended on this request: the cookie
    /// is cleared with the answer.
    session_ended: bool,
}

/// What went wrong with a form, for the page that shows it again: a general
/// message (a catalog code) and messages next to fields.
#[derive(Default)]
pub struct Feedback {
    pub error: Option<String>,
    pub fields: BTreeMap<String, String>,
}

fn cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Which field a refusal is about, when it is about one.
fn field_of(code: &str) -> Option<&'static str> {
    Some(match code {
        "email_taken" | "email_domain_not_allowed" | "email_not_verified" => "email",
        "registration_pending" => "contact_email",
        "username_taken" => "username",
        "weak_password" => "password",
        "invalid_code" | "too_many_attempts" => "code",
        "permission_not_held" => "permissions",
        _ => return None,
    })
}

impl FromRequest for Visitor {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (Some(pages), Some(state)) = (
                req.app_data::<web::Data<Pages>>().cloned(),
                req.app_data::<web::Data<AppState>>().cloned(),
            ) else {
                return Err(PageError::plain(StatusCode::INTERNAL_SERVER_ERROR));
            };
            let name = |base: &str| pages.cookie_name(base);
            let locale = cookie(&req, &name(LANG_COOKIE))
                .and_then(Locale::parse)
                .or_else(|| {
                    req.headers()
                        .get(ACCEPT_LANGUAGE)
                        .and_then(|v| v.to_str().ok())
                        .map(Locale::from_accept_language)
                })
                .unwrap_or_default();
            let (csrf_cookie, new_csrf_cookie) = match cookie(&req, &name(CSRF_COOKIE)) {
                Some(c) if c.len() == 43 && URL_SAFE_NO_PAD.decode(c).is_ok() => {
                    (c.to_owned(), false)
                }
                _ => (random_token(), true),
            };
            let session = cookie(&req, &name(SESSION_COOKIE))
                .filter(|t| !t.is_empty() && t.len() <= 256)
                .map(str::to_owned);
            let mut visitor = Visitor {
                pages,
                state,
                req,
                locale,
                user: None,
                csrf_cookie,
                new_csrf_cookie,
                renewed: None,
                session_ended: false,
            };
            if let Some(token) = session {
                let accounts = visitor.state.accounts.clone();
                let origin = client_info(&visitor.req);
                let cookie_token = token.clone();
                // The rules (reuse, channel, sliding expiry) are the
                // operation's: `Accounts::browser_session`.
                let found = run_blocking(move || accounts.browser_session(&token, &origin)).await;
                match found {
                    Ok(Ok(Some(session))) => {
                        visitor.renewed = session.extended_for.map(|secs| (cookie_token, secs));
                        visitor.user = Some(WebUser {
                            view: session.user,
                            session_id: session.session_id,
                        });
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e @ accounts::AccountsError::RefreshTokenReused(_))) => {
                        // The cookie's token was used elsewhere: the session
                        // is over, here as at the refresh endpoint.
                        visitor.state.metrics.record_refresh_reuse();
                        visitor.session_ended = true;
                        return Err(visitor.failure(ApiError::from(e)));
                    }
                    Ok(Err(e)) => return Err(visitor.failure(ApiError::from(e))),
                    Err(e) => return Err(visitor.failure(e)),
                }
            }
            Ok(visitor)
        })
    }
}

impl Visitor {
    /// The CSRF token for this browser's forms: bound to its CSRF cookie
    /// and to its login session (none before login; the cookie is renewed
    /// at login), so a planted cookie pair can't outlive a login.
    fn csrf_token(&self) -> String {
        let session = self.user.as_ref().map_or("", |u| u.session_id.as_str());
        let mut context = ring::hmac::Context::with_key(&self.pages.csrf_key);
        context.update(self.csrf_cookie.as_bytes());
        context.update(b"|");
        context.update(session.as_bytes());
        URL_SAFE_NO_PAD.encode(context.sign().as_ref())
    }

    /// Refuses a form without this browser's CSRF token (a form posted from
    /// another site, or from a page older than the cookie).
    pub fn check_csrf(&self, form: &Form) -> Result<(), PageError> {
        let sent = form.raw("csrf").as_bytes();
        let expected = self.csrf_token();
        let valid = !self.new_csrf_cookie && bool::from(sent.ct_eq(expected.as_bytes()));
        if valid {
            Ok(())
        } else {
            tracing::info!("form refused: missing or wrong CSRF token");
            Err(self.message_error(StatusCode::FORBIDDEN, "csrf"))
        }
    }

    fn cookie_attributes(&self) -> &'static str {
        if self.pages.secure_cookies {
            "; Path=/; HttpOnly; SameSite=Lax; Secure"
        } else {
            "; Path=/; HttpOnly; SameSite=Lax"
        }
    }

    fn set_cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let max_age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
        format!(
            "{}={value}{max_age}{}",
            self.pages.cookie_name(name),
            self.cookie_attributes()
        )
    }

    fn cookies(&self) -> Vec<String> {
        let mut cookies = Vec::new();
        if self.new_csrf_cookie {
            cookies.push(self.set_cookie(CSRF_COOKIE, &self.csrf_cookie, None));
        }
        if let Some((token, expires_in)) = &self.renewed {
            cookies.push(self.set_cookie(SESSION_COOKIE, token, Some((*expires_in).max(0))));
        }
        if self.session_ended {
            cookies.push(self.set_cookie(SESSION_COOKIE, "", Some(0)));
        }
        cookies
    }

    /// The GET page this request belongs to, under the native mount: the
    /// request itself for a GET, else the nearest page above the form's
    /// action (`/dashboard/tokens` → `/dashboard`), so "come back here"
    /// and the language switch never land on a POST-only URL.
    fn page_path(&self) -> String {
        let uri = self.req.uri();
        let base = self.pages.base.as_str();
        if self.req.method() == actix_web::http::Method::GET {
            let full = uri.path_and_query().map_or("/", |p| p.as_str());
            return full.strip_prefix(base).unwrap_or(full).to_owned();
        }
        let mut path = uri
            .path()
            .strip_prefix(base)
            .unwrap_or(uri.path())
            .to_owned();
        loop {
            if is_get_page(&path) {
                return path;
            }
            match path.rfind('/') {
                Some(0) | None => return "/".to_owned(),
                Some(i) => path.truncate(i),
            }
        }
    }

    /// The context every template gets, with the page's own values.
    fn context(&self, page: Value) -> Value {
        let user = self.user.as_ref().map(|u| {
            context! {
                email => u.view.email.clone(),
                name => u.view.name.clone(),
                is_admin => u.is_admin(),
                is_manager => u.is_manager(),
            }
        });
        let page_path = self.page_path();
        let here = self.pages.url(&page_path);
        context! {
            m => self.pages.catalog(self.locale),
            lang => self.locale.as_str(),
            base => self.pages.base.clone(),
            csrf => self.csrf_token(),
            passkeys_here => self.state.accounts.passkeys_available(),
            passkey_rp => self.state.accounts.passkey_rp_id(),
            user => user,
            here => here,
            // The same page under the mount, for `next=` of our own forms
            // (the step-up link: authenticate again, then back here).
            here_path => page_path,
            ..page
        }
    }

    pub fn page(&self, template: &str, page: Value) -> PageResult {
        self.page_with_status(StatusCode::OK, template, page)
    }

    pub fn page_with_status(&self, status: StatusCode, template: &str, page: Value) -> PageResult {
        let body = self.pages.render(template, self.context(page))?;
        Ok(html_response(status, &body, None, &self.cookies()))
    }

    /// A form shown again with what went wrong; the status says why (422 for
    /// invalid input, 409 for a conflict …), so scripts see it too.
    pub fn form_again(
        &self,
        error: &ApiError,
        template: &str,
        page: Value,
        rename: &[(&str, &str)],
    ) -> PageResult {
        let feedback = self.feedback(error, rename);
        let page = context! {
            error => feedback.error,
            fields => feedback.fields,
            ..page
        };
        let mut response = self.page_with_status(error.status, template, page)?;
        if let Some((name, seconds)) = error.retry_after_header() {
            response.headers_mut().insert(name, seconds.into());
        }
        Ok(response)
    }

    /// 303 to `path` under the native mount.
    pub fn redirect(&self, path: &str) -> HttpResponse {
        let location = self.pages.url(path);
        html_response(StatusCode::SEE_OTHER, "", Some(&location), &self.cookies())
    }

    /// Signs the browser in to the new session and goes to `path`.
    pub fn signed_in(&self, tokens: &IssuedTokens, path: &str) -> HttpResponse {
        let mut cookies = self.cookies();
        cookies.push(self.set_cookie(
            SESSION_COOKIE,
            tokens.refresh_token.expose_secret(),
            Some(tokens.refresh_expires_in.max(0)),
        ));
        // A new CSRF cookie with the new session: nothing set before login
        // carries over.
        let csrf = self.pages.cookie_name(CSRF_COOKIE);
        cookies.retain(|c| !c.starts_with(&format!("{csrf}=")));
        cookies.push(self.set_cookie(CSRF_COOKIE, &random_token(), None));
        self.go_on(path, &cookies)
    }

    /// Goes to `path` (under the native mount) after a form: a 303, or, for
    /// the authorization endpoint, a page that goes on by itself. That
    /// endpoint may send the browser on to a relying party, and browsers
    /// hold a redirect that follows a form to the form page's CSP
    /// (`form-action 'self'`); a page loaded afresh starts a new navigation.
    pub fn go_on(&self, path: &str, cookies: &[String]) -> HttpResponse {
        let location = self.pages.url(path);
        if path.starts_with("/oauth/") {
            continue_page(self.locale.as_str(), &location, cookies)
        } else {
            html_response(StatusCode::SEE_OTHER, "", Some(&location), cookies)
        }
    }

    /// [`go_on`](Self::go_on) with this visitor's cookies.
    pub fn proceed(&self, path: &str) -> HttpResponse {
        self.go_on(path, &self.cookies())
    }

    /// Sends the browser to a relying party's URL (already checked against
    /// its registration): a 303, or after a form a page that goes on by
    /// itself (see [`go_on`](Self::go_on)).
    pub fn to_relying_party(&self, url: &str, after_form: bool) -> HttpResponse {
        if after_form {
            continue_page(self.locale.as_str(), url, &self.cookies())
        } else {
            html_response(StatusCode::SEE_OTHER, "", Some(url), &self.cookies())
        }
    }

    /// A refusal that sends the browser to `url` (a relying party's
    /// redirect URI with an error), as an error for extractors' callers.
    pub fn redirect_error(&self, url: &str) -> PageError {
        PageError {
            status: StatusCode::SEE_OTHER,
            body: String::new(),
            location: Some(url.to_owned()),
            cookies: self.cookies(),
        }
    }

    /// Forgets the session cookie and goes to `path`.
    pub fn signed_out(&self, path: &str) -> HttpResponse {
        self.signed_out_to(&self.pages.url(path))
    }

    /// Forgets the session cookie and goes to `location` (a full URL, or a
    /// path already under the mount).
    pub fn signed_out_to(&self, location: &str) -> HttpResponse {
        let mut cookies = self.cookies();
        cookies.push(self.set_cookie(SESSION_COOKIE, "", Some(0)));
        html_response(StatusCode::SEE_OTHER, "", Some(location), &cookies)
    }

    /// Remembers the chosen language for a year and goes to `path`.
    pub fn language_chosen(&self, locale: Locale, path: &str) -> HttpResponse {
        let mut cookies = self.cookies();
        cookies.push(self.set_cookie(LANG_COOKIE, locale.as_str(), Some(31_536_000)));
        html_response(StatusCode::SEE_OTHER, "", Some(path), &cookies)
    }

    /// A page with one message from the catalog's `notice` table.
    pub fn notice(&self, key: &str) -> PageResult {
        self.page("message.html", context! { notice => key, error => () })
    }

    fn message_error(&self, status: StatusCode, code: &str) -> PageError {
        let page = context! { notice => (), error => code };
        match self.pages.render("message.html", self.context(page)) {
            Ok(body) => PageError {
                status,
                body,
                location: None,
                cookies: self.cookies(),
            },
            Err(e) => e,
        }
    }

    /// The query string as `T`. A page's query that does not parse (a
    /// parameter given twice, say) is an error page, not the API's
    /// problem+json: a browser follows these links.
    pub fn query<T: serde::de::DeserializeOwned>(&self) -> Result<T, PageError> {
        web::Query::<T>::from_query(self.req.query_string())
            .map(web::Query::into_inner)
            .map_err(|_| self.message_error(StatusCode::BAD_REQUEST, "invalid_query"))
    }

    /// A refusal or failure as a page: the localized message for its stable
    /// code, never internal text.
    pub fn failure(&self, error: ApiError) -> PageError {
        self.message_error(error.status, error.code)
    }

    /// The localized messages for a refusal.
    pub fn feedback(&self, error: &ApiError, rename: &[(&str, &str)]) -> Feedback {
        let catalog = self.pages.catalog(self.locale);
        let lookup = |table: &str, key: &str| -> Option<String> {
            let value = catalog.get_attr(table).ok()?.get_attr(key).ok()?;
            value.as_str().map(str::to_owned)
        };
        let generic_invalid = lookup("invalid", "generic").unwrap_or_default();
        let renamed = |field: &str| -> String {
            rename
                .iter()
                .find(|(from, _)| *from == field)
                .map_or(field, |(_, to)| to)
                .to_owned()
        };
        let mut feedback = Feedback::default();
        if error.code == "validation_failed" && !error.errors.is_empty() {
            for field in error.fields() {
                let message = lookup("invalid", field).unwrap_or_else(|| generic_invalid.clone());
                feedback.fields.insert(renamed(field), message);
            }
        } else if let Some(field) =
            // A 429 with Retry-After is a limit on the whole form, not on the code.
            field_of(error.code).filter(|_| error.retry_after.is_none())
        {
            let message = lookup("errors", error.code).unwrap_or_else(|| generic_invalid.clone());
            feedback.fields.insert(renamed(field), message);
        } else {
            feedback.error = Some(error.code.to_owned());
        }
        feedback
    }
}

/// A page that loads `url` at once (a meta refresh, which the CSP allows),
/// with a link for browsers that don't.
fn continue_page(lang: &str, url: &str, cookies: &[String]) -> HttpResponse {
    let url = html_escape(url);
    let body = format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={url}\"><title>계속 · Continue</title></head>\
         <body><main><p><a id=\"continue\" href=\"{url}\">계속 · Continue</a></p></main></body></html>"
    );
    html_response(StatusCode::OK, &body, None, cookies)
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A visitor who must be signed in; others are sent to the login page,
/// which brings them back here afterwards.
pub struct SignedIn(pub Visitor);

impl SignedIn {
    pub fn user(&self) -> &WebUser {
        self.0.user.as_ref().expect("checked at extraction")
    }
}

impl FromRequest for SignedIn {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let visitor = Visitor::from_request(req, payload);
        Box::pin(async move {
            let visitor = visitor.await?;
            if let Some(user) = &visitor.user {
                // Roles that must have a second factor reach nothing but its
                // enrolment (and logging out) until they have one.
                let path = visitor.page_path();
                // Step-up too: enrolling is itself a sensitive operation.
                let open = path.starts_with("/dashboard/mfa")
                    || path.starts_with("/step-up")
                    || path.starts_with("/logout");
                let required = &visitor.state.accounts.mfa_policy().required_roles;
                if !open && user.view.roles.iter().any(|r| required.contains(r)) {
                    let accounts = visitor.state.accounts.clone();
                    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
                    let must =
                        run_blocking(move || accounts.session_must_enrol(&user_id, &session_id))
                            .await
                            .and_then(|r| r.map_err(ApiError::from));
                    match must {
                        Ok(false) => {}
                        Ok(true) => {
                            return Err(PageError {
                                status: StatusCode::SEE_OTHER,
                                body: String::new(),
                                location: Some(visitor.pages.url("/dashboard/mfa")),
                                cookies: visitor.cookies(),
                            });
                        }
                        Err(e) => return Err(visitor.failure(e)),
                    }
                }
                return Ok(SignedIn(visitor));
            }
            let back = visitor.page_path();
            let next: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
            Err(PageError {
                status: StatusCode::SEE_OTHER,
                body: String::new(),
                location: Some(visitor.pages.url(&format!("/login?next={next}"))),
                cookies: visitor.cookies(),
            })
        })
    }
}

/// A local path to go back to after login, or the dashboard. Never another
/// site: not `//host` or `/\host`, and no control characters or spaces at
/// all (browsers drop tabs and newlines, so `/<tab>/host` becomes `//host`).
pub fn safe_next(next: &str) -> &str {
    // Our own `next` values are percent-encoded ASCII; anything else would
    // reach the Location header raw.
    let local = next.starts_with('/')
        && !next[1..].starts_with(['/', '\\'])
        && next.chars().all(|c| c.is_ascii_graphic());
    if local { next } else { "/dashboard" }
}

/// Whether `path` (no query) is one of the pages served by GET.
fn is_get_page(path: &str) -> bool {
    super::PAGE_ROUTES.iter().any(|(method, pattern)| {
        *method == "GET"
            && !pattern.starts_with("/static")
            && pattern.split('/').count() == path.split('/').count()
            && pattern
                .split('/')
                .zip(path.split('/'))
                .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        for ok in [
            "/dashboard",
            "/admin/users?q=a%20b",
            "/dashboard#tokens",
            "/",
        ] {
            assert_eq!(safe_next(ok), ok);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "https://evil.example",
            "evil.example",
            "/login?é",
            "/\u{fffd}",
            "/a\u{7f}",
            "",
        ] {
            assert_eq!(safe_next(bad), "/dashboard", "{bad:?}");
        }
    }

    #[test]
    fn get_pages_are_found_by_pattern() {
        assert!(is_get_page("/dashboard"));
        assert!(is_get_page("/admin/registrations/abc"));
        assert!(!is_get_page("/dashboard/tokens"));
        assert!(!is_get_page("/admin/registrations/abc/approve"));
        assert!(!is_get_page("/static/app.css"));
    }
}
