//! Request extractors: bodies (JSON or form, with problem+json errors),
//! bearer authentication, and the caller's address and user agent.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use accounts::{Actor, AuditContext, ClientInfo, Role};
use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, QueryPayloadError, UrlencodedError};
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, web};
use auth_core::{AccessClaims, ApiTokenClaims};
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};
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
    web::QueryConfig::default().error_handler(|e, _| {
        let problem = match &e {
            QueryPayloadError::Deserialize(e) => data_error("", &e.to_string()),
            _ => None,
        };
        invalid(BodyKind::Query, problem).into()
    })
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

/// For endpoints that take forms only (OAuth introspection and revocation).
fn form_expected() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send application/x-www-form-urlencoded",
    )
}

/// 400 `invalid_request`: what we say, and the field that failed if known
/// (a body of the wrong kind altogether, `null` or `[]`, has none).
/// The parser's own message never reaches the client.
fn invalid(body: BodyKind, problem: Option<FieldError>) -> ApiError {
    match problem {
        Some(problem) => {
            let mut e = ApiError::bad_request(match body {
                BodyKind::Form => "the form body does not have the expected fields; see errors",
                BodyKind::Json => "the JSON body does not have the expected fields; see errors",
                BodyKind::Query => "the query string could not be read; see errors",
            });
            e.errors.push(problem);
            e
        }
        None => ApiError::bad_request(match body {
            BodyKind::Form => "the form body does not have the expected fields",
            BodyKind::Json => "the JSON body must be an object with the documented fields",
            BodyKind::Query => "the query string could not be read",
        }),
    }
}

/// Where the fields were read from.
#[derive(Clone, Copy)]
enum BodyKind {
    Json,
    Form,
    Query,
}

fn unreadable() -> ApiError {
    ApiError::bad_request("the request body could not be read")
}

fn json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            too_large()
        }
        JsonPayloadError::ContentType => unsupported_media_type(),
        JsonPayloadError::Deserialize(e) => json_data_error("", &e),
        _ => unreadable(),
    }
}

fn form_error(e: UrlencodedError) -> ApiError {
    match e {
        UrlencodedError::Overflow { .. } => too_large(),
        UrlencodedError::ContentType => form_expected(),
        UrlencodedError::Parse(e) => invalid(BodyKind::Form, data_error("", &e.to_string())),
        _ => unreadable(),
    }
}

fn json_data_error(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => invalid(BodyKind::Json, data_error(path, &e.to_string())),
        Category::Syntax | Category::Eof => {
            ApiError::bad_request("the request body is not valid JSON")
        }
        Category::Io => unreadable(),
    }
}

/// Reads a JSON body into `T`; a failure names the field and what was wrong
/// with it (`expected_string`, `required`, …), never in the parser's words.
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| json_data_error(&e.path().to_string(), e.inner()))?;
    deserializer
        .end()
        .map_err(|_| ApiError::bad_request("the request body is not valid JSON"))?;
    Ok(value)
}

/// Reads an `application/x-www-form-urlencoded` body into `T`, like [`from_json`].
pub fn from_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(body));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        invalid(
            BodyKind::Form,
            data_error(&e.path().to_string(), &e.inner().to_string()),
        )
    })
}

/// The field and stable code behind a deserializer's data error. Reads
/// serde's message (which we never send): `missing field `x``,
/// `invalid type: integer `1`, expected a string`, `unknown field `x``, …
/// `path` is where the deserializer was (`.` or empty at the top).
pub(crate) fn data_error(path: &str, message: &str) -> Option<FieldError> {
    let path = path.trim_start_matches('.');
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = || message.split('`').nth(1).map(str::to_owned);
    let (field, code) = if message.starts_with("missing field") {
        (join(&quoted()?), "required")
    } else if message.starts_with("unknown field") {
        (join(&quoted()?), "unknown_field")
    } else if message.starts_with("duplicate field") {
        (join(&quoted()?), "duplicate_field")
    } else if let Some(rest) = message.strip_prefix("invalid type: ") {
        let expected = rest.rsplit_once(", expected ").map_or("", |(_, e)| e);
        (path.to_owned(), expected_code(expected))
    } else if message.starts_with("invalid length") {
        (path.to_owned(), "invalid_length")
    } else {
        (path.to_owned(), "invalid_value")
    };
    if field.is_empty() {
        return None;
    }
    let (en, ko) = data_error_text(code);
    Some(FieldError::new(field, code, en, ko))
}

/// `expected a string at line 1 column 5` → `expected_string`.
fn expected_code(expected: &str) -> &'static str {
    let expected = expected.split(" at line ").next().unwrap_or_default();
    let word = expected
        .trim_start_matches("a ")
        .trim_start_matches("an ")
        .trim_start_matches("borrowed ");
    match word {
        w if w.starts_with("string") || w.starts_with("char") => "expected_string",
        w if w.starts_with("bool") => "expected_boolean",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" | "integer" => "expected_integer",
        "f32" | "f64" | "number" => "expected_number",
        w if w.starts_with("sequence") || w.starts_with("array") || w.starts_with("tuple") => {
            "expected_array"
        }
        w if w.starts_with("map") || w.starts_with("struct") => "expected_object",
        _ => "invalid_type",
    }
}

/// English and Korean sentences for the codes of [`data_error`].
fn data_error_text(code: &str) -> (&'static str, &'static str) {
    match code {
        "required" => ("is required", "필수 항목입니다."),
        "unknown_field" => (
            "is not a field of this request",
            "이 요청에 없는 항목입니다.",
        ),
        "duplicate_field" => ("is given twice", "두 번 들어 있습니다."),
        "expected_string" => ("must be a string", "문자열이어야 합니다."),
        "expected_boolean" => ("must be true or false", "true 또는 false여야 합니다."),
        "expected_integer" => ("must be an integer", "정수여야 합니다."),
        "expected_number" => ("must be a number", "숫자여야 합니다."),
        "expected_array" => ("must be an array", "배열이어야 합니다."),
        "expected_object" => ("must be an object", "객체여야 합니다."),
        "invalid_length" => (
            "has the wrong number of items",
            "항목 수가 올바르지 않습니다.",
        ),
        "invalid_type" => ("has the wrong type", "형식이 올바르지 않습니다."),
        _ => ("has a value that is not allowed", "허용되지 않는 값입니다."),
    }
}

/// An optional integer as JSON writes them: `2`, and `2.0` too (JSON has one
/// number type, and JSON Schema's `integer` includes `2.0`); in a form, its
/// digits. Up to ±(2^53 − 1), the integers every JSON client reads exactly.
pub fn optional_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::{Error, Unexpected};
    let max = super::schema::JSON_SAFE_INTEGER;
    let whole = |f: f64| (f.fract() == 0.0 && f.abs() <= max as f64).then_some(f as i64);
    let value: Option<serde_json::Value> = serde::Deserialize::deserialize(d)?;
    let number = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().and_then(whole)),
        Some(serde_json::Value::String(s)) => s
            .parse::<i64>()
            .ok()
            .or_else(|| s.parse::<f64>().ok().and_then(whole)),
        Some(_) => None,
    };
    match number {
        Some(n) if n.unsigned_abs() <= max.unsigned_abs() => Ok(Some(n)),
        _ => Err(D::Error::invalid_type(
            Unexpected::Other("a value"),
            &"an integer",
        )),
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
        let form = mime == "application/x-www-form-urlencoded";
        if !form && mime != "application/json" && !mime.ends_with("+json") {
            return Box::pin(async { Err(unsupported_media_type().into()) });
        }
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = body.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    unreadable()
                }
            })?;
            if body.len() > BODY_LIMIT {
                return Err(too_large().into());
            }
            let value = if form {
                from_form(&body)?
            } else {
                from_json(&body)?
            };
            Ok(JsonOrForm(value))
        })
    }
}

/// Whoever a verified, unrevoked bearer token speaks for. Checking it reads
/// no database: the signature and claims are checked with the in-memory key
/// set, revocation against the in-memory revocation set.
#[derive(Clone, Debug)]
// Unboxed: it lives in an `Arc` in the token cache already.
#[allow(clippy::large_enum_variant)]
pub enum Principal {
    /// A login session's access token.
    Session(AccessClaims),
    /// A personal API token: the holder's chosen subset of permissions, no roles.
    ApiToken(ApiTokenClaims),
}

impl Principal {
    pub fn user_id(&self) -> &str {
        match self {
            Self::Session(c) => &c.sub,
            Self::ApiToken(c) => &c.sub,
        }
    }

    pub fn organization_id(&self) -> Option<&str> {
        match self {
            Self::Session(c) => c.org.as_deref(),
            Self::ApiToken(c) => c.org.as_deref(),
        }
    }

    pub fn permissions(&self) -> &[String] {
        match self {
            Self::Session(c) => &c.perms,
            Self::ApiToken(c) => &c.perms,
        }
    }
}

/// Any valid token: a session's access token or a personal API token.
/// Shared with the verified-token cache: a hit costs a reference count, not
/// a copy of every claim.
pub struct Authenticated(pub Arc<Principal>);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authenticate(req).and_then(|principal| {
            if let Principal::Session(claims) = &*principal {
                require_enrolled(req, claims)?;
            }
            Ok(Authenticated(principal))
        }))
    }
}

/// Refuses a session whose user must enrol a second factor first
/// ([`accounts::Accounts::must_enrol`]): `403 mfa_enrollment_required`.
fn require_enrolled(req: &HttpRequest, claims: &AccessClaims) -> Result<(), ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(ApiError::internal)?;
    if state.accounts.must_enrol(claims) {
        return Err(accounts::AccountsError::MfaEnrollmentRequired.into());
    }
    Ok(())
}

/// A session's access token, also of a user who must still enrol a second
/// factor: only for the enrolment itself, `/me` and logout.
pub struct Enrolling(pub AccessClaims);

impl FromRequest for Enrolling {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(session_claims(req).map(Enrolling))
    }
}

fn session_claims(req: &HttpRequest) -> Result<AccessClaims, ApiError> {
    match Arc::unwrap_or_clone(authenticate(req)?) {
        Principal::Session(claims) => Ok(claims),
        Principal::ApiToken(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this endpoint needs a login session; API tokens can't use it",
        )),
    }
}

/// A session's access token. Account management (logout, passwords, API
/// tokens) needs a real login: an API token can't mint or manage tokens.
pub struct Bearer(pub AccessClaims);

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(session_claims(req).and_then(|claims| {
            require_enrolled(req, &claims)?;
            Ok(Bearer(claims))
        }))
    }
}

/// An operator (`admin` role) acting through a session.
pub struct AdminActor(pub Actor);

/// An operator or an organization admin (limited to their organization).
pub struct ManagerActor(pub Actor);

fn actor(req: &HttpRequest, allowed: &[Role]) -> Result<Actor, ApiError> {
    let Bearer(claims) = Bearer::from_request(req, &mut Payload::None).into_inner()?;
    let permitted = claims
        .roles
        .iter()
        .any(|r| Role::parse(r).is_some_and(|r| allowed.contains(&r)));
    if !permitted {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your role does not allow this",
        ));
    }
    Ok(Actor {
        context: audit_context(req, Some(&claims.sub)),
        user_id: claims.sub,
        session_id: Some(claims.sid),
        roles: claims.roles,
        perms: claims.perms,
        org: claims.org,
    })
}

impl FromRequest for AdminActor {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(actor(req, &[Role::Admin]).map(AdminActor))
    }
}

impl FromRequest for ManagerActor {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(actor(req, &[Role::Admin, Role::OrgAdmin]).map(ManagerActor))
    }
}

/// The bearer token's principal, without the second-factor enrolment
/// policy (for `/me`, which such users may still read).
pub fn authenticate_any(req: &HttpRequest) -> Result<Arc<Principal>, ApiError> {
    authenticate(req)
}

fn authenticate(req: &HttpRequest) -> Result<Arc<Principal>, ApiError> {
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
        .and_then(auth_core::bearer_token)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_token",
                "the Authorization header must be: Bearer <token>",
            )
        })?;
    let now = chrono::Utc::now().timestamp();
    // Before verifying: keys replaced meanwhile make the entry stale.
    let keys = state.accounts.verifier().key_generation();
    let principal = match state.token_cache.get(token, now, keys) {
        Some(principal) => principal,
        None => {
            let principal = Arc::new(verify(state, token, now)?);
            let leeway = state.token_policy.leeway_secs.max(0);
            let exp = match &*principal {
                Principal::Session(c) => c.exp,
                Principal::ApiToken(c) => c.exp,
            };
            // The bound verification itself applies: valid while now < exp + leeway.
            state
                .token_cache
                .insert(token, principal.clone(), exp.saturating_add(leeway), keys);
            principal
        }
    };
    // Never cached: a logout or revocation counts from the next request on.
    let revoked = || ApiError::unauthorized("token_revoked", "the token has been revoked");
    match &*principal {
        Principal::Session(claims) => {
            if state
                .accounts
                .revocations()
                .is_revoked(&claims.sid, &claims.jti)
            {
                return Err(revoked());
            }
        }
        Principal::ApiToken(claims) => {
            if state.accounts.revocations().is_revoked("", &claims.jti) {
                return Err(revoked());
            }
            state.accounts.note_api_token_use(&claims.jti);
        }
    }
    Ok(principal)
}

/// Full verification: signature, header, registered claims, revocation.
fn verify(state: &AppState, token: &str, now: i64) -> Result<Principal, ApiError> {
    let bearer = state.accounts.verifier().bearer(token, now)?;
    Ok(match bearer {
        auth_core::Bearer::Access(claims) => Principal::Session(claims),
        auth_core::Bearer::ApiToken(claims) => Principal::ApiToken(claims),
    })
}

/// Who acts (if known) and from where, for audit events.
pub fn audit_context(req: &HttpRequest, actor: Option<&str>) -> AuditContext {
    let client = client_info(req);
    AuditContext {
        actor: actor.map(str::to_owned),
        ip: client.ip,
        user_agent: client.user_agent,
    }
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
        ip: client_ip(req).map(|ip| ip.to_string()),
    }
}

/// The header a trusted proxy names the client in. Only that one is read:
/// proxies append to their own header and pass any other through, so a
/// client could otherwise write its own address into the one not checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`.
    Forwarded,
}

/// The client's IP: the socket's peer, unless the peer is one of the
/// configured `trusted_proxies` — then the nearest address in the
/// configured forwarding header (`forwarded_header`) that is not itself a
/// trusted proxy. Headers from anyone else are ignored: a client can write
/// any address there.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let state = req.app_data::<web::Data<AppState>>();
    let trusted: &[ipnet::IpNet] = state.map_or(&[], |state| state.trusted_proxies.as_slice());
    let header = state.map_or(ForwardedHeader::default(), |state| state.forwarded_header);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Each proxy appends the address it received from, so the chain reads
    // client, proxy 1, …, and the last entry is the peer's own client.
    // Walk back over our proxies; the first other address is the client. An
    // entry we cannot read ends the walk at the last address we trust.
    let mut client = peer;
    for entry in forwarded_chain(req, header).iter().rev() {
        match parse_forwarded_address(entry) {
            Some(ip) if is_trusted(&ip) => client = ip,
            Some(ip) => return Some(ip),
            None => break,
        }
    }
    Some(client)
}

/// The addresses in the configured header (`X-Forwarded-For`, or the `for=`
/// of `Forwarded`), in header order (all header lines joined). The other
/// header is never read: a proxy passes a client's copy of it through.
fn forwarded_chain(req: &HttpRequest, header: ForwardedHeader) -> Vec<String> {
    let lines = |name: header::HeaderName| -> Vec<String> {
        req.headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|part| part.trim().to_owned())
            .collect()
    };
    match header {
        ForwardedHeader::XForwardedFor => lines(header::HeaderName::from_static("x-forwarded-for")),
        ForwardedHeader::Forwarded => lines(header::FORWARDED)
            .iter()
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.eq_ignore_ascii_case("for")
                        .then(|| value.trim().trim_matches('"').to_owned())
                })
            })
            .collect(),
    }
}

/// `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_forwarded_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.split_once(']'))
                .and_then(|(ip, _)| ip.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        roles: Vec<String>,
        #[serde(default, deserialize_with = "optional_integer")]
        days: Option<i64>,
    }

    fn refused(body: &str) -> (String, &'static str, String) {
        let e = from_json::<Body>(body.as_bytes()).unwrap_err();
        let field = e.errors.first().expect("a field error");
        (
            field.field.clone(),
            field.code,
            format!("{e} {:?}", e.errors),
        )
    }

    #[test]
    fn body_errors_name_the_field_and_a_code_not_the_parser() {
        for (body, field, code) in [
            (r#"{"name": 5, "roles": []}"#, "name", "expected_string"),
            (r#"{"roles": []}"#, "name", "required"),
            (
                r#"{"name": "a", "roles": ["x", 7]}"#,
                "roles[1]",
                "expected_string",
            ),
            (r#"{"name": "a", "roles": "x"}"#, "roles", "expected_array"),
            (
                r#"{"name": "a", "roles": [], "days": 1.5}"#,
                "days",
                "expected_integer",
            ),
            (
                r#"{"name": "a", "roles": [], "days": "x"}"#,
                "days",
                "expected_integer",
            ),
        ] {
            let (got_field, got_code, text) = refused(body);
            assert_eq!(
                (got_field.as_str(), got_code),
                (field, code),
                "{body}: {text}"
            );
            for word in ["line", "column", "invalid type", "expected a"] {
                assert!(!text.contains(word), "{body}: {text}");
            }
        }
        let whole: Body = from_json(br#"{"name": "a", "roles": [], "days": 2.0}"#).unwrap();
        assert_eq!(whole.days, Some(2));
        let e = from_json::<Body>(b"{oops").unwrap_err();
        assert!(e.errors.is_empty() && e.code == "invalid_request", "{e}");
        // Not an object at all: no field to name, and no `errors` promised.
        for body in [&b"null"[..], b"[]", b"5"] {
            let e = from_json::<Body>(body).unwrap_err();
            assert!(
                e.errors.is_empty() && !e.detail.contains("see errors"),
                "{e}"
            );
        }
        let e = from_json::<Body>(br#"{"name": 5, "roles": []}"#).unwrap_err();
        assert_eq!(
            e.summary(),
            "the JSON body does not have the expected fields: name must be a string"
        );
        let e = from_form::<Body>(b"name=a").unwrap_err();
        assert_eq!(
            (e.errors[0].field.as_str(), e.errors[0].code),
            ("roles", "required"),
            "{e}"
        );
    }

    #[test]
    fn forwarded_addresses_parse_in_every_spelling() {
        for (entry, ip) in [
            ("192.0.2.1", "192.0.2.1"),
            ("192.0.2.1:443", "192.0.2.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
        ] {
            assert_eq!(
                parse_forwarded_address(entry),
                Some(ip.parse().unwrap()),
                "{entry}"
            );
        }
        for junk in ["", "unknown", "_hidden", "300.1.1.1", "[::1"] {
            assert_eq!(parse_forwarded_address(junk), None, "{junk}");
        }
    }
}
