//! The claims of access and API tokens, the [`TokenPolicy`] that issues and
//! checks them, and [`Bearer`], a verified token of either kind.

use serde::{Deserialize, Serialize};

use crate::error::TokenError;
use crate::verify::VerificationKeys;

/// `typ` header of access tokens (RFC 9068 §2.1), so that no other kind of
/// token signed by the same keys can pass as an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of an access token: the contract with every API that accepts them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AccessClaims {
    /// Issuer: the auth server's public URL.
    pub iss: String,
    /// Audience the token is meant for.
    pub aud: String,
    /// Subject: the user's UUID.
    pub sub: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Not valid before (unix seconds).
    pub nbf: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
    /// Unique token id (UUID v4).
    pub jti: String,
    /// Session UUID the token was issued for, so revoking a session can be checked.
    pub sid: String,
    /// Organisation the token acts in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Permission names, sorted and without duplicates.
    #[serde(default)]
    pub perms: Vec<String>,
    /// Permission version: lets resource servers notice stale permissions.
    #[serde(default)]
    pub pv: i64,
    /// The user's email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The user's login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// The user's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How the user authenticated (RFC 8176 values: `pwd`, `otp`, `hwk`,
    /// `swk`, `user`, `mfa`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// When the user last authenticated interactively (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The relying party the token was issued to (OpenID Connect, RFC 9068
    /// §2.2); its `aud` is then that client, so no native API accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The scopes granted to that relying party, space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// `amr` values that are a second factor, or say two were used.
pub const SECOND_FACTOR_AMR: [&str; 4] = ["otp", "hwk", "swk", "mfa"];

impl AccessClaims {
    /// Whether the token's authentication included a second factor.
    pub fn has_second_factor(&self) -> bool {
        self.amr
            .iter()
            .any(|value| SECOND_FACTOR_AMR.contains(&value.as_str()))
    }
}

/// Everything the issuer puts in an access token besides times and ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// The user's UUID; becomes `sub`.
    pub user_id: String,
    /// The session's UUID; becomes `sid`.
    pub session_id: String,
    /// Organisation the token acts in.
    pub org: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// Permission names, in any order; the token gets them sorted and deduplicated.
    pub perms: Vec<String>,
    /// Permission version.
    pub pv: i64,
    /// The user's email address.
    pub email: Option<String>,
    /// The user's login name.
    pub preferred_username: Option<String>,
    /// The user's display name.
    pub name: Option<String>,
}

/// How access tokens are issued and what verification accepts.
#[derive(Clone, Debug)]
pub struct TokenPolicy {
    /// Expected and issued `iss`.
    pub issuer: String,
    /// Expected and issued `aud`.
    pub audience: String,
    /// Access-token lifetime in seconds (default 1800).
    pub access_ttl_secs: i64,
    /// Tolerated clock skew in seconds for `exp` and `nbf` (default 30).
    pub leeway_secs: i64,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            issuer: "http://127.0.0.1:8080".to_owned(),
            audience: "auth-server".to_owned(),
            access_ttl_secs: 1800,
            leeway_secs: 30,
        }
    }
}

impl TokenPolicy {
    /// Builds access-token claims for `subject` issued at `now` (unix seconds):
    /// `iat = nbf = now`, `exp = now + access_ttl_secs`, a fresh UUID v4 `jti`,
    /// and `perms` sorted and deduplicated.
    pub fn access_claims(&self, subject: Subject, now: i64) -> AccessClaims {
        let mut perms = subject.perms;
        perms.sort();
        perms.dedup();
        AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user_id,
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.access_ttl_secs),
            jti: uuid::Uuid::new_v4().to_string(),
            sid: subject.session_id,
            org: subject.org,
            roles: subject.roles,
            perms,
            pv: subject.pv,
            email: subject.email,
            preferred_username: subject.preferred_username,
            name: subject.name,
            amr: Vec::new(),
            auth_time: None,
            client_id: None,
            scope: None,
        }
    }

    /// Fully checks an access token at time `now` (unix seconds): signature and
    /// header via [`KeySet::verify`](crate::KeySet::verify) with `typ` [`ACCESS_TOKEN_TYP`], then `iss`,
    /// `aud`, `exp` and `nbf` (both with `leeway_secs`), and a non-empty `sub`.
    pub fn verify_access(
        &self,
        keys: &(impl VerificationKeys + ?Sized),
        token: &str,
        now: i64,
    ) -> Result<AccessClaims, TokenError> {
        let claims: AccessClaims = keys.verify_token(token, ACCESS_TOKEN_TYP)?;
        self.check_registered(
            &claims.iss,
            &claims.aud,
            &claims.sub,
            claims.exp,
            claims.nbf,
            now,
        )?;
        Ok(claims)
    }

    /// Like [`verify_access`](Self::verify_access) but without the `exp`
    /// check: for renewing an expired token whose session the caller then
    /// checks is still alive (a seed contract renews expired tokens).
    /// Signature, `typ`, `iss`, `aud`, `nbf` and `sub` are still enforced.
    pub fn verify_access_allowing_expiry(
        &self,
        keys: &(impl VerificationKeys + ?Sized),
        token: &str,
        now: i64,
    ) -> Result<AccessClaims, TokenError> {
        let claims: AccessClaims = keys.verify_token(token, ACCESS_TOKEN_TYP)?;
        self.check_registered(
            &claims.iss,
            &claims.aud,
            &claims.sub,
            i64::MAX,
            claims.nbf,
            now,
        )?;
        Ok(claims)
    }

    /// Builds the claims of a personal API token that lives `lifetime_secs`.
    pub fn api_token_claims(
        &self,
        subject: ApiTokenSubject,
        now: i64,
        lifetime_secs: i64,
    ) -> ApiTokenClaims {
        let mut perms = subject.perms;
        perms.sort();
        perms.dedup();
        ApiTokenClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user_id,
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime_secs),
            jti: subject.token_id,
            org: subject.org,
            perms,
        }
    }

    /// Fully checks a personal API token (`typ` [`API_TOKEN_TYP`]) at `now`,
    /// with the same rules as [`verify_access`](Self::verify_access).
    pub fn verify_api_token(
        &self,
        keys: &(impl VerificationKeys + ?Sized),
        token: &str,
        now: i64,
    ) -> Result<ApiTokenClaims, TokenError> {
        let claims: ApiTokenClaims = keys.verify_token(token, API_TOKEN_TYP)?;
        self.check_registered(
            &claims.iss,
            &claims.aud,
            &claims.sub,
            claims.exp,
            claims.nbf,
            now,
        )?;
        if claims.jti.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok(claims)
    }

    /// Verifies a bearer token of either kind at `now`: an access token
    /// ([`verify_access`](Self::verify_access)) or a personal API token
    /// ([`verify_api_token`](Self::verify_api_token)). The unverified header
    /// only chooses which check runs; each check enforces its own `typ`.
    pub fn verify_bearer(
        &self,
        keys: &(impl VerificationKeys + ?Sized),
        token: &str,
        now: i64,
    ) -> Result<Bearer, TokenError> {
        if crate::unverified_typ(token).as_deref() == Some(API_TOKEN_TYP) {
            self.verify_api_token(keys, token, now)
                .map(Bearer::ApiToken)
        } else {
            self.verify_access(keys, token, now).map(Bearer::Access)
        }
    }

    /// The registered-claim checks every token kind shares.
    pub(crate) fn check_registered(
        &self,
        iss: &str,
        aud: &str,
        sub: &str,
        exp: i64,
        nbf: i64,
        now: i64,
    ) -> Result<(), TokenError> {
        if iss == self.issuer && aud != self.audience {
            return Err(TokenError::WrongAudience);
        }
        self.check_registered_for(iss, sub, exp, nbf, now)
    }

    /// [`check_registered`](Self::check_registered) without the audience,
    /// for tokens whose audience is a relying party (checked by the caller).
    pub(crate) fn check_registered_for(
        &self,
        iss: &str,
        sub: &str,
        exp: i64,
        nbf: i64,
        now: i64,
    ) -> Result<(), TokenError> {
        if iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        // A negative leeway would be a configuration mistake; it must not
        // shorten token lifetimes behind the operator's back either way.
        let leeway = self.leeway_secs.max(0);
        // Saturating: exp/nbf come from the token and may be extreme.
        if now >= exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if now.saturating_add(leeway) < nbf {
            return Err(TokenError::NotYetValid);
        }
        if sub.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok(())
    }
}

/// A verified bearer token of either kind: what a resource server acts on.
// Unboxed on purpose: one lives per request, moved rarely; a box would be
// an allocation per verification for the common (access-token) case.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Bearer {
    /// A user's access token, tied to a login session.
    Access(AccessClaims),
    /// A personal API token (the seed-000 dashboard JWTs), revoked by `jti`.
    ApiToken(ApiTokenClaims),
}

impl Bearer {
    /// The user's UUID (`sub`).
    pub fn user_id(&self) -> &str {
        match self {
            Self::Access(c) => &c.sub,
            Self::ApiToken(c) => &c.sub,
        }
    }

    /// The token's unique id (`jti`).
    pub fn token_id(&self) -> &str {
        match self {
            Self::Access(c) => &c.jti,
            Self::ApiToken(c) => &c.jti,
        }
    }

    /// The login session, for access tokens; API tokens have none.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Self::Access(c) => Some(&c.sid),
            Self::ApiToken(_) => None,
        }
    }

    /// The organisation the token acts in, if any.
    pub fn organization_id(&self) -> Option<&str> {
        match self {
            Self::Access(c) => c.org.as_deref(),
            Self::ApiToken(c) => c.org.as_deref(),
        }
    }

    /// Role names; API tokens carry permissions only.
    pub fn roles(&self) -> &[String] {
        match self {
            Self::Access(c) => &c.roles,
            Self::ApiToken(_) => &[],
        }
    }

    /// Permission names.
    pub fn permissions(&self) -> &[String] {
        match self {
            Self::Access(c) => &c.perms,
            Self::ApiToken(c) => &c.perms,
        }
    }

    /// Whether the token grants `permission` (e.g. `"sms:send"`).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions().iter().any(|p| p == permission)
    }

    /// Whether a person signed in with a second factor to get this token
    /// (its `amr`). API tokens never say so: no one signed in for them.
    pub fn has_second_factor(&self) -> bool {
        match self {
            Self::Access(c) => c.has_second_factor(),
            Self::ApiToken(_) => false,
        }
    }

    /// Expiry (unix seconds).
    pub fn expires_at(&self) -> i64 {
        match self {
            Self::Access(c) => c.exp,
            Self::ApiToken(c) => c.exp,
        }
    }
}

/// `typ` of personal API tokens (the seed-000 dashboard JWTs). A different
/// `typ` from access tokens means neither can be passed off as the other.
pub const API_TOKEN_TYP: &str = "api+jwt";

/// Claims of a personal API token: who, which permissions, until when. No
/// session: it is revoked by `jti`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ApiTokenClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default)]
    pub perms: Vec<String>,
}

/// What goes into an API token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiTokenSubject {
    pub user_id: String,
    pub token_id: String,
    pub org: Option<String>,
    pub perms: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeySet;

    fn subject() -> Subject {
        Subject {
            user_id: "user-1".into(),
            session_id: "session-1".into(),
            org: Some("org-1".into()),
            roles: vec!["admin".into()],
            perms: vec!["b".into(), "a".into(), "b".into(), "c".into(), "a".into()],
            pv: 7,
            email: Some("ada@example.test".into()),
            preferred_username: Some("ada".into()),
            name: None,
        }
    }

    #[test]
    fn api_tokens_and_access_tokens_are_not_interchangeable() {
        let keys = KeySet::new(
            crate::SigningKey::generate(crate::SigningAlgorithm::EdDSA, "k".into()).unwrap(),
            vec![],
        )
        .unwrap();
        let policy = TokenPolicy::default();
        let api = policy.api_token_claims(
            ApiTokenSubject {
                user_id: "u".into(),
                token_id: "t".into(),
                org: None,
                perms: vec!["sms:send".into(), "sms:send".into()],
            },
            1000,
            3600,
        );
        assert_eq!(api.perms, vec!["sms:send".to_owned()]);
        let token = keys.sign(API_TOKEN_TYP, &api).unwrap();
        assert_eq!(policy.verify_api_token(&keys, &token, 1100).unwrap(), api);
        assert!(policy.verify_access(&keys, &token, 1100).is_err());
        assert_eq!(
            crate::unverified_typ(&token).as_deref(),
            Some(API_TOKEN_TYP)
        );
        assert_eq!(
            policy.verify_api_token(&keys, &token, 1000 + 3600 + 30),
            Err(TokenError::Expired)
        );
        let access = keys
            .sign(ACCESS_TOKEN_TYP, &policy.access_claims(subject(), 1000))
            .unwrap();
        assert_eq!(
            policy.verify_api_token(&keys, &access, 1100),
            Err(TokenError::WrongType)
        );
    }

    #[test]
    fn expired_tokens_verify_only_when_asked_and_only_if_otherwise_valid() {
        let keys = KeySet::new(
            crate::SigningKey::generate(crate::SigningAlgorithm::EdDSA, "k".into()).unwrap(),
            vec![],
        )
        .unwrap();
        let policy = TokenPolicy::default();
        let claims = policy.access_claims(subject(), 1000);
        let token = keys.sign(ACCESS_TOKEN_TYP, &claims).unwrap();
        let much_later = 1000 + 86_400;
        assert_eq!(
            policy.verify_access(&keys, &token, much_later),
            Err(TokenError::Expired)
        );
        assert_eq!(
            policy
                .verify_access_allowing_expiry(&keys, &token, much_later)
                .unwrap(),
            claims
        );
        let other_issuer = TokenPolicy {
            issuer: "https://elsewhere".into(),
            ..TokenPolicy::default()
        };
        assert_eq!(
            other_issuer.verify_access_allowing_expiry(&keys, &token, much_later),
            Err(TokenError::WrongIssuer)
        );
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(
            policy
                .verify_access_allowing_expiry(&keys, &tampered, much_later)
                .is_err()
        );
    }

    #[test]
    fn default_policy() {
        let policy = TokenPolicy::default();
        assert_eq!(policy.issuer, "http://127.0.0.1:8080");
        assert_eq!(policy.audience, "auth-server");
        assert_eq!(policy.access_ttl_secs, 1800);
        assert_eq!(policy.leeway_secs, 30);
    }

    #[test]
    fn access_claims_fill_times_ids_and_sorted_perms() {
        let policy = TokenPolicy::default();
        let claims = policy.access_claims(subject(), 1_000);
        assert_eq!((claims.iat, claims.nbf, claims.exp), (1_000, 1_000, 2_800));
        assert_eq!(
            (claims.iss.as_str(), claims.aud.as_str()),
            (policy.issuer.as_str(), "auth-server")
        );
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str()),
            ("user-1", "session-1")
        );
        assert_eq!(claims.perms, ["a", "b", "c"]);
        assert_eq!(claims.roles, ["admin"]);
        assert_eq!(claims.pv, 7);
        assert_eq!(claims.org.as_deref(), Some("org-1"));
        let jti = uuid::Uuid::parse_str(&claims.jti).unwrap();
        assert_eq!(jti.get_version_num(), 4);
    }

    #[test]
    fn every_token_gets_a_fresh_jti() {
        let policy = TokenPolicy::default();
        let first = policy.access_claims(subject(), 1_000);
        let second = policy.access_claims(subject(), 1_000);
        assert_ne!(first.jti, second.jti);
    }

    #[test]
    fn optional_claims_are_omitted_and_default_on_read() {
        let mut claims = TokenPolicy::default().access_claims(Subject::default(), 1_000);
        claims.org = None;
        let json = serde_json::to_value(&claims).unwrap();
        for absent in ["org", "email", "preferred_username", "name"] {
            assert!(json.get(absent).is_none(), "{absent}");
        }
        let minimal = serde_json::json!({
            "iss": "i", "aud": "a", "sub": "s", "iat": 1, "nbf": 1, "exp": 2,
            "jti": "j", "sid": "d",
        });
        let parsed: AccessClaims = serde_json::from_value(minimal).unwrap();
        assert!(parsed.roles.is_empty() && parsed.perms.is_empty());
        assert_eq!(parsed.pv, 0);
    }
}
