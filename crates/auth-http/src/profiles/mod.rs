//! Compatibility profiles: each serves one seed service's wire contract so
//! its clients can switch to us without a code change. A profile is request
//! parsing, response shaping and error mapping only; every account, session
//! and token decision is the native logic's (`accounts`, `auth-core`).
//!
//! Every profile is mounted under a prefix (default `/compat/<name>`), the
//! native API under its own (default `/`). `mounts` moves them; overlapping
//! routes are refused at start-up, naming both owners.

pub mod buzzbook;
pub mod campus;
pub mod company_portal;
pub mod envelope;
pub mod token_validity;

use std::collections::HashMap;
use std::fmt;

use actix_web::web;
use serde::de::DeserializeOwned;

/// The seeds, by the names operators use in `mounts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Seed 000.
    CompanyPortal,
    /// Seed 001.
    TokenValidity,
    /// Seed 002.
    Envelope,
    /// Seed 003.
    Buzzbook,
    /// Seed 004.
    Campus,
}

impl Profile {
    pub const ALL: [Profile; 5] = [
        Profile::CompanyPortal,
        Profile::TokenValidity,
        Profile::Envelope,
        Profile::Buzzbook,
        Profile::Campus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CompanyPortal => "company-portal",
            Self::TokenValidity => "token-validity",
            Self::Envelope => "envelope",
            Self::Buzzbook => "buzzbook",
            Self::Campus => "campus",
        }
    }

    /// (method, path) of every route, relative to the mount prefix.
    pub fn routes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::CompanyPortal => company_portal::ROUTES,
            Self::TokenValidity => token_validity::ROUTES,
            Self::Envelope => envelope::ROUTES,
            Self::Buzzbook => buzzbook::ROUTES,
            Self::Campus => campus::ROUTES,
        }
    }

    /// Its routes for `/openapi.json`, relative to the mount prefix.
    pub fn openapi(self) -> utoipa::openapi::OpenApi {
        use utoipa::OpenApi;
        match self {
            Self::CompanyPortal => company_portal::Api::openapi(),
            Self::TokenValidity => token_validity::Api::openapi(),
            Self::Envelope => envelope::Api::openapi(),
            Self::Buzzbook => buzzbook::Api::openapi(),
            Self::Campus => campus::Api::openapi(),
        }
    }

    pub fn configure(self, cfg: &mut web::ServiceConfig) {
        match self {
            Self::CompanyPortal => company_portal::configure(cfg),
            Self::TokenValidity => token_validity::configure(cfg),
            Self::Envelope => envelope::configure(cfg),
            Self::Buzzbook => buzzbook::configure(cfg),
            Self::Campus => campus::configure(cfg),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the native API and each enabled profile live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mounts {
    pub native: String,
    pub profiles: Vec<(Profile, String)>,
}

impl Default for Mounts {
    fn default() -> Self {
        Self {
            native: String::new(),
            profiles: Profile::ALL
                .iter()
                .map(|p| (*p, format!("/compat/{}", p.name())))
                .collect(),
        }
    }
}

fn prefix(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value == "/" {
        return Ok(String::new());
    }
    let valid = value.starts_with('/')
        && !value.ends_with('/')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
        && !value.contains("//");
    if !valid {
        return Err(format!(
            "'{value}' is not a mount prefix like / or /compat/name"
        ));
    }
    Ok(value.to_owned())
}

impl Mounts {
    /// From `name=prefix` pairs (comma-separated), over the defaults;
    /// `name=off` disables a profile. Then checks that no two owners serve
    /// the same method and path.
    pub fn parse(overrides: &str) -> Result<Self, String> {
        let mut mounts = Self::default();
        for pair in overrides
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not name=prefix"))?;
            let name = name.trim();
            if name == "native" {
                mounts.native = prefix(value)?;
                continue;
            }
            let profile = Profile::ALL
                .into_iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
                    format!(
                        "unknown profile '{name}' (known: native, {})",
                        known.join(", ")
                    )
                })?;
            mounts.profiles.retain(|(p, _)| *p != profile);
            if value.trim() != "off" {
                mounts.profiles.push((profile, prefix(value)?));
            }
        }
        mounts.check_overlaps()?;
        Ok(mounts)
    }

    fn check_overlaps(&self) -> Result<(), String> {
        let mut owners: HashMap<(String, String), String> = HashMap::new();
        let native = crate::http::NATIVE_ROUTES
            .iter()
            .map(|r| ("native API".to_owned(), &self.native, *r))
            .chain(
                crate::web::PAGE_ROUTES
                    .iter()
                    .map(|r| ("web pages".to_owned(), &self.native, *r)),
            );
        let profiles = self.profiles.iter().flat_map(|(p, prefix)| {
            p.routes()
                .iter()
                .map(move |r| (format!("profile {p}"), prefix, *r))
        });
        for (owner, prefix, (method, path)) in native.chain(profiles) {
            let full = format!("{prefix}{path}");
            if let Some(first) = owners.insert((method.to_owned(), full.clone()), owner.clone()) {
                return Err(format!(
                    "{method} {full} is served by both the {first} and the {owner}; move one with the mounts setting"
                ));
            }
        }
        Ok(())
    }

    /// Registers everything; longer prefixes first, because an actix scope
    /// that matches a prefix does not fall through to later ones.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let mut all: Vec<(Option<Profile>, &str)> = self
            .profiles
            .iter()
            .map(|(p, prefix)| (Some(*p), prefix.as_str()))
            .collect();
        all.push((None, self.native.as_str()));
        all.sort_by_key(|(_, prefix)| std::cmp::Reverse(prefix.len()));
        for (profile, prefix) in all {
            let Some(profile) = profile else {
                cfg.service(web::scope(prefix).configure(|c| crate::http::configure(c, prefix)));
                continue;
            };
            // Unknown paths under a profile answer in that profile's shape.
            let scope = web::scope(prefix).configure(|c| profile.configure(c));
            let scope = match profile {
                Profile::CompanyPortal | Profile::TokenValidity => {
                    scope.default_service(web::to(simple_unmatched))
                }
                Profile::Envelope => scope.default_service(web::to(envelope::unmatched)),
                Profile::Buzzbook => scope.default_service(web::to(buzzbook::unmatched)),
                Profile::Campus => scope.default_service(web::to(campus::unmatched)),
            };
            cfg.service(scope);
        }
    }
}

/// The `{email, password}` login body of the seeds that share it
/// (company-portal, token-validity): JSON, also when labelled as a form; or a
/// real form.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct EmailLogin {
    #[schema(schema_with = crate::http::schema::login)]
    pub email: String,
    #[schema(schema_with = crate::http::schema::password)]
    pub password: secrecy::SecretString,
}

/// The error body of the profiles whose seeds define none (000, 001): the
/// native status and stable code, in the plainest JSON. No internals.
pub fn simple_error(error: &crate::http::error::ApiError) -> actix_web::HttpResponse {
    let mut response = actix_web::HttpResponse::build(error.status);
    response.insert_header(("cache-control", "no-store"));
    if error.status == actix_web::http::StatusCode::UNAUTHORIZED {
        response.insert_header(("www-authenticate", "Bearer realm=\"auth-server\""));
    }
    if let Some(header) = error.retry_after_header() {
        response.insert_header(header);
    }
    response.json(serde_json::json!({"error": error.code, "message": error.summary()}))
}

/// Schemas shared by the profiles' documentation. Nothing constructs them:
/// the bodies are built with `json!`.
#[allow(dead_code)]
pub(crate) mod wire {
    /// The body of [`super::simple_error`]: the native HTTP status and stable code.
    #[derive(utoipa::ToSchema)]
    pub struct SimpleError {
        /// The native stable code, e.g. `invalid_credentials`.
        error: String,
        message: String,
    }
}

/// A profile's request body: the extraction error is kept as a value so each
/// profile can answer it in its own envelope.
pub type Body = Result<actix_web::web::Bytes, actix_web::Error>;

/// The same cap as the native JSON and form bodies.
const MAX_BODY: usize = 64 * 1024;

/// Reads a profile body (see [`lenient_body`]); too large, unreadable or
/// malformed bodies become 413/400 errors, never a 5xx.
pub fn parse_body<T: DeserializeOwned>(body: Body) -> Result<T, crate::http::error::ApiError> {
    use crate::http::error::ApiError;
    let too_large = || {
        ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than 64 KiB",
        )
    };
    let body = body.map_err(|e| {
        if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })?;
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    lenient_body(&body)
}

/// Other methods on the routes of the profiles whose seeds define no error
/// shape (`Allow` is added by `http::finish_response`).
pub async fn simple_not_allowed() -> actix_web::HttpResponse {
    simple_error(&crate::http::error::ApiError::method_not_allowed())
}

/// Unknown paths under the profiles whose seeds define no error shape.
pub async fn simple_unmatched() -> actix_web::HttpResponse {
    simple_error(&crate::http::error::ApiError::not_found())
}

/// Seed clients send JSON, sometimes labelled as a form (`curl -d '{…}'`
/// without a Content-Type, as the seeds' own examples do), and sometimes
/// real forms. A body that starts with `{` is read as JSON whatever the
/// label; anything else as `application/x-www-form-urlencoded`.
///
/// A failure names the field and a stable code, never the parser's words.
pub fn lenient_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, crate::http::error::ApiError> {
    use crate::http::extract::{from_form, from_json};
    let text = std::str::from_utf8(body)
        .map_err(|_| crate::http::error::ApiError::bad_request("the body is not UTF-8"))?;
    if text.trim_start().starts_with('{') {
        from_json(text.as_bytes())
    } else {
        from_form(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mounts_do_not_overlap_and_overrides_apply() {
        let mounts = Mounts::parse("").unwrap();
        assert_eq!(mounts.native, "");
        assert!(
            mounts
                .profiles
                .contains(&(Profile::TokenValidity, "/compat/token-validity".to_owned()))
        );
        let moved = Mounts::parse("token-validity=/, native=/native").unwrap();
        assert_eq!(moved.native, "/native");
        assert!(
            moved
                .profiles
                .contains(&(Profile::TokenValidity, String::new()))
        );
        let off = Mounts::parse("company-portal=off").unwrap();
        assert!(
            !off.profiles
                .iter()
                .any(|(p, _)| *p == Profile::CompanyPortal)
        );
    }

    #[test]
    fn overlapping_routes_name_both_owners() {
        let e = Mounts::parse("token-validity=/").unwrap_err();
        assert!(
            e.contains("POST /api/v1/auth/login")
                && e.contains("native API")
                && e.contains("token-validity"),
            "{e}"
        );
        let e = Mounts::parse("token-validity=/x,company-portal=/x,native=/n").unwrap_err();
        assert!(
            e.contains("company-portal") && e.contains("token-validity"),
            "{e}"
        );
        assert!(Mounts::parse("campus-x=/").is_err());
        assert!(Mounts::parse("token-validity=compat").is_err());
    }

    #[test]
    fn bodies_are_sniffed() {
        #[derive(serde::Deserialize)]
        struct Login {
            email: String,
        }
        let json: Login = lenient_body(br#"{"email": "a@b.com"}"#).unwrap();
        let form: Login = lenient_body(b"email=a%40b.com").unwrap();
        assert_eq!(
            (json.email, form.email),
            ("a@b.com".to_owned(), "a@b.com".to_owned())
        );
        assert!(lenient_body::<Login>(b"{oops").is_err());
    }
}
