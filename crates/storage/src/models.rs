//! Rows as stored. Domain meaning (parsed emails, statuses, hashing) lives in
//! the `accounts` crate; these are plain carriers.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::{
    activation_tokens, api_tokens, audit_log, authorization_codes, clients, consents, device_codes,
    email_codes, external_identities, logout_notifications, mfa_challenges, organization_domains,
    organizations, outbox, passkeys, refresh_tokens, registrations, revocations, server_secrets,
    sessions, signing_keys, totp_credentials, users, webauthn_ceremonies,
};

#[derive(Queryable, Selectable, Debug, Clone, PartialEq)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub status: String,
    pub organization_id: Option<String>,
    pub permission_version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub locale: Option<String>,
    pub must_change_password: bool,
    pub password_changed_at: Option<NaiveDateTime>,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub username: Option<&'a str>,
    pub name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub status: &'a str,
    pub organization_id: Option<&'a str>,
    pub permission_version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub locale: Option<&'a str>,
    pub must_change_password: bool,
    pub password_changed_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoke_reason: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The registered client the session was started for; `None` for a
    /// native session.
    pub client_id: Option<String>,
    /// How the session was authenticated: RFC 8176 `amr` values separated
    /// by spaces (`None` on sessions older than second factors: a password).
    pub amr: Option<String>,
    /// When the user last authenticated interactively in this session
    /// (`None`: at `created_at`).
    pub auth_time: Option<NaiveDateTime>,
    /// What a relying party was granted (OpenID Connect scopes, space
    /// separated); `None` for native and profile sessions.
    pub scope: Option<String>,
    /// The browser session a relying party's session came from: ending that
    /// one ends this one.
    pub sso_session_id: Option<String>,
    /// When a second live refresh token was issued in this session (a
    /// duplicate refresh within the reuse grace window); `None` while it has
    /// one live chain. See `refresh_tokens::spend_other_branches`.
    pub forked_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub id: String,
    pub session_id: String,
    /// SHA-256 of the token, hex. The token itself is never stored.
    pub token_hash: String,
    pub parent_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

impl RefreshTokenRow {
    /// A new row id. Time-ordered (UUIDv7): every refresh inserts a row,
    /// and ordered ids make the id index grow at its end, where a random
    /// id would dirty (and write to the log) a random index page per
    /// insert. The id is internal; the token is separate and random.
    pub fn new_id() -> String {
        uuid::Uuid::now_v7().to_string()
    }
}

#[derive(Queryable, Selectable, Debug, Clone, PartialEq)]
#[diesel(table_name = revocations)]
pub struct RevocationRow {
    /// Monotonic cursor for pollers.
    pub id: i64,
    /// `sid` (a session) or `jti` (one token).
    pub kind: String,
    pub subject: String,
    /// After this instant no token the revocation covers is valid anyway, so
    /// the entry can be forgotten.
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = revocations)]
pub struct NewRevocation<'a> {
    pub kind: &'a str,
    pub subject: &'a str,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = organizations)]
pub struct OrganizationRow {
    pub id: String,
    pub name: String,
    pub region: Option<String>,
    pub active: bool,
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = organization_domains)]
pub struct OrganizationDomainRow {
    pub organization_id: String,
    /// Lowercase ASCII (IDNA-encoded) domain.
    pub domain: String,
    pub include_subdomains: bool,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = email_codes)]
pub struct EmailCodeRow {
    pub id: String,
    /// `signup`, `organization` or `password_reset`.
    pub purpose: String,
    pub email: String,
    pub organization_id: Option<String>,
    /// Keyed hash (HMAC-SHA256, hex) of the code; the code itself is never stored.
    pub code_hash: String,
    pub attempts: i64,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub consumed_at: Option<NaiveDateTime>,
}

/// One mail waiting for (or past) delivery.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    /// Emptied once the mail is sent: bodies may carry codes and links.
    pub text_body: String,
    pub html_body: String,
    /// Template name, kept for listing and audit after the body is gone.
    pub template: String,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = registrations)]
pub struct RegistrationRow {
    pub id: String,
    pub company_name: String,
    pub contact_name: String,
    pub contact_email: String,
    /// E.164.
    pub contact_phone: String,
    /// `pending_review`, `approved` or `rejected`.
    pub status: String,
    pub created_at: NaiveDateTime,
    pub decided_at: Option<NaiveDateTime>,
    /// The operator (user id) who decided.
    pub decided_by: Option<String>,
    /// The approval note or the rejection reason.
    pub decision_note: Option<String>,
    pub organization_id: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = activation_tokens)]
pub struct ActivationTokenRow {
    pub id: String,
    pub user_id: String,
    /// SHA-256 (hex) of the token; the token itself is only in the mail.
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = api_tokens)]
pub struct ApiTokenRow {
    /// The token's `jti`.
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// Space-separated, sorted.
    pub permissions: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Debug, Clone, PartialEq)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub at: NaiveDateTime,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub organization_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub event: String,
    /// JSON object.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = audit_log)]
pub struct NewAuditRow {
    pub at: NaiveDateTime,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub organization_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub event: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    /// The `client_id`.
    pub id: String,
    pub name: String,
    /// SHA-256 (hex) of the secret; the secret is shown once at creation.
    pub secret_hash: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    /// Exact redirect URIs, space separated (OpenID Connect clients).
    pub redirect_uris: String,
    /// Where RP-initiated logout may send the browser, space separated.
    pub post_logout_redirect_uris: String,
    /// Scopes the client may ask for beyond `openid profile email`.
    pub scopes: String,
    /// No secret: a browser or native app (PKCE is its only proof).
    pub public: bool,
    /// The operator's own product: no consent page.
    pub first_party: bool,
    /// Where logout tokens are POSTed; empty for none.
    pub backchannel_logout_uri: String,
    /// The JWS algorithm of its ID and logout tokens; empty for the
    /// server's configured one.
    pub id_token_alg: String,
}

/// A logout token waiting to be POSTed to a relying party.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = logout_notifications)]
pub struct LogoutNotificationRow {
    pub id: String,
    pub client_id: String,
    pub uri: String,
    /// A signed JWT that says which session ended: no secret.
    pub logout_token: String,
    pub created_at: NaiveDateTime,
    pub attempts: i64,
    pub next_attempt_at: NaiveDateTime,
    pub done_at: Option<NaiveDateTime>,
    pub delivered: bool,
}

/// A device authorization (RFC 8628); both codes stored as hashes only.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = device_codes)]
pub struct DeviceCodeRow {
    pub device_code_hash: String,
    pub user_code_hash: String,
    pub client_id: String,
    pub scope: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub interval_secs: i64,
    pub last_polled_at: Option<NaiveDateTime>,
    /// Who approved or denied it, and from which browser session.
    pub user_id: Option<String>,
    pub sso_session_id: Option<String>,
    pub approved_at: Option<NaiveDateTime>,
    pub denied_at: Option<NaiveDateTime>,
    pub consumed_at: Option<NaiveDateTime>,
}

/// What a user allowed a relying party to receive.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = consents)]
pub struct ConsentRow {
    pub user_id: String,
    pub client_id: String,
    /// Scopes, space separated.
    pub scope: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// An authorization code: only its hash is stored.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = authorization_codes)]
pub struct AuthorizationCodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub sso_session_id: String,
    pub redirect_uri: String,
    /// PKCE S256 challenge (base64url of SHA-256 of the verifier).
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scope: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    /// The session the exchange started (ended if the code comes again).
    pub session_id: Option<String>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = external_identities)]
pub struct ExternalIdentityRow {
    pub client_id: String,
    /// The client's own id for the user.
    pub external_id: String,
    pub user_id: String,
    pub login_id: String,
    pub role: String,
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = totp_credentials)]
pub struct TotpRow {
    pub user_id: String,
    /// The secret, sealed (`accounts::secrets::SealingKey`).
    pub secret_sealed: String,
    pub created_at: NaiveDateTime,
    /// `None` while enrolment waits for its first code.
    pub confirmed_at: Option<NaiveDateTime>,
    /// Time step of the newest accepted code.
    pub last_used_step: Option<i64>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = mfa_challenges)]
pub struct MfaChallengeRow {
    pub token_hash: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub failures: i64,
    pub used_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = passkeys)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    /// The WebAuthn credential id, base64url without padding.
    pub credential_id: String,
    /// The user's name for it ("laptop", "phone").
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON (public key, counter, flags).
    pub credential: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = webauthn_ceremonies)]
pub struct WebauthnCeremonyRow {
    /// SHA-256 of the opaque `challenge_id` handed out.
    pub challenge_hash: String,
    /// `register`, `any` or `user` (see the migration).
    pub purpose: String,
    pub user_id: Option<String>,
    /// webauthn-rs's ceremony state as JSON.
    pub state: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A signing key as stored by `key_store = database`: `document` is the
/// key document sealed with the key-encryption key.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub document: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// A named server secret (code HMAC key, CSRF key …), sealed.
#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = server_secrets)]
pub struct ServerSecretRow {
    pub name: String,
    pub sealed_value: String,
    pub created_at: i64,
}
