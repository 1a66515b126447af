//! OpenID Connect provider: the rules of single sign-on, for every front-end.
//!
//! A relying party is a registered client with redirect URIs. It sends the
//! browser to the authorization endpoint; the user signs in on our pages
//! (or already is: the browser session is the single sign-on session); the
//! relying party gets a code, single use, 60 s, bound to it, its redirect
//! URI and its PKCE challenge (S256 only), and exchanges it for tokens.
//!
//! Each exchange starts a session of its own for the relying party
//! ([`Channel::RelyingParty`]): its refresh tokens rotate with the same
//! reuse detection as native ones, but only through that client's token
//! requests; its access tokens have the client as audience, so no native
//! API accepts them. The session follows the browser session it came from
//! (`sso_session_id`): ending that one (logout anywhere, a reused refresh
//! token, an operator) ends every relying party's session with it.

use std::sync::Arc;

use auth_core::{
    ACR_SINGLE_FACTOR, ACR_TWO_FACTORS, AccessClaims, ID_TOKEN_TYP, IdTokenClaims, KeySet,
    SigningAlgorithm, TokenError,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeDelta;
use diesel::Connection;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use storage::models::{AuthorizationCodeRow, ClientRow, ConsentRow, SessionRow};
use storage::repo::{authorization_codes, clients, consents, sessions, users};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::audit::{AuditContext, AuditEvent, events};
use crate::clients::{CreatedClient, active_client};
use crate::error::AccountsError;
use crate::secrets::{new_opaque_token, token_hash};
use crate::service::{Accounts, Channel, ClientInfo, IssuedTokens, now};
use crate::types::{ParseError, UserStatus};

type Result<T> = std::result::Result<T, AccountsError>;

/// The longest `state` a relying party may have carried through us (and
/// back); a longer one is refused and not echoed.
pub const MAX_STATE_BYTES: usize = 1024;

/// How long an authorization code lives.
pub const CODE_TTL_SECS: i64 = 60;

/// Scopes every relying party may ask for.
pub const STANDARD_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// Scopes a relying party may ask for only when the operator granted them
/// (`client add --scopes`): the user's organization and permissions.
pub const GRANTED_SCOPES: [&str; 2] = ["organization", "permissions"];

/// A client to register (`auth-server client add`).
#[derive(Clone, Debug, Default)]
pub struct NewClient {
    pub name: String,
    /// Exact redirect URIs; none for a service that only calls the API.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Beyond [`STANDARD_SCOPES`]: some of [`GRANTED_SCOPES`].
    pub scopes: Vec<String>,
    /// No secret (a browser or native app); PKCE is its proof.
    pub public: bool,
    /// The operator's own product: no consent page.
    pub first_party: bool,
    /// Where to POST logout tokens when a session of this client ends
    /// (OpenID Connect Back-Channel Logout 1.0).
    pub backchannel_logout_uri: Option<String>,
    /// The algorithm of its ID and logout tokens; `None`:
    /// [`DEFAULT_ID_TOKEN_ALG`]. Never HS256 (the relying party would need
    /// the server's secret to check them).
    pub id_token_alg: Option<SigningAlgorithm>,
}

/// OpenID Connect's default ID token algorithm (Dynamic Client
/// Registration §2), the one relying-party libraries accept unless told
/// otherwise.
pub const DEFAULT_ID_TOKEN_ALG: SigningAlgorithm = SigningAlgorithm::RS256;

/// The algorithms a relying party's ID tokens may use (discovery's
/// `id_token_signing_alg_values_supported`). Not HS256: relying parties
/// would need the server's secret to check them.
pub const ID_TOKEN_ALGORITHMS: [SigningAlgorithm; 3] = [
    SigningAlgorithm::RS256,
    SigningAlgorithm::ES256,
    SigningAlgorithm::EdDSA,
];

/// A registered client, as a relying party sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelyingParty {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub public: bool,
    pub first_party: bool,
    pub backchannel_logout_uri: Option<String>,
    /// `None`: the server's configured algorithm (clients registered
    /// before the choice existed).
    pub id_token_alg: Option<SigningAlgorithm>,
}

fn words(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_owned).collect()
}

impl From<ClientRow> for RelyingParty {
    fn from(row: ClientRow) -> Self {
        RelyingParty {
            redirect_uris: words(&row.redirect_uris),
            post_logout_redirect_uris: words(&row.post_logout_redirect_uris),
            scopes: words(&row.scopes),
            id: row.id,
            name: row.name,
            public: row.public,
            first_party: row.first_party,
            backchannel_logout_uri: Some(row.backchannel_logout_uri).filter(|u| !u.is_empty()),
            // Only what a client may have: never HS256, whatever is stored.
            id_token_alg: row
                .id_token_alg
                .parse()
                .ok()
                .filter(|alg| ID_TOKEN_ALGORITHMS.contains(alg)),
        }
    }
}

/// A redirect URI a client may register: absolute, no fragment, no
/// user info; `https`, or `http` on a loopback host (RFC 8252 §7.3), or a
/// private-use scheme with a dot for a public (native) client (§7.1).
fn check_redirect_uri(uri: &str, public: bool) -> std::result::Result<(), &'static str> {
    let parsed = url::Url::parse(uri).map_err(|_| "must be an absolute URI")?;
    if parsed.fragment().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must have no fragment and no user info");
    }
    if uri.len() > 2000 || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be at most 2000 characters without spaces");
    }
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("must use https (http only on localhost)"),
        scheme if public && scheme.contains('.') => Ok(()),
        _ => Err("must use https, http on localhost, or (public clients) a reverse-domain scheme"),
    }
}

impl Accounts {
    /// Registers a client. Services that only call the API (introspection,
    /// the buzzbook profile) have no redirect URIs; relying parties have at
    /// least one. A public client gets no secret.
    pub fn register_client(&self, new: NewClient) -> Result<CreatedClient> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ParseError {
                field: "name",
                reason: "must be 1 to 100 characters",
            }
            .into());
        }
        for uri in new
            .redirect_uris
            .iter()
            .chain(&new.post_logout_redirect_uris)
        {
            check_redirect_uri(uri, new.public).map_err(|reason| ParseError {
                field: "redirect_uri",
                reason,
            })?;
        }
        if new
            .scopes
            .iter()
            .any(|s| !GRANTED_SCOPES.contains(&s.as_str()) && !self.catalog.contains(s))
        {
            return Err(ParseError {
                field: "scopes",
                reason: "may be organization, permissions, and permission names of the catalog",
            }
            .into());
        }
        let id_token_alg = new.id_token_alg.unwrap_or(DEFAULT_ID_TOKEN_ALG);
        if !ID_TOKEN_ALGORITHMS.contains(&id_token_alg) {
            return Err(ParseError {
                field: "id_token_alg",
                reason: "must be RS256, ES256 or EdDSA (relying parties can't check HS256 without our secret)",
            }
            .into());
        }
        if !new.redirect_uris.is_empty() || new.public {
            // A relying party: make its key now rather than on its first
            // user's sign-in (an RSA key takes a moment).
            self.keys_signing(id_token_alg)?;
        }
        let client_id = Uuid::new_v4().simple().to_string();
        let secret = (!new.public).then(new_opaque_token);
        let mut conn = self.conn()?;
        conn.transaction(|c| -> Result<()> {
            storage::repo::write_lock(c)?;
            self.insert_client(c, &client_id, name, secret.as_ref(), &new)?;
            // Only operators register clients (the CLI).
            AuditEvent::new(events::CLIENT_ADDED)
                .detail("client_id", &client_id)
                .detail("name", name)
                .detail("redirect_uris", new.redirect_uris.join(" "))
                .detail("first_party", new.first_party)
                .record(c, &crate::Actor::operator().context)?;
            Ok(())
        })?;
        Ok(CreatedClient {
            client_id,
            client_secret: secret,
        })
    }

    fn insert_client(
        &self,
        conn: &mut storage::AnyConnection,
        client_id: &str,
        name: &str,
        secret: Option<&SecretString>,
        new: &NewClient,
    ) -> Result<()> {
        clients::insert(
            conn,
            &ClientRow {
                id: client_id.to_owned(),
                name: name.to_owned(),
                // A public client's empty hash matches no presented secret.
                secret_hash: secret.map_or_else(String::new, |s| token_hash(s.expose_secret())),
                created_at: now().naive_utc(),
                revoked_at: None,
                redirect_uris: new.redirect_uris.join(" "),
                post_logout_redirect_uris: new.post_logout_redirect_uris.join(" "),
                scopes: new.scopes.join(" "),
                public: new.public,
                first_party: new.first_party,
                backchannel_logout_uri: new.backchannel_logout_uri.clone().unwrap_or_default(),
                id_token_alg: new.id_token_alg.unwrap_or(DEFAULT_ID_TOKEN_ALG).to_string(),
            },
        )?;
        Ok(())
    }

    /// An active client by id (no credentials checked: for the
    /// authorization endpoint, which only the browser calls).
    pub fn find_relying_party(&self, client_id: &str) -> Result<Option<RelyingParty>> {
        let mut conn = self.conn()?;
        Ok(active_client(&mut conn, client_id)?.map(RelyingParty::from))
    }

    /// The client making a token request: a confidential client with its
    /// secret (Basic or form), a public client with none. Unknown ids cost
    /// the same hash; a public client presenting a secret, or a
    /// confidential one presenting none, is [`AccountsError::InvalidClient`].
    pub fn authenticate_relying_party(
        &self,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<RelyingParty> {
        let presented = token_hash(secret.unwrap_or(""));
        let mut conn = self.conn()?;
        let row = active_client(&mut conn, client_id)?;
        let stored = row.as_ref().map_or("", |r| r.secret_hash.as_str());
        let matches: bool = presented.as_bytes().ct_eq(stored.as_bytes()).into();
        match row.map(RelyingParty::from) {
            Some(client) if client.public && secret.is_none() => Ok(client),
            Some(client) if !client.public && secret.is_some() && matches => Ok(client),
            _ => Err(AccountsError::InvalidClient),
        }
    }
}

/// An authorization request as the browser brought it (every parameter
/// optional here; [`Accounts::check_authorization`] decides).
#[derive(Clone, Debug, Default)]
pub struct AuthorizationRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
}

/// A request that passed every check: what the code will be bound to.
#[derive(Clone, Debug)]
pub struct ValidAuthorization {
    pub client: RelyingParty,
    pub redirect_uri: String,
    /// The scopes granted, in a fixed order.
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    /// `prompt=none`: answer without any page.
    pub prompt_none: bool,
    /// `prompt=login`: authenticate again even with a session.
    pub prompt_login: bool,
    /// `prompt=consent`: ask even a remembered (or first-party) client.
    pub prompt_consent: bool,
    /// `prompt=select_account`: let the user choose the account (go on as
    /// the one signed in, or sign in as another).
    pub prompt_select_account: bool,
    /// Longest time since the user last authenticated, in seconds.
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
}

/// Why an authorization request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// The client or the redirect URI can't be trusted: the user is told,
    /// and the browser is not sent anywhere (RFC 6749 §4.1.2.1).
    #[error("authorization request refused: {0}")]
    NoRedirect(&'static str),
    /// Sent back to the relying party's redirect URI as `error`.
    #[error("authorization request refused: {error}")]
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: &'static str,
    },
}

/// What the authorization endpoint does for a valid request and the
/// browser's session.
#[derive(Debug)]
pub enum Authorized {
    /// Send the browser back with this code.
    Code(SecretString),
    /// The user must authenticate (again): `prompt=login`, or the last
    /// authentication is older than `max_age`.
    Reauthenticate,
    /// A third-party client the user has not consented to.
    ConsentRequired,
    /// `prompt=select_account`: the user chooses the account first.
    SelectAccount,
}

/// The scopes a user may grant `client` for `asked` (space separated), in
/// a fixed order, each once; `None` without `openid` or with a scope the
/// client may not ask for.
pub(crate) fn granted_scope(client: &RelyingParty, asked: &str) -> Option<String> {
    let asked: Vec<&str> = asked.split_whitespace().collect();
    let allowed =
        |s: &str| STANDARD_SCOPES.contains(&s) || client.scopes.iter().any(|granted| granted == s);
    if !asked.contains(&"openid") || asked.iter().any(|s| !allowed(s)) {
        return None;
    }
    Some(
        STANDARD_SCOPES
            .iter()
            .chain(GRANTED_SCOPES.iter())
            .filter(|s| asked.contains(s))
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Unreserved characters (RFC 7636 §4.1): the alphabet of verifiers and
/// of S256 challenges (base64url).
fn pkce_alphabet(value: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Accounts {
    /// Checks an authorization request (OpenID Connect Core §3.1.2.2):
    /// first the client and the exact redirect URI (else nothing is
    /// redirected), then the rest, refused at the redirect URI.
    pub fn check_authorization(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<std::result::Result<ValidAuthorization, AuthorizeError>> {
        let client_id = request.client_id.as_deref().unwrap_or("");
        let Some(client) = self.find_relying_party(client_id)? else {
            return Ok(Err(AuthorizeError::NoRedirect("unknown_client")));
        };
        let Some(redirect_uri) = request
            .redirect_uri
            .as_deref()
            .filter(|uri| client.redirect_uris.iter().any(|r| r == uri))
        else {
            return Ok(Err(AuthorizeError::NoRedirect("invalid_redirect_uri")));
        };
        let state = request.state.clone().filter(|s| !s.is_empty());
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_BYTES) {
            // Refused without echoing it.
            return Ok(Err(AuthorizeError::Redirect {
                redirect_uri: redirect_uri.to_owned(),
                state: None,
                error: "invalid_request",
                description: "state is longer than 1024 bytes",
            }));
        }
        let send_back = |error: &'static str, description: &'static str| {
            Ok(Err(AuthorizeError::Redirect {
                redirect_uri: redirect_uri.to_owned(),
                state: state.clone(),
                error,
                description,
            }))
        };
        match request.response_type.as_deref() {
            Some("code") => {}
            Some(_) => {
                return send_back(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                );
            }
            None => return send_back("invalid_request", "response_type is missing"),
        }
        let Some(scope) = granted_scope(&client, request.scope.as_deref().unwrap_or("")) else {
            return send_back(
                "invalid_scope",
                "scope must include openid, and only scopes this client may ask for",
            );
        };
        match (
            request.code_challenge.as_deref(),
            request.code_challenge_method.as_deref(),
        ) {
            (None, _) => {
                return send_back("invalid_request", "code_challenge is required (PKCE, S256)");
            }
            (Some(_), Some("S256")) => {}
            (Some(_), _) => {
                return send_back("invalid_request", "code_challenge_method must be S256");
            }
        }
        let code_challenge = request.code_challenge.clone().unwrap_or_default();
        // base64url of a SHA-256: exactly 43 characters.
        if !pkce_alphabet(&code_challenge, 43..=43) {
            return send_back("invalid_request", "code_challenge is not an S256 challenge");
        }
        let nonce = request.nonce.clone().filter(|n| !n.is_empty());
        if nonce.as_ref().is_some_and(|n| n.len() > 512) {
            return send_back("invalid_request", "nonce is longer than 512 characters");
        }
        let prompts: Vec<&str> = request
            .prompt
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if prompts
            .iter()
            .any(|p| !matches!(*p, "none" | "login" | "consent" | "select_account"))
        {
            return send_back(
                "invalid_request",
                "prompt is none, login, consent or select_account",
            );
        }
        let prompt_none = prompts.contains(&"none");
        if prompt_none && prompts.len() > 1 {
            return send_back("invalid_request", "prompt=none goes with no other value");
        }
        let max_age = match request.max_age.as_deref() {
            None | Some("") => None,
            Some(text) => match text.parse::<i64>() {
                Ok(secs) if secs >= 0 => Some(secs),
                _ => return send_back("invalid_request", "max_age is a number of seconds"),
            },
        };
        Ok(Ok(ValidAuthorization {
            client,
            redirect_uri: redirect_uri.to_owned(),
            scope,
            state,
            nonce,
            code_challenge,
            prompt_none,
            prompt_login: prompts.contains(&"login"),
            prompt_consent: prompts.contains(&"consent"),
            prompt_select_account: prompts.contains(&"select_account"),
            max_age,
            login_hint: request.login_hint.clone().filter(|h| h.len() <= 320),
        }))
    }

    /// Decides a valid request for the browser session `sso_session_id` of
    /// `user_id`: a code, or what must happen first. The front-end answers
    /// `prompt=login` and `max_age` by having the user authenticate and
    /// then coming back without them.
    pub fn authorize(
        &self,
        request: &ValidAuthorization,
        user_id: &str,
        sso_session_id: &str,
    ) -> Result<Authorized> {
        let at = now();
        let mut conn = self.conn()?;
        let Some(session) = sessions::find(&mut conn, sso_session_id)?.filter(|s| {
            s.user_id == user_id && s.revoked_at.is_none() && Channel::Native.admits(s)
        }) else {
            return Ok(Authorized::Reauthenticate);
        };
        let auth_time = session.auth_time.unwrap_or(session.created_at);
        let too_old = request
            .max_age
            .is_some_and(|secs| at.naive_utc() - auth_time > TimeDelta::seconds(secs));
        if request.prompt_login || too_old {
            return Ok(Authorized::Reauthenticate);
        }
        if request.prompt_select_account {
            return Ok(Authorized::SelectAccount);
        }
        let mut consented = || -> Result<bool> {
            let granted = consents::find(&mut conn, user_id, &request.client.id)?;
            Ok(granted.is_some_and(|g| {
                let granted: Vec<&str> = g.scope.split_whitespace().collect();
                request
                    .scope
                    .split_whitespace()
                    .all(|s| granted.contains(&s))
            }))
        };
        let ask = request.prompt_consent || !(request.client.first_party || consented()?);
        if ask {
            return Ok(Authorized::ConsentRequired);
        }
        self.issue_code(&mut conn, request, user_id, sso_session_id)
            .map(Authorized::Code)
    }

    /// A code for `request`, after the user consented on the consent page:
    /// the consent is remembered (its scopes replace earlier ones), so the
    /// page is not shown again for these scopes.
    pub fn authorize_with_consent(
        &self,
        request: &ValidAuthorization,
        user_id: &str,
        sso_session_id: &str,
    ) -> Result<SecretString> {
        self.transact(|c, at| {
            storage::repo::lock_key(c, &format!("consent:{user_id}"))?;
            consents::put(
                c,
                &ConsentRow {
                    user_id: user_id.to_owned(),
                    client_id: request.client.id.clone(),
                    scope: request.scope.clone(),
                    created_at: at.naive_utc(),
                    updated_at: at.naive_utc(),
                },
            )?;
            Ok(Ok(()))
        })?;
        let mut conn = self.conn()?;
        self.issue_code(&mut conn, request, user_id, sso_session_id)
    }

    /// The relying parties the user consented to, newest first.
    pub fn consents_of(&self, user_id: &str) -> Result<Vec<ConsentView>> {
        let mut conn = self.conn()?;
        Ok(consents::for_user(&mut conn, user_id)?
            .into_iter()
            .map(|(row, client_name)| ConsentView {
                client_id: row.client_id,
                client_name,
                scopes: words(&row.scope),
                granted_at: row.updated_at,
            })
            .collect())
    }

    /// Withdraws a consent: the consent page comes back, and the client's
    /// sessions of this user end now. False when there was none.
    pub fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        context: &AuditContext,
    ) -> Result<bool> {
        let revoked = self.transact(|c, at| {
            if !consents::delete(c, user_id, client_id)? {
                return Ok(Ok(None));
            }
            let ids = sessions::revoke_live_for_user_and_client(
                c,
                user_id,
                client_id,
                at.naive_utc(),
                "consent_revoked",
            )?;
            let revoked = ids
                .into_iter()
                .map(|id| self.record_revocation(c, id, at))
                .collect::<Result<Vec<_>>>()?;
            AuditEvent::new(events::OIDC_CONSENT_REVOKED)
                .subject(user_id)
                .detail("client_id", client_id)
                .detail("sessions", revoked.len())
                .record(c, context)?;
            Ok(Ok(Some(revoked)))
        })?;
        Ok(self.published(revoked).is_some())
    }

    fn issue_code(
        &self,
        conn: &mut storage::DbConn,
        request: &ValidAuthorization,
        user_id: &str,
        sso_session_id: &str,
    ) -> Result<SecretString> {
        let at = now();
        let code = new_opaque_token();
        authorization_codes::insert(
            conn,
            &AuthorizationCodeRow {
                code_hash: token_hash(code.expose_secret()),
                client_id: request.client.id.clone(),
                user_id: user_id.to_owned(),
                sso_session_id: sso_session_id.to_owned(),
                redirect_uri: request.redirect_uri.clone(),
                code_challenge: request.code_challenge.clone(),
                nonce: request.nonce.clone(),
                scope: request.scope.clone(),
                created_at: at.naive_utc(),
                expires_at: (at + TimeDelta::seconds(CODE_TTL_SECS)).naive_utc(),
                used_at: None,
                session_id: None,
            },
        )?;
        Ok(code)
    }
}

/// A consent, as the dashboard lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentView {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub granted_at: chrono::NaiveDateTime,
}

/// What a relying party's new session starts from.
pub(crate) struct Start<'a> {
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub sso_session_id: &'a str,
    pub scope: &'a str,
    pub info: &'a ClientInfo,
    pub context: &'a AuditContext,
}

/// What a token request answers a relying party.
#[derive(Debug)]
pub struct RelyingPartyTokens {
    pub access_token: String,
    pub expires_in: i64,
    /// None for the client credentials grant.
    pub refresh_token: Option<SecretString>,
    /// On the code exchange only.
    pub id_token: Option<String>,
    pub scope: String,
}

impl Accounts {
    /// Exchanges a code (RFC 6749 §4.1.3, RFC 7636 §4.6): the client, the
    /// redirect URI and the verifier must be those the code was bound to,
    /// within 60 s, once. A code presented again ends the session its first
    /// exchange started (RFC 6749 §4.1.2), when presented with the right
    /// client, redirect URI and verifier. Every refusal is
    /// [`AccountsError::InvalidGrant`].
    pub fn exchange_code(
        &self,
        client: &RelyingParty,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
        info: &ClientInfo,
    ) -> Result<RelyingPartyTokens> {
        let hash = token_hash(code);
        let context = AuditContext::from(info);
        let (tokens, revoked) = self.transact(|c, at| {
            let Some(row) = authorization_codes::find(c, &hash)? else {
                return Ok(Err(AccountsError::InvalidGrant));
            };
            if row.client_id != client.id {
                return Ok(Err(AccountsError::InvalidGrant));
            }
            let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
                &ring::digest::SHA256,
                code_verifier.as_bytes(),
            ));
            let verified: bool = challenge
                .as_bytes()
                .ct_eq(row.code_challenge.as_bytes())
                .into();
            // Checked before reuse: a code without its verifier (leaked from
            // a URL) can neither be redeemed nor end what it was redeemed for.
            if row.redirect_uri != redirect_uri
                || !pkce_alphabet(code_verifier, 43..=128)
                || !verified
            {
                return Ok(Err(AccountsError::InvalidGrant));
            }
            if row.used_at.is_some() {
                // Replayed: whatever the first exchange got is suspect.
                let revoked = match &row.session_id {
                    Some(id) => self.revoke_session_in(c, id, "authorization_code_reused", at)?,
                    None => Vec::new(),
                };
                AuditEvent::new(events::OIDC_CODE_REUSED)
                    .subject(&row.user_id)
                    .detail("client_id", &client.id)
                    .record(c, &context)?;
                return Ok(Ok((None, revoked)));
            }
            if row.expires_at <= at.naive_utc() {
                return Ok(Err(AccountsError::InvalidGrant));
            }
            let claim = |c: &mut storage::AnyConnection, session_id: &str| {
                authorization_codes::claim(c, &hash, session_id, at.naive_utc())
            };
            let start = Start {
                client_id: &client.id,
                user_id: &row.user_id,
                sso_session_id: &row.sso_session_id,
                scope: &row.scope,
                info,
                context: &context,
            };
            let issued = match self.start_relying_party_session(c, &start, at, claim)? {
                Ok(issued) => issued,
                Err(e) => return Ok(Err(e)),
            };
            Ok(Ok((
                Some((issued, row.nonce, row.sso_session_id)),
                Vec::new(),
            )))
        })?;
        self.published(revoked);
        let Some((issued, nonce, sso_session_id)) = tokens else {
            return Err(AccountsError::InvalidGrant);
        };
        let id_token = self.id_token(client, &issued, nonce, &sso_session_id)?;
        Ok(relying_party_tokens(issued, Some(id_token)))
    }

    /// Starts a relying party's session from a browser session, if both
    /// the browser session and the user are still good: `claim` spends the
    /// code (or device code) for the new session's id first, and false
    /// from it, like anything no longer good, is
    /// [`AccountsError::InvalidGrant`] (the inner error; the outer one is
    /// the database's). Runs in the caller's transaction.
    pub(crate) fn start_relying_party_session(
        &self,
        c: &mut storage::AnyConnection,
        start: &Start<'_>,
        at: chrono::DateTime<chrono::Utc>,
        claim: impl FnOnce(
            &mut storage::AnyConnection,
            &str,
        ) -> std::result::Result<bool, storage::StorageError>,
    ) -> Result<Result<IssuedTokens>> {
        let sso = sessions::find(c, start.sso_session_id)?
            .filter(|s| s.revoked_at.is_none() && s.expires_at > at.naive_utc());
        let user = users::find_by_id(c, start.user_id)?
            .filter(|u| UserStatus::parse(&u.status) == Some(UserStatus::Active));
        let (Some(sso), Some(user)) = (sso, user) else {
            return Ok(Err(AccountsError::InvalidGrant));
        };
        let session = SessionRow {
            id: Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            created_at: at.naive_utc(),
            last_used_at: at.naive_utc(),
            // It ends with the browser session it came from, at the latest
            // (revoked with it too: `revoke_session_in`).
            expires_at: (at + TimeDelta::seconds(self.sessions.absolute_ttl_secs))
                .naive_utc()
                .min(sso.expires_at),
            revoked_at: None,
            revoke_reason: None,
            user_agent: start.info.user_agent.clone(),
            ip: start.info.ip.clone(),
            client_id: Some(start.client_id.to_owned()),
            // How and when the user signed in is the browser session's.
            amr: sso.amr.clone(),
            auth_time: Some(sso.auth_time.unwrap_or(sso.created_at)),
            scope: Some(start.scope.to_owned()),
            sso_session_id: Some(sso.id.clone()),
            forked_at: None,
        };
        if !claim(c, &session.id)? {
            return Ok(Err(AccountsError::InvalidGrant));
        }
        sessions::insert(c, &session)?;
        let refresh = if asks_offline_access(start.scope) {
            self.new_refresh_token(c, &session, None, at)?
        } else {
            // No refresh token without offline_access (OpenID Connect Core
            // §11): none is stored, and this empty one never leaves
            // (`relying_party_tokens` hands out none for such a scope).
            (SecretString::from(String::new()), 0)
        };
        let (roles, perms) = users::roles_and_permissions(c, &user.id)?;
        AuditEvent::new(events::OIDC_SIGNED_IN)
            .subject(&user.id)
            .organization(user.organization_id.clone())
            .detail("client_id", start.client_id)
            .detail("session_id", &session.id)
            .record(c, start.context)?;
        self.issue(&user, &session, roles, perms, refresh, at)
            .map(Ok)
    }

    /// The client credentials grant (RFC 6749 §4.4) for a confidential
    /// client acting for itself: an access token whose subject is the
    /// client, carrying the permission scopes the operator granted it
    /// (`client add --scopes sms:send`), or the requested subset of them.
    /// No refresh token: the client asks again. Its audience is the client
    /// (no native API accepts it); removing the client revokes it (`sid` =
    /// `client:<id>`).
    pub fn client_credentials(
        &self,
        client: &RelyingParty,
        requested: Option<&str>,
    ) -> Result<RelyingPartyTokens> {
        if client.public {
            return Err(AccountsError::UnauthorizedClient);
        }
        let granted: Vec<&String> = client
            .scopes
            .iter()
            .filter(|s| self.catalog.contains(s))
            .collect();
        let scopes: Vec<String> = match requested.map(str::split_whitespace) {
            Some(asked) => {
                let asked: Vec<&str> = asked.collect();
                if asked.iter().any(|a| !granted.iter().any(|g| g == a)) {
                    return Err(AccountsError::InvalidScope);
                }
                granted
                    .into_iter()
                    .filter(|g| asked.contains(&g.as_str()))
                    .cloned()
                    .collect()
            }
            None => granted.into_iter().cloned().collect(),
        };
        let at = now().timestamp();
        let policy = self.verifier().policy();
        let mut claims = policy.access_claims(
            auth_core::Subject {
                user_id: client.id.clone(),
                session_id: client_sid(&client.id),
                perms: scopes.clone(),
                ..Default::default()
            },
            at,
        );
        for_relying_party(&mut claims, &client.id, &scopes.join(" "));
        // `for_relying_party` keeps permissions only under a `permissions`
        // scope (a user's); a client's own are its scopes.
        claims.perms = scopes;
        let access_token = self.keys().sign(auth_core::ACCESS_TOKEN_TYP, &claims)?;
        Ok(RelyingPartyTokens {
            expires_in: claims.exp - claims.iat,
            scope: claims.scope.clone().unwrap_or_default(),
            access_token,
            refresh_token: None,
            id_token: None,
        })
    }

    /// Rotates a relying party's refresh token: the same rotation, reuse
    /// detection and grace window as native refresh, on the client's own
    /// channel. Refusals are [`AccountsError::InvalidGrant`].
    pub async fn relying_party_refresh(
        self: &Arc<Self>,
        client: &RelyingParty,
        presented: &SecretString,
        scope: Option<&str>,
        info: &ClientInfo,
    ) -> Result<RelyingPartyTokens> {
        if let Some(asked) = scope.filter(|s| !s.trim().is_empty()) {
            // RFC 6749 §6: no scope the user did not grant. Checked before
            // the rotation, which would spend the presented token.
            let this = self.clone();
            let hash = token_hash(presented.expose_secret());
            let asked = asked.to_owned();
            let client_id = client.id.clone();
            let within = crate::blocking::run_blocking(move || -> Result<bool> {
                let mut conn = this.conn()?;
                let Some(token) = storage::repo::refresh_tokens::find_by_hash(&mut conn, &hash)?
                else {
                    return Ok(true); // the rotation refuses it
                };
                // Only a live token of this client is checked: any other
                // goes on to the rotation, which refuses it (invalid_grant)
                // and sees a spent one as reuse; a scope probe must not
                // tell a dead token from a live one.
                let live_token = token.used_at.is_none() && token.expires_at > now().naive_utc();
                let Some(session) = sessions::find(&mut conn, &token.session_id)?.filter(|s| {
                    live_token
                        && s.revoked_at.is_none()
                        && s.client_id.as_deref() == Some(client_id.as_str())
                }) else {
                    return Ok(true);
                };
                let granted = session.scope.unwrap_or_default();
                Ok(asked
                    .split_whitespace()
                    .all(|s| granted.split_whitespace().any(|g| g == s)))
            })
            .await
            .map_err(|_| AccountsError::BackgroundTask)??;
            if !within {
                return Err(AccountsError::InvalidScope);
            }
        }
        let channel = Channel::RelyingParty(client.id.clone());
        match self.rotate_async(presented, None, channel, info).await {
            Ok(issued) => Ok(relying_party_tokens(issued, None)),
            Err(
                AccountsError::InvalidRefreshToken
                | AccountsError::RefreshTokenReused(_)
                | AccountsError::TokenRevoked,
            ) => Err(AccountsError::InvalidGrant),
            Err(e) => Err(e),
        }
    }

    /// The ID token for tokens just issued by a code exchange.
    pub(crate) fn id_token(
        &self,
        client: &RelyingParty,
        issued: &IssuedTokens,
        nonce: Option<String>,
        sso_session_id: &str,
    ) -> Result<String> {
        let alg = self.id_token_alg(client);
        let keys = self.keys_signing(alg)?;
        let claims = &issued.claims;
        let two_factors = claims.has_second_factor();
        let id = IdTokenClaims {
            iss: claims.iss.clone(),
            sub: claims.sub.clone(),
            aud: client.id.clone(),
            exp: claims.exp,
            iat: claims.iat,
            auth_time: claims.auth_time.unwrap_or(claims.iat),
            nonce,
            amr: claims.amr.clone(),
            acr: if two_factors {
                ACR_TWO_FACTORS
            } else {
                ACR_SINGLE_FACTOR
            }
            .to_owned(),
            at_hash: Some(auth_core::at_hash(&issued.access_token, alg)),
            sid: sso_session_id.to_owned(),
            email_verified: claims.email.as_ref().map(|_| true),
            email: claims.email.clone(),
            name: claims.name.clone(),
            preferred_username: claims.preferred_username.clone(),
        };
        Ok(keys.sign_as(alg, ID_TOKEN_TYP, &id)?)
    }

    /// The algorithm `client`'s ID and logout tokens are signed with: its
    /// own; for clients registered before the choice, the server's, unless
    /// that is HS256 (no relying party can check those), then RS256.
    pub fn id_token_alg(&self, client: &RelyingParty) -> SigningAlgorithm {
        client.id_token_alg.unwrap_or_else(|| {
            Some(self.keys().active_algorithm())
                .filter(|alg| ID_TOKEN_ALGORITHMS.contains(alg))
                .unwrap_or(DEFAULT_ID_TOKEN_ALG)
        })
    }

    /// The keys, with one that signs `alg`: when none does yet, one is made
    /// in the key store (every instance's key reload picks it up) and the
    /// keys are reloaded here at once. Blocks (an RSA key takes tens to
    /// hundreds of milliseconds); never call it inside a transaction.
    pub(crate) fn keys_signing(&self, alg: SigningAlgorithm) -> Result<KeySet> {
        let keys = self.keys();
        if keys.signing_algorithms().contains(&alg) {
            return Ok(keys);
        }
        let Some(source) = &self.key_source else {
            tracing::error!(%alg, "no key signs with this algorithm and there is no key store to make one in");
            return Err(TokenError::NoSigningKey.into());
        };
        let now = now().timestamp();
        let made = source
            .store
            .ensure_signer(alg, now)
            .and_then(|_| source.load(now))
            .inspect_err(|e| tracing::error!(%alg, error = %e, "cannot make a signing key"))
            .map_err(|_| TokenError::NoSigningKey)?;
        self.replace_keys(made.clone());
        Ok(made)
    }

    /// The UserInfo response (OpenID Connect Core §5.3) for a relying
    /// party's access token: the user as stored now, claims by scope.
    /// A token that is not a live relying-party token is
    /// [`AccountsError::TokenRevoked`] or a token error.
    pub fn userinfo(&self, access_token: &str) -> Result<Value> {
        let claims = self
            .verifier()
            .relying_party_access(access_token, now().timestamp())?;
        let mut conn = self.conn()?;
        let live = sessions::find(&mut conn, &claims.sid)?
            .is_some_and(|s| s.revoked_at.is_none() && s.expires_at > now().naive_utc());
        let user = users::find_by_id(&mut conn, &claims.sub)?
            .filter(|u| UserStatus::parse(&u.status) == Some(UserStatus::Active));
        let (true, Some(user)) = (live, user) else {
            return Err(AccountsError::TokenRevoked);
        };
        let scope = claims.scope.as_deref().unwrap_or("");
        let has = |s: &str| scope.split_whitespace().any(|granted| granted == s);
        let mut out = Map::new();
        out.insert("sub".into(), json!(user.id));
        if has("email") {
            out.insert("email".into(), json!(user.email));
            // Every account's address was verified (activation link or code).
            out.insert("email_verified".into(), json!(true));
        }
        if has("profile") {
            out.insert("name".into(), json!(user.name));
            out.insert("preferred_username".into(), json!(user.username));
            out.insert("locale".into(), json!(user.locale));
            out.insert(
                "updated_at".into(),
                json!(user.updated_at.and_utc().timestamp()),
            );
        }
        if has("organization") {
            out.insert("organization".into(), json!(user.organization_id));
        }
        if has("permissions") {
            let (roles, perms) = users::roles_and_permissions(&mut conn, &user.id)?;
            out.insert("roles".into(), json!(roles));
            out.insert("permissions".into(), json!(perms));
        }
        Ok(Value::Object(out))
    }
}

/// Why an RP-initiated logout was refused (shown to the user; nothing is
/// redirected and no session ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogoutRefused {
    /// No `id_token_hint`, or not one of ours.
    #[error("id_token_hint is missing or not ours")]
    InvalidHint,
    /// `post_logout_redirect_uri` is not registered for the hint's client.
    #[error("post_logout_redirect_uri is not registered")]
    InvalidRedirectUri,
}

/// An RP-initiated logout request as it came (every part optional).
#[derive(Clone, Debug, Default)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
}

/// An RP-initiated logout request that passed the checks.
#[derive(Clone, Debug)]
pub struct CheckedLogout {
    /// The user and browser session the hint names (front-ends end only
    /// the browser's own session, at once when it is this one).
    pub session: Option<(String, String)>,
    /// The relying party asking (from the hint, or `client_id`).
    pub client_id: Option<String>,
    /// Where to send the browser afterwards (registered for that client).
    pub redirect_uri: Option<String>,
}

impl Accounts {
    /// Checks an RP-initiated logout request (OpenID Connect RP-Initiated
    /// Logout 1.0 §2): a hint must be an ID token we issued (expired or
    /// not) to a client that still exists, `client_id` (if also given) that
    /// client, and a `post_logout_redirect_uri` one registered for it.
    /// Nothing ends here: [`end_relying_party_logout`](Self::end_relying_party_logout)
    /// does, once the front-end knows the user wants it.
    pub fn check_logout(
        &self,
        request: &LogoutRequest,
    ) -> Result<std::result::Result<CheckedLogout, LogoutRefused>> {
        let hint = match request.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
            Some(hint) => match self
                .verifier()
                .policy()
                .verify_id_token_hint(&self.keys(), hint)
            {
                Ok(claims) => Some(claims),
                Err(_) => return Ok(Err(LogoutRefused::InvalidHint)),
            },
            None => None,
        };
        let client_id = match (&hint, request.client_id.as_deref()) {
            (Some(h), Some(id)) if h.aud != id => return Ok(Err(LogoutRefused::InvalidHint)),
            (Some(h), _) => Some(h.aud.as_str()),
            (None, id) => id,
        };
        let client = match client_id {
            Some(id) => match self.find_relying_party(id)? {
                Some(client) => Some(client),
                // A removed client's users can still sign out through its
                // link; only its redirect is no longer trusted.
                None if hint.is_some() => {
                    return Ok(Ok(CheckedLogout {
                        session: hint.map(|h| (h.sub, h.sid)),
                        client_id: None,
                        redirect_uri: None,
                    }));
                }
                None => return Ok(Err(LogoutRefused::InvalidRedirectUri)),
            },
            None => None,
        };
        if let Some(uri) = request.post_logout_redirect_uri.as_deref() {
            let registered = client
                .as_ref()
                .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
            if !registered {
                return Ok(Err(LogoutRefused::InvalidRedirectUri));
            }
        }
        Ok(Ok(CheckedLogout {
            session: hint.map(|h| (h.sub, h.sid)),
            client_id: client.map(|c| c.id),
            redirect_uri: request.post_logout_redirect_uri.clone(),
        }))
    }

    /// Ends the browser session `session_id` of `user_id` and, single
    /// sign-on, every relying party's session from it, as a native logout
    /// does; audited as an RP-initiated logout of `client_id`.
    pub fn end_relying_party_logout(
        &self,
        user_id: &str,
        session_id: &str,
        client_id: Option<&str>,
        context: &AuditContext,
    ) -> Result<()> {
        self.logout(user_id, session_id, context)?;
        self.audit(
            AuditEvent::new(events::OIDC_LOGOUT)
                .subject(user_id)
                .detail("client_id", client_id.unwrap_or(""))
                .detail("session_id", session_id),
            context,
        )
    }
}

/// `typ` of logout tokens (Back-Channel Logout §2.4): not an ID token,
/// not an access token.
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// How many times a logout token is POSTed before it is given up.
const LOGOUT_ATTEMPTS: i64 = 6;

/// A logout token to POST (the background worker's job).
#[derive(Clone, Debug)]
pub struct LogoutNotice {
    pub id: String,
    pub uri: String,
    pub logout_token: String,
    pub attempts: i64,
}

/// Delivers logout tokens: the server gives one with an HTTP client
/// (accounts makes no HTTP calls of its own).
pub trait LogoutSender: Send + Sync + 'static {
    /// POSTs `logout_token=<token>` as a form to `uri`; true on a 2xx.
    fn send(
        &self,
        uri: &str,
        logout_token: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;
}

impl Accounts {
    /// Queues a logout token for the session `session_id` that was just
    /// revoked in `conn`'s transaction, if it is a relying party's with a
    /// back-channel logout URI. Every revocation passes here
    /// ([`Accounts::record_revocation`]), so logout anywhere reaches every
    /// relying party that asked to hear of it.
    pub(crate) fn queue_backchannel_logout(
        &self,
        conn: &mut storage::AnyConnection,
        session_id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let Some(session) = sessions::find(conn, session_id)? else {
            return Ok(());
        };
        let (Some(client_id), Some(_)) = (&session.client_id, &session.scope) else {
            return Ok(());
        };
        let Some(client) = clients::find(conn, client_id)? else {
            return Ok(());
        };
        if client.backchannel_logout_uri.is_empty() {
            return Ok(());
        }
        let iat = at.timestamp();
        let claims = json!({
            "iss": self.verifier().policy().issuer,
            "sub": session.user_id,
            "aud": client.id,
            "iat": iat,
            "exp": iat + 300,
            "jti": Uuid::new_v4().to_string(),
            "sid": session.sso_session_id.as_deref().unwrap_or(&session.id),
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        // Signed like its ID tokens. No key is made here (this runs inside
        // the revocation's transaction): a client with sessions got ID
        // tokens, so its key exists (rotations renew it). Should it be
        // missing, another published key signs; never a shared secret,
        // which the client could not check and must not be given a MAC of.
        let keys = self.keys();
        let alg = self.id_token_alg(&RelyingParty::from(client.clone()));
        let signed = std::iter::once(alg)
            .chain(ID_TOKEN_ALGORITHMS)
            .find_map(|alg| match keys.sign_as(alg, LOGOUT_TOKEN_TYP, &claims) {
                Err(TokenError::NoSigningKey) => None,
                signed => Some(signed),
            });
        let Some(logout_token) = signed.transpose()? else {
            tracing::error!(client_id = %client.id, %alg, "no published key signs logout tokens; this logout notice is not sent");
            return Ok(());
        };
        if !keys.signing_algorithms().contains(&alg) {
            tracing::warn!(client_id = %client.id, %alg, "no key signs the client's algorithm; its logout token is signed with another published key");
        }
        storage::repo::logout_notifications::insert(
            conn,
            &storage::models::LogoutNotificationRow {
                id: Uuid::new_v4().to_string(),
                client_id: client.id,
                uri: client.backchannel_logout_uri,
                logout_token,
                created_at: at.naive_utc(),
                attempts: 0,
                next_attempt_at: at.naive_utc(),
                done_at: None,
                delivered: false,
            },
        )?;
        Ok(())
    }

    /// Logout tokens due now, leased to this caller for a minute.
    pub fn lease_logout_notices(&self, limit: i64) -> Result<Vec<LogoutNotice>> {
        self.transact(|c, at| {
            let rows = storage::repo::logout_notifications::lease_due(
                c,
                at.naive_utc(),
                (at + TimeDelta::seconds(60)).naive_utc(),
                limit,
            )?;
            Ok(Ok(rows
                .into_iter()
                .map(|r| LogoutNotice {
                    id: r.id,
                    uri: r.uri,
                    logout_token: r.logout_token,
                    attempts: r.attempts,
                })
                .collect()))
        })
    }

    /// Records a delivery attempt: done when delivered or after the last
    /// attempt; otherwise due again after 5 s, 10 s, 20 s … .
    pub fn logout_notice_attempted(&self, notice: &LogoutNotice, delivered: bool) -> Result<()> {
        let at = now();
        let attempts = notice.attempts + 1;
        let next = (!delivered && attempts < LOGOUT_ATTEMPTS)
            .then(|| (at + TimeDelta::seconds(5 << notice.attempts.clamp(0, 10))).naive_utc());
        if !delivered && next.is_none() {
            tracing::warn!(uri = %notice.uri, attempts, "back-channel logout given up");
        }
        let mut conn = self.conn()?;
        storage::repo::logout_notifications::attempted(
            &mut conn,
            &notice.id,
            delivered,
            next,
            at.naive_utc(),
        )?;
        Ok(())
    }
}

/// The answer to a relying party's token request: a refresh token only
/// when the scope granted holds `offline_access`.
pub(crate) fn relying_party_tokens(
    issued: IssuedTokens,
    id_token: Option<String>,
) -> RelyingPartyTokens {
    let scope = issued.claims.scope.clone().unwrap_or_default();
    RelyingPartyTokens {
        expires_in: issued.claims.exp - issued.claims.iat,
        refresh_token: asks_offline_access(&scope).then_some(issued.refresh_token),
        scope,
        access_token: issued.access_token,
        id_token,
    }
}

/// Whether a scope asks for a refresh token (OpenID Connect Core §11), as
/// Hydra, Authelia and Zitadel read it. Even then the session follows the
/// browser session: signing out there ends it.
fn asks_offline_access(scope: &str) -> bool {
    scope.split_whitespace().any(|s| s == "offline_access")
}

/// The `sid` of a client's own tokens (client credentials): revoked when
/// the client is removed.
pub(crate) fn client_sid(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// Shapes access-token claims for a relying party's session: the client
/// is the audience, and the user's details appear only as far as the
/// granted scopes reach (RFC 9068 §2.2.3).
pub(crate) fn for_relying_party(claims: &mut AccessClaims, client_id: &str, scope: &str) {
    let has = |s: &str| scope.split_whitespace().any(|granted| granted == s);
    claims.aud = client_id.to_owned();
    claims.client_id = Some(client_id.to_owned());
    claims.scope = Some(scope.to_owned());
    if !has("email") {
        claims.email = None;
    }
    if !has("profile") {
        claims.name = None;
        claims.preferred_username = None;
    }
    if !has("organization") {
        claims.org = None;
    }
    if !has("permissions") {
        claims.roles.clear();
        claims.perms.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_follow_rfc_8252_and_9700() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1:8123/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert_eq!(check_redirect_uri(ok, false), Ok(()), "{ok}");
        }
        assert_eq!(check_redirect_uri("com.example.app:/cb", true), Ok(()));
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "https://user@app.example/cb",
            "/cb",
            "com.example.app:/cb",
            "javascript:alert(1)",
        ] {
            assert!(check_redirect_uri(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stored_id_token_algorithm_is_only_one_a_client_may_have() {
        let row = |alg: &str| ClientRow {
            id: "c".into(),
            name: "c".into(),
            secret_hash: String::new(),
            created_at: chrono::NaiveDateTime::default(),
            revoked_at: None,
            redirect_uris: String::new(),
            post_logout_redirect_uris: String::new(),
            scopes: String::new(),
            public: false,
            first_party: false,
            backchannel_logout_uri: String::new(),
            id_token_alg: alg.into(),
        };
        let alg = |stored: &str| RelyingParty::from(row(stored)).id_token_alg;
        assert_eq!(alg("RS256"), Some(SigningAlgorithm::RS256));
        assert_eq!(alg("EdDSA"), Some(SigningAlgorithm::EdDSA));
        // HS256 would have the server's secret sign tokens for a third
        // party; empty or unknown: the server's choice.
        for stored in ["HS256", "", "none", "PS256"] {
            assert_eq!(alg(stored), None, "{stored}");
        }
    }

    #[test]
    fn verifiers_and_challenges_use_the_unreserved_alphabet() {
        assert!(pkce_alphabet(&"a".repeat(43), 43..=128));
        assert!(!pkce_alphabet(&"a".repeat(42), 43..=128));
        assert!(!pkce_alphabet(&format!("{}+", "a".repeat(43)), 43..=128));
    }
}
